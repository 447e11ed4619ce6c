package definitions

// A fuzz target for definitions files: one file of the demo set is
// replaced by the fuzzer's bytes. Parse either accepts the set, and then
// accepts it again with the same version, or refuses it with an *Error
// that says what is wrong: never a panic, never another kind of error.
//
// The committed corpus is in testdata/fuzz; `make fuzz` runs it for a
// short while, as CI does.

import (
	"strings"
	"testing"
)

func FuzzDefinitions(f *testing.F) {
	demo := demoFiles()
	for i, name := range fileNames {
		f.Add(uint8(i), demo[name])
	}
	f.Add(uint8(0), []byte(`{"actions":[{"id":"a","channel":"email","content_id":"c","approval":{"status":"approved"}}]}`))
	f.Add(uint8(4), []byte(`{"rules":[{"id":"r","when":"1/0 == 1","then":"suppress"}]}`))
	f.Add(uint8(2), []byte(`{"weights":{"x":1e308},"bias":-1e308}`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		files := demoFiles()
		files[fileNames[int(which)%len(fileNames)]] = data
		s, err := Parse(files)
		if err != nil {
			if !IsInvalid(err) {
				t.Fatalf("Parse failed with %T (%v), not *Error", err, err)
			}
			if len(err.(*Error).Problems) == 0 || strings.Contains(err.Error(), "panic") {
				t.Fatalf("Parse refused the set without saying why: %v", err)
			}
			return
		}
		if Hash(s.Files()) != s.Version {
			t.Fatalf("version %s is not the hash of the set's files", s.Version)
		}
		again, err := Parse(s.Files())
		if err != nil || again.Version != s.Version {
			t.Fatalf("an accepted set is not accepted again as the same version: %v", err)
		}
	})
}
