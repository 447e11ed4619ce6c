package client

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the client small for the binaries that embed it: the
// standard library, gRPC, protobuf, the generated API and the root
// package's enums, and nothing server-side (storage, consent rules,
// scoring, the server).
func TestImports(t *testing.T) {
	allowed := []string{
		"google.golang.org/grpc",
		"google.golang.org/protobuf/",
		"google.golang.org/genproto/googleapis/rpc/",
		"github.com/arbiter-nba/arbiter/proto/nba/v1",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !isAllowed(path, allowed) {
				t.Errorf("%s imports %s; the client may import only the standard library, gRPC, protobuf, the generated API and package arbiter", name, path)
			}
		}
	}
}

func isAllowed(path string, allowed []string) bool {
	if path == "github.com/arbiter-nba/arbiter" || !strings.Contains(strings.Split(path, "/")[0], ".") {
		return true // the root package's vocabulary, or the standard library
	}
	for _, a := range allowed {
		if path == a || strings.HasPrefix(path, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}
