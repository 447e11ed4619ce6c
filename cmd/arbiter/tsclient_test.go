package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A TypeScript client generated from the OpenAPI document
// (clients/ts: openapi-typescript, openapi-fetch, tsc) makes a decision, a
// pre-send check and an event against a real server over HTTP/JSON, and
// reads a field violation from an error. It needs Node.js and the
// package's modules (npm ci in clients/ts, as .ci/run does): in CI a
// missing one fails the test; elsewhere it is skipped.
func TestTypeScriptClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm")
	}
	dir, err := filepath.Abs("../../clients/ts")
	if err != nil {
		t.Fatal(err)
	}
	_, errNpm := exec.LookPath("npm")
	_, errMods := os.Stat(filepath.Join(dir, "node_modules", "openapi-typescript"))
	if errNpm != nil || errMods != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the TypeScript client test needs npm and clients/ts/node_modules (npm ci): %v %v", errNpm, errMods)
		}
		t.Skip("npm or clients/ts/node_modules missing (cd clients/ts && npm ci)")
	}
	ts := start(t, embedded, 50, "-http-listen", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "test", "--silent")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ARBITER_HTTP=http://"+ts.HTTPAddr())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
