package arbiter_test

import (
	"os/exec"
	"strings"
	"testing"
)

// corePackages are the pure core: the domain vocabulary, what a recipient
// is, consent and its rules, the catalog, the model and the decision
// engine, and the demo data made of their values. They take and return Go
// values; storage and transport are adapters around them.
var corePackages = []string{
	"github.com/arbiter-nba/arbiter",
	"github.com/arbiter-nba/arbiter/recipient",
	"github.com/arbiter-nba/arbiter/consent",
	"github.com/arbiter-nba/arbiter/contact",
	"github.com/arbiter-nba/arbiter/catalog",
	"github.com/arbiter-nba/arbiter/scoring",
	"github.com/arbiter-nba/arbiter/decision",
	"github.com/arbiter-nba/arbiter/demo",
	"github.com/arbiter-nba/arbiter/definitions",
	"github.com/arbiter-nba/arbiter/rules",
	"github.com/arbiter-nba/arbiter/access",
}

// forbidden are what the core must never reach, directly or through
// another package: a storage client, gRPC, protobuf, the rule language's
// engine (CEL, which brings protobuf), OpenTelemetry, and the adapters.
// The rules are named in the core (package rules); the engine that
// evaluates them is an adapter (celrules), registered by the program. The
// engine's phases are traced through its Observer hook
// (decision.WithObserver), which the server fills.
var forbidden = []string{
	"go.opentelemetry.io/",
	"github.com/redis/",
	"github.com/alicebob/miniredis",
	"google.golang.org/grpc",
	"google.golang.org/protobuf",
	"google.golang.org/genproto",
	"cel.dev/",
	"github.com/arbiter-nba/arbiter/celrules",
	"github.com/arbiter-nba/arbiter/proto",
	"github.com/arbiter-nba/arbiter/redisstore",
	"github.com/arbiter-nba/arbiter/hcpcache",
	"github.com/arbiter-nba/arbiter/server",
	"github.com/arbiter-nba/arbiter/client",
}

// TestCoreDependencies fails when a core package reaches a storage client,
// gRPC, protobuf, OpenTelemetry or an adapter, through any chain of imports (go list
// -deps: the whole build graph, not only direct imports).
func TestCoreDependencies(t *testing.T) {
	for _, pkg := range corePackages {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s reaches %s; the core may not depend on storage, transport, tracing or adapters (see README, Layout)", pkg, dep)
				}
			}
		}
	}
}
