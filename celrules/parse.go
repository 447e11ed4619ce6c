// Package celrules is the rules engine: it compiles the rules file's
// expressions with CEL (cel.dev/cel-go) and evaluates them for each
// decision. It registers itself with package rules when a program imports
// it (rules.Register); package rules, in the pure core, names the rules and
// their effects, and the decision engine applies them. The environment the
// expressions are written against, and how medical signals are kept apart
// (the firewall), are in env.go; evaluation in eval.go.
package celrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/rules"
)

func init() { rules.Register(Compile) }

// Limits on a rule set.
const (
	maxRules   = 64
	maxExprLen = 2000
	// costLimit bounds one expression's estimated cost (CEL's cost model)
	// for the largest state a decision can read: a comprehension over the
	// touch ledger costs some tens of thousands.
	costLimit = 1_000_000
	// maxRecentEvents is the most recent events a decision can read (the
	// storage adapter keeps 50).
	maxRecentEvents = 50
	maxDuration     = 90 * 24 * time.Hour
)

// engine is a compiled rule set's evaluator (rules.Engine).
type engine struct {
	rules    []compiledRule
	personas []compiledPersona
	journeys []compiledJourney
	// catalog is the catalog the set was compiled against, and tags its
	// actions' tags as CEL values.
	catalog *catalog.Catalog
	tags    []actionTags
	// slots is the number of distinct compiled expressions.
	slots int
}

type compiledRule struct {
	*rules.Rule
	when, since, topicsIn, topicsOut *program
	// readsMedical: an expression reads a medical signal (it does not
	// compile without them).
	readsMedical bool
}

type compiledPersona struct {
	*rules.Persona
	when *program
}

// program is a compiled expression. Rules often repeat one (a pair of
// rules with one condition, a condition repeated in a selector): each
// distinct expression is compiled once and has a slot in the per-decision
// memo (eval.go), so it is evaluated once per decision.
type program struct {
	prg  cel.Program
	slot int
}

// The rules file's JSON.
type file struct {
	Rules        []fileRule    `json:"rules"`
	Personas     []filePersona `json:"personas"`
	Journeys     []fileJourney `json:"journeys"`
	RecentEvents *fileRecent   `json:"recent_events"`
}

type fileRecent struct {
	Count  int    `json:"count"`
	MaxAge string `json:"max_age"`
}

type filePersona struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	When        string `json:"when"`
}

type fileRule struct {
	ID          string     `json:"id"`
	Description string     `json:"description"`
	When        string     `json:"when"`
	Since       string     `json:"since"`
	Effect      string     `json:"effect"`
	Factor      float64    `json:"factor"`
	For         string     `json:"for"`
	Select      fileSelect `json:"select"`
}

type fileSelect struct {
	Channels    []string `json:"channels"`
	Purposes    []string `json:"purposes"`
	Topics      []string `json:"topics"`
	TopicsIn    string   `json:"topics_in"`
	TopicsNotIn string   `json:"topics_not_in"`
	Formats     []string `json:"formats"`
	Depths      []string `json:"depths"`
}

