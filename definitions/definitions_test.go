package definitions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/rules"
	"github.com/arbiter-nba/arbiter/scoring"
)

func demoFiles() map[string][]byte {
	return map[string][]byte{CatalogFile: catalog.DemoJSON(), ModelFile: scoring.DemoJSON(), PolicyFile: consent.DefaultPolicyJSON(),
		ContactFile: contact.DemoJSON(), RulesFile: rules.DemoJSON()}
}

func TestParseDemo(t *testing.T) {
	s, err := Parse(demoFiles())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Version, "sha256:") || len(s.Version) != len("sha256:")+64 {
		t.Errorf("version %q, want sha256: and 64 hex digits", s.Version)
	}
	if s.Catalog == nil || s.Model == nil || s.Policy == nil {
		t.Fatal("a part of the set is missing")
	}
	if got := Demo().Version; got != s.Version {
		t.Errorf("Demo().Version = %s, want %s", got, s.Version)
	}
	// Files returns copies: the Set cannot be changed through them.
	f := s.Files()
	f[CatalogFile][0] = 'X'
	if Hash(s.Files()) != s.Version {
		t.Error("changing the bytes Files returned changed the Set")
	}
}

// The version names the bytes: a byte changes it, the map's order does not.
func TestHash(t *testing.T) {
	a := demoFiles()
	b := demoFiles()
	if Hash(a) != Hash(b) {
		t.Error("the same files hash differently")
	}
	b[ModelFile] = append(b[ModelFile], ' ')
	if Hash(a) == Hash(b) {
		t.Error("a changed file hashes the same")
	}
	// A byte moved from one file's end to the next file's start changes
	// the hash too: lengths are part of it.
	c := map[string][]byte{"a": []byte("xy"), "b": []byte("z")}
	d := map[string][]byte{"a": []byte("x"), "b": []byte("yz")}
	if Hash(c) == Hash(d) {
		t.Error("moving a byte between files kept the hash")
	}
}

// A set with problems is refused whole, and every problem names its file.
func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(f map[string][]byte)
		want []string
	}{
		{"missing model", func(f map[string][]byte) { delete(f, ModelFile) }, []string{"model.json: missing"}},
		{"stray file", func(f map[string][]byte) { f["catalogue.json"] = []byte("{}") }, []string{"catalogue.json: not a definitions file"}},
		{"bad catalog and policy", func(f map[string][]byte) {
			f[CatalogFile] = []byte(`{"version": "v", "actions": [{"id": "a", "channel": "fax"}]}`)
			f[PolicyFile] = []byte(`{"markets": {"US": {"email": "maybe"}}}`)
		}, []string{"catalog.json: ", "consent_policy.json: "}},
		{"not JSON", func(f map[string][]byte) { f[ModelFile] = []byte("{") }, []string{"model.json: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := demoFiles()
			tt.edit(f)
			s, err := Parse(f)
			if s != nil || !IsInvalid(err) {
				t.Fatalf("Parse() = %v, %v; want nil and a definitions error", s, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	for name, data := range demoFiles() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != Demo().Version {
		t.Errorf("version %s, want the demo's %s", s.Version, Demo().Version)
	}
	if _, err := Load(filepath.Join(dir, "nope")); err == nil {
		t.Error("Load of a missing directory succeeded")
	}
}

// The medical/commercial firewall, in the model: a model that would score
// the catalog's medical actions on prescribing potential (the demo model
// did, on msl_meeting) is refused, naming the channel and the features.
func TestParseRefusesAModelThatScoresMedicalOnCommercialFeatures(t *testing.T) {
	files := demoFiles()
	model := strings.Replace(string(scoring.DemoJSON()),
		`"fatigue.msl_meeting": -0.8,`, `"fatigue.msl_meeting": -0.8, "attr.decile": 0.1, "segment.traditional": -0.3,`, 1)
	if model == string(scoring.DemoJSON()) {
		t.Fatal("the demo model's msl_meeting weights changed: update the test")
	}
	files[ModelFile] = []byte(model)
	_, err := Parse(files)
	if err == nil {
		t.Fatal("a model scoring MSL meetings on attr.decile was accepted")
	}
	for _, want := range []string{"model.json: channels.msl_meeting", "attr.decile, segment.traditional", "firewall"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The same weights on a channel without medical actions are fine:
	// promotional rep visits may weigh prescribing potential.
	files[ModelFile] = scoring.DemoJSON()
	if _, err := Parse(files); err != nil {
		t.Fatalf("demo set: %v", err)
	}
}
