package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/redisstore"
	"github.com/arbiter-nba/arbiter/scoring"
)

// oneHCP is an in-memory decision.Loader holding one demo HCP: the
// handler's own cost is measured here; the store's is measured against
// redis-server in redisstore/.
type oneHCP struct{ snap *recipient.State }

func (o oneHCP) Load(_ context.Context, id string, _ time.Time) (*recipient.State, error) {
	if id != o.snap.Profile.HCPID {
		return nil, fmt.Errorf("load: %w", arbiter.ErrNotFound)
	}
	return o.snap, nil
}

// BenchmarkDecideHandler measures what the server does per Decide besides
// loading: validation, the engine, building the response and encoding it
// with the server's codec, and with metrics on, recording them. The demo
// catalog's whole 77 actions are the candidates.
func BenchmarkDecideHandler(b *testing.B) {
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	item := demo.HCP(42, at)
	snap := &recipient.State{Profile: item.Profile, Counters: *item.Counters,
		Consent: consent.State{Complete: true, Records: item.Consent}}
	e, err := decision.New(oneHCP{snap}, scoring.Demo(), catalog.Demo(), consent.DefaultPolicy())
	if err != nil {
		b.Fatal(err)
	}
	plain, err := New(e, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	metered, err := New(e, nil, nil, WithMetrics(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	codec := newCodec()
	for _, tc := range []struct {
		explain bool
		s       *Server
	}{{false, plain}, {true, plain}, {false, metered}} {
		explain, s := tc.explain, tc.s
		b.Run(fmt.Sprintf("explain=%v/metrics=%v", explain, s.metrics != nil), func(b *testing.B) {
			req := &nbapb.DecideRequest{HcpId: item.Profile.HCPID, Limit: 3, Explain: explain,
				Context: &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL}}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := s.Decide(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				buf, err := codec.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				buf.Free()
			}
		})
	}
}

// benchCatalogJSON is the end-to-end benchmark's catalog, written by
// bench/catalog itself (-n actions).
func benchCatalogJSON(tb testing.TB, n int) []byte {
	path := filepath.Join(tb.TempDir(), "catalog.json")
	out, err := exec.Command("go", "run", "../bench/catalog", "-n", strconv.Itoa(n), "-o", path).CombinedOutput()
	if err != nil {
		tb.Fatalf("bench/catalog: %v: %s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// benchEngine is the end-to-end benchmark's engine (BenchmarkDecideCall)
// over 50 demo recipients, with its definitions set and id key.
func benchEngine(b testing.TB) (*decision.Engine, *definitions.Set, fixedStates, *decision.IDKey) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	rulesJSON, err := os.ReadFile("../bench/rules.json")
	if err != nil {
		b.Fatal(err)
	}
	set, err := definitions.Parse(map[string][]byte{
		definitions.CatalogFile: benchCatalogJSON(b, 1000), definitions.ModelFile: scoring.DemoJSON(),
		definitions.PolicyFile: consent.DefaultPolicyJSON(), definitions.ContactFile: contact.DemoJSON(),
		definitions.RulesFile: rulesJSON,
	})
	if err != nil {
		b.Fatal(err)
	}
	key, err := decision.NewIDKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	states := demoStates(50, now)
	e, err := decision.New(states, set.Model, set.Catalog, set.Policy, decision.WithDefinitionsVersion(set.Version),
		decision.WithContactPolicy(set.Contact), decision.WithRules(set.Rules), decision.WithIDKey(key),
		decision.WithClock(func() time.Time { return now }))
	if err != nil {
		b.Fatal(err)
	}
	return e, set, states, key
}

// benchResults are the bench engine's decisions, 100 candidates each, for
// its 50 recipients.
func benchResults(b testing.TB) []pendingReceipt {
	e, set, states, _ := benchEngine(b)
	candidates := make([]string, 100)
	for i := range candidates {
		candidates[i] = set.Catalog.Actions[i].ID
	}
	var out []pendingReceipt
	for id := range states {
		req := decision.Request{HCPID: id, Limit: 3, Candidates: candidates, Caller: arbiter.CallerRepTool}
		res, err := e.Decide(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, pendingReceipt{rc: &decision.Receipt{Kind: decision.KindDecide, Request: req, Result: res},
			decided: decideResponse(res)})
	}
	return out
}

// BenchmarkDecideAnswer is building and encoding the answer of a decision
// of 100 candidates.
func BenchmarkDecideAnswer(b *testing.B) {
	ps := benchResults(b)
	codec := newCodec()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for i := 0; b.Loop(); i++ {
		buf, err := codec.Marshal(decideResponse(ps[i%len(ps)].rc.Result))
		if err != nil {
			b.Fatal(err)
		}
		buf.Free()
	}
}

// BenchmarkDecideReceipt is encoding the receipt of a decision of 100
// candidates, as the decision log's writers do.
func BenchmarkDecideReceipt(b *testing.B) {
	ps := benchResults(b)
	b.ReportAllocs()
	var size int
	var buf []byte // reused, as a writer's is
	defer cpuPerOp(b)()
	for i := 0; b.Loop(); i++ {
		sr, next, err := storedAppend(buf[:0], ps[i%len(ps)])
		if err != nil {
			b.Fatal(err)
		}
		buf = next
		size += len(sr.Data)
	}
	b.ReportMetric(float64(size)/float64(b.N), "bytes/receipt")
}

// discardLog is a DecisionLog that stores nothing.
type discardLog struct{ DecisionLog }

func (discardLog) AppendReceipts(context.Context, []redisstore.StoredReceipt) (int, error) {
	return 0, nil
}

// oneEngine is a Replayer of one definitions set.
type oneEngine struct{ e *decision.Engine }

func (o oneEngine) EngineFor(context.Context, string) (*decision.Engine, error) { return o.e, nil }

// BenchmarkDecideCall measures a Decide as the end-to-end benchmark's
// (bench/cost.sh) is made, except for the transport and the state load:
// the request decoded by the server's codec, 100 candidates of the
// 1000-action bench catalog, the demo contact policy, the bench rules
// (20 rules, personas, journeys), sealed decision ids, the answer encoded
// by the codec, and the receipt encoded (a synchronous log that stores
// nothing: the asynchronous log's writers do the same work off the
// call's path).
func BenchmarkDecideCall(b *testing.B) {
	e, set, states, key := benchEngine(b)
	for _, mode := range []ReceiptMode{ReceiptsOff, ReceiptsSync} {
		s, err := New(e, nil, nil, WithDecisionLog(discardLog{}, oneEngine{e}, ReceiptConfig{Mode: mode, Key: key}))
		if err != nil {
			b.Fatal(err)
		}
		candidates := make([]string, 100)
		for i := range candidates {
			candidates[i] = set.Catalog.Actions[i].ID
		}
		var reqs [][]byte
		for id := range states {
			data, err := proto.Marshal(&nbapb.DecideRequest{HcpId: id, Limit: 3, Candidates: candidates,
				Context: &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL}})
			if err != nil {
				b.Fatal(err)
			}
			reqs = append(reqs, data)
		}
		codec := newCodec()
		name := map[ReceiptMode]string{ReceiptsOff: "receipts=off", ReceiptsSync: "receipts=on"}[mode]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for i := 0; b.Loop(); i++ {
				req := &nbapb.DecideRequest{}
				if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(reqs[i%len(reqs)])}, req); err != nil {
					b.Fatal(err)
				}
				resp, err := s.Decide(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				buf, err := codec.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				buf.Free()
			}
		})
	}
}

// cpuPerOp starts counting the process's CPU time (every thread's: the
// collector's too); the function it returns reports it per operation,
// as cpu-ns/op, which a machine busy with other work skews far less than
// the wall time of ns/op.
func cpuPerOp(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}