// Parse compiles a rules file. Every problem is reported, naming the rule
// and, for an expression, the line and column in it; a set with any
// problem is refused whole. cat is the catalog the rules go with: topics,
// formats and depths must be ones it uses.
func Compile(data []byte, cat *catalog.Catalog) (*rules.Set, error) {
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse: %s", arbiter.JSONProblem(err))
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if len(f.Rules) > maxRules {
		bad("rules: at most %d", maxRules)
	}
	set := &rules.Set{Recent: rules.DefaultRecent}
	eng := &engine{}
	if fr := f.RecentEvents; fr != nil {
		if fr.Count < 1 || fr.Count > maxRecentEvents {
			bad("recent_events.count: %d is not between 1 and %d", fr.Count, maxRecentEvents)
		} else {
			set.Recent.Count = fr.Count
		}
		if d, err := contact.ParseDuration(fr.MaxAge); err != nil || d < time.Hour || d > 366*24*time.Hour {
			bad("recent_events.max_age: %q is not a duration from 1h to 366d", fr.MaxAge)
		} else {
			set.Recent.MaxAge = d
		}
	}
	hints := sizeHints{events: uint64(set.Recent.Count)}
	seen := map[string]bool{}
	compiled := map[string]*program{}
	var compileOnce func(env *cel.Env, expr string, want *cel.Type) (*program, string)
	compileOnce = func(env *cel.Env, expr string, want *cel.Type) (*program, string) {
		// An expression that reads no medical signal is one program in
		// both environments (it resolves every name alike in both), so
		// that a boost and a demotion on one condition evaluate it once.
		if env == fullEnv {
			if p, problem := compileOnce(commercialEnv, expr, want); problem == "" {
				return p, ""
			}
		}
		k := fmt.Sprintf("%p\x00%s\x00%s", env, want, expr)
		if p, ok := compiled[k]; ok {
			return p, ""
		}
		prg, problem := compileExpr(env, expr, want, hints)
		if problem != "" {
			return nil, problem
		}
		p := &program{prg: prg, slot: eng.slots}
		eng.slots++
		compiled[k] = p
		return p, ""
	}
	for i, fr := range f.Rules {
		where := fmt.Sprintf("rules[%d] (%s)", i, fr.ID)
		r := compiledRule{Rule: &rules.Rule{ID: fr.ID, Description: fr.Description}}
		switch {
		case fr.ID == "" || len(fr.ID) > 64 || strings.ContainsAny(fr.ID, " \t\n|"):
			bad("%s: id: 1 to 64 characters, no spaces or '|'", where)
		case seen[fr.ID]:
			bad("%s: id: used twice", where)
		}
		seen[fr.ID] = true
		if fr.Description == "" || len(fr.Description) > 300 {
			bad("%s: description: 1 to 300 characters, in words a rep understands (it is the rule's reason)", where)
		}
		var ok bool
		if r.Effect, ok = rules.EffectNames[fr.Effect]; !ok {
			bad("%s: effect: %q is not suppress, boost, demote or require", where, fr.Effect)
		}
		switch r.Effect {
		case rules.Suppress:
			d, err := time.ParseDuration(fr.For)
			if err != nil || d < time.Minute || d > maxDuration {
				bad("%s: for: a suppression needs a duration from 1m to %s, got %q", where, maxDuration, fr.For)
			}
			r.For = d
		case rules.Boost:
			if !(fr.Factor > 1 && fr.Factor <= 10) {
				bad("%s: factor: a boost multiplies by more than 1 and at most 10, got %v", where, fr.Factor)
			}
		case rules.Demote:
			if !(fr.Factor > 0 && fr.Factor < 1) {
				bad("%s: factor: a demotion multiplies by more than 0 and less than 1, got %v", where, fr.Factor)
			}
		}
		if fr.Factor != 0 && r.Effect != rules.Boost && r.Effect != rules.Demote {
			bad("%s: factor: only a boost or a demotion has one", where)
		}
		if fr.For != "" && r.Effect != rules.Suppress {
			bad("%s: for: only a suppression has one", where)
		}
		if fr.Since != "" && r.Effect != rules.Suppress {
			bad("%s: since: only a suppression has one", where)
		}
		r.Factor = fr.Factor
		r.Select = parseSelector(where, fr.Select, cat, bad)
		// The firewall: a rule that can raise promotional candidates is
		// compiled without the medical signals, so one that reads them is
		// refused. One that can only hold them back (suppress, demote) may
		// read them; it is then also evaluated without them, and what holds
		// without them holds (eval.go): a medical signal can add to what
		// is held back, never lift it.
		env := fullEnv
		if (r.Effect == rules.Boost || r.Effect == rules.Require) && r.Select.SelectsPromotional() {
			env = commercialEnv
		}
		for _, e := range []string{fr.When, fr.Since, fr.Select.TopicsIn, fr.Select.TopicsNotIn} {
			if e != "" {
				if _, problem := compileExpr(commercialEnv, e, cel.DynType, hints); problem != "" && strings.Contains(problem, "medical_") {
					r.readsMedical = true
				}
			}
		}
		compile := func(field, expr string, want *cel.Type, required bool) *program {
			if expr == "" {
				if required {
					bad("%s: %s: required", where, field)
				}
				return nil
			}
			prg, problem := compileOnce(env, expr, want)
			if problem != "" {
				if env == commercialEnv && strings.Contains(problem, "medical_") {
					problem = "a medical signal (the medical_ variables) must not boost or require promotional content (the medical/commercial firewall): " + problem
				}
				bad("%s: %s: %s", where, field, problem)
			}
			return prg
		}
		r.when = compile("when", fr.When, cel.BoolType, true)
		r.since = compile("since", fr.Since, cel.TimestampType, false)
		r.topicsIn = compile("select.topics_in", fr.Select.TopicsIn, cel.ListType(cel.StringType), false)
		r.topicsOut = compile("select.topics_not_in", fr.Select.TopicsNotIn, cel.ListType(cel.StringType), false)
		set.Rules = append(set.Rules, r.Rule)
		eng.rules = append(eng.rules, r)
	}
	if len(f.Personas) > maxRules {
		bad("personas: at most %d", maxRules)
	}
	personas := map[string]bool{}
	for i, fp := range f.Personas {
		where := fmt.Sprintf("personas[%d] (%s)", i, fp.ID)
		if !validPersonaID(fp.ID) {
			bad("%s: id: 1 to 64 of a-z, 0-9 and _", where)
		} else if personas[fp.ID] {
			bad("%s: id: used twice", where)
		}
		personas[fp.ID] = true
		if fp.Description == "" || len(fp.Description) > 300 {
			bad("%s: description: 1 to 300 characters", where)
		}
		p := compiledPersona{Persona: &rules.Persona{ID: fp.ID, Description: fp.Description}}
		if fp.When == "" {
			bad("%s: when: required", where)
		} else if prg, problem := compileOnce(commercialEnv, fp.When, cel.BoolType); problem != "" {
			// A persona selects the model's segment weights for every
			// candidate, promotional ones too: no medical signal.
			if strings.Contains(problem, "medical_") {
				problem = "a persona must not read a medical signal (the medical/commercial firewall): " + problem
			}
			bad("%s: when: %s", where, problem)
		} else {
			p.when = prg
		}
		set.Personas = append(set.Personas, p.Persona)
		eng.personas = append(eng.personas, p)
	}
	compileJourneys(f.Journeys, cat, set, eng, personas, compileOnce, bad)
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	eng.catalog, eng.tags = cat, newActionTags(cat)
	set.Engine = eng
	return set, nil
}

