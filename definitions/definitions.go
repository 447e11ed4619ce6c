// Package definitions makes the catalog, the model and the consent policy
// one immutable, versioned Set: validated whole, named by a content hash,
// swapped as one. Every decision uses one Set (decision.Engine is built
// from one), and its response names the Set's version, so a decision never
// mixes a catalog with another set's model, and can be replayed against
// the Set it used.
//
// It is part of the pure core: parsing and hashing only. Publishing a Set
// to Redis, and following the active one on every replica, are the storage
// adapter's and the server program's (redisstore/definitions.go,
// cmd/arbiter/follow.go).
//
// # Invariants
//
//   - A Set is valid as a whole or not at all: Parse checks every file and
//     reports every problem it finds, naming the file and the item.
//   - The version is the SHA-256 of the files' names and bytes, in name
//     order: the same files give the same version anywhere, and any change
//     of a byte gives another.
//   - A Set is never modified once made.
package definitions

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/rules"
	"github.com/arbiter-nba/arbiter/scoring"
)

// The files of a Set, by name. A definitions directory holds these.
const (
	CatalogFile = "catalog.json"
	ModelFile   = "model.json"
	PolicyFile  = "consent_policy.json"
	// ContactFile is the contact policy: caps, gaps and quiet hours. It is
	// optional: a Set without it has no contact policy but the catalog's
	// minimum gaps.
	ContactFile = "contact_policy.json"
	// RulesFile is the behaviour rules (package rules), optional too.
	RulesFile = "rules.json"
)

// fileNames lists every file a Set has, in hashing order; all but the
// optional ones are required.
var fileNames = []string{CatalogFile, PolicyFile, ModelFile, ContactFile, RulesFile}

func optional(name string) bool { return name == ContactFile || name == RulesFile }

// Set is one immutable set of definitions.
type Set struct {
	// Version is "sha256:" and the hex SHA-256 of the files (see Hash).
	Version string
	Catalog *catalog.Catalog
	Model   *scoring.Model
	Policy  *consent.Policy
	// Contact is the contact policy; nil when the Set has none.
	Contact *contact.Policy
	// Rules are the behaviour rules; nil when the Set has none.
	Rules *rules.Set
	files map[string][]byte
}

// Files returns a copy of the Set's files, by name, as hashed.
func (s *Set) Files() map[string][]byte {
	out := make(map[string][]byte, len(s.files))
	for k, v := range s.files {
		out[k] = slices.Clone(v)
	}
	return out
}

// Error lists every problem Parse found, each naming its file.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	return "definitions are invalid: " + strings.Join(e.Problems, "; ")
}

// Parse validates files (name to bytes) as one Set. Every file of the Set
// but contact_policy.json is required, and no other is accepted. Every problem found is reported,
// in an *Error, prefixed with its file's name ("catalog.json: action 3
// (email-x): unknown channel"); a Set with any problem is refused whole.
func Parse(files map[string][]byte) (*Set, error) {
	e := &Error{}
	for _, name := range fileNames {
		if _, ok := files[name]; !ok && !optional(name) {
			e.Problems = append(e.Problems, name+": missing")
		}
	}
	var extra []string
	for name := range files {
		if !slices.Contains(fileNames, name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		e.Problems = append(e.Problems, fmt.Sprintf("%s: not a definitions file (want %s)", name, strings.Join(fileNames, ", ")))
	}
	s := &Set{files: make(map[string][]byte, len(fileNames))}
	var err error
	if data, ok := files[CatalogFile]; ok {
		if s.Catalog, err = catalog.Parse(data); err != nil {
			e.Problems = append(e.Problems, CatalogFile+": "+err.Error())
		}
	}
	if data, ok := files[ModelFile]; ok {
		if s.Model, err = scoring.Parse(data); err != nil {
			e.Problems = append(e.Problems, ModelFile+": "+err.Error())
		}
	}
	if data, ok := files[PolicyFile]; ok {
		if s.Policy, err = consent.ParsePolicy(data); err != nil {
			e.Problems = append(e.Problems, PolicyFile+": "+err.Error())
		}
	}
	if data, ok := files[ContactFile]; ok {
		if s.Contact, err = contact.Parse(data); err != nil {
			e.Problems = append(e.Problems, ContactFile+": "+err.Error())
		}
	}
	if s.Catalog != nil && s.Model != nil {
		e.Problems = append(e.Problems, medicalFirewall(s.Catalog, s.Model)...)
	}
	if data, ok := files[RulesFile]; ok {
		if s.Catalog == nil {
			e.Problems = append(e.Problems, RulesFile+": not checked: the catalog it refers to is invalid")
		} else if s.Rules, err = rules.Parse(data, s.Catalog); err != nil {
			e.Problems = append(e.Problems, RulesFile+": "+err.Error())
		}
	}
	if len(e.Problems) > 0 {
		return nil, e
	}
	for _, name := range fileNames {
		if data, ok := files[name]; ok {
			s.files[name] = slices.Clone(data)
		}
	}
	s.Version = Hash(s.files)
	return s, nil
}

// medicalFirewall refuses a model that would score a catalog's medical
// actions on features the model's medical allowlist does not permit (its
// prescribing potential, its commercial segment): one problem per channel.
func medicalFirewall(cat *catalog.Catalog, m *scoring.Model) []string {
	var problems []string
	var seen [arbiter.NumChannels]bool
	for i := range cat.Actions {
		a := &cat.Actions[i]
		if a.Purpose != arbiter.Medical || seen[a.Channel] {
			continue
		}
		seen[a.Channel] = true
		if bad := m.MedicalViolations(a.Channel); len(bad) > 0 {
			problems = append(problems, fmt.Sprintf(
				"%s: channels.%s: medical actions (%s, ...) would be scored on %s, which the medical allowlist does not permit "+
					"(the medical/commercial firewall): give %s a \"medical\" block of allowed features",
				ModelFile, a.Channel, a.ID, strings.Join(bad, ", "), a.Channel))
		}
	}
	return problems
}

// Hash is the version of a set of files: "sha256:" and the hex SHA-256 of
// each file's name and bytes, each preceded by its length, in name order.
func Hash(files map[string][]byte) string {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	var n [8]byte
	for _, name := range names {
		binary.BigEndian.PutUint64(n[:], uint64(len(name)))
		h.Write(n[:])
		h.Write([]byte(name))
		binary.BigEndian.PutUint64(n[:], uint64(len(files[name])))
		h.Write(n[:])
		h.Write(files[name])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// ReadDir reads a definitions directory: the Set's files, and nothing else
// that ends in .json (a stray file is reported, so that a typo in a name
// is not silently ignored).
func ReadDir(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, ent := range entries {
		if ent.IsDir() || !strings.HasSuffix(ent.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			return nil, err
		}
		files[ent.Name()] = data
	}
	return files, nil
}

// Load reads and parses a definitions directory.
func Load(dir string) (*Set, error) {
	files, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return Parse(files)
}

// Demo is the demo's Set: the catalog, model, consent policy, contact
// policy and rules that ship with Arbiter. The rules need the rules engine
// linked into the program (celrules); without it Demo panics.
func Demo() *Set {
	s, err := Parse(map[string][]byte{
		CatalogFile: catalog.DemoJSON(),
		ModelFile:   scoring.DemoJSON(),
		PolicyFile:  consent.DefaultPolicyJSON(),
		ContactFile: contact.DemoJSON(),
		RulesFile:   rules.DemoJSON(),
	})
	if err != nil {
		panic("definitions: the embedded demo set is invalid: " + err.Error())
	}
	return s
}

// IsInvalid reports whether err says a set of files is not a valid Set.
func IsInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