func validPersonaID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func parseSelector(where string, fs fileSelect, cat *catalog.Catalog, bad func(string, ...any)) rules.Selector {
	var s rules.Selector
	for _, c := range fs.Channels {
		ch, ok := arbiter.ParseChannel(c)
		if !ok {
			bad("%s: select.channels: unknown channel %q", where, c)
			continue
		}
		s.Channels |= 1 << ch
	}
	for _, p := range fs.Purposes {
		pu, ok := arbiter.ParsePurpose(p)
		if !ok {
			bad("%s: select.purposes: unknown purpose %q", where, p)
			continue
		}
		s.Purposes |= 1 << pu
	}
	for _, t := range fs.Topics {
		if cat != nil && !slices.Contains(cat.Topics, t) {
			bad("%s: select.topics: no action of the catalog has topic %q", where, t)
		}
	}
	s.Topics = fs.Topics
	for _, f := range fs.Formats {
		if !slices.Contains(catalog.Formats, f) {
			bad("%s: select.formats: %q is not one of %s", where, f, strings.Join(catalog.Formats, ", "))
		}
	}
	s.Formats = fs.Formats
	for _, d := range fs.Depths {
		if !slices.Contains(catalog.Depths, d) {
			bad("%s: select.depths: %q is not one of %s", where, d, strings.Join(catalog.Depths, ", "))
		}
	}
	s.Depths = fs.Depths
	if len(fs.Topics) > 0 && (fs.TopicsIn != "" || fs.TopicsNotIn != "") {
		bad("%s: select: give topics, or topics_in / topics_not_in, not both", where)
	}
	return s
}
