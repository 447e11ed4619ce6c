package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// backends are the Redis deployments the end-to-end suite runs on: a
// single redis-server and a Redis Cluster of 3 masters with a replica each.
var backends []redistest.Backend

func TestMain(m *testing.M) { os.Exit(redistest.MainBackends(m, &backends)) }

// eachBackend runs test once per backend (redistest.Each).
func eachBackend(t *testing.T, test func(t *testing.T, b redistest.Backend)) {
	redistest.Each(t, backends, test)
}

// singleRedis is the single redis-server backend (the HCP cache needs one:
// it refuses a cluster and the embedded store).
func singleRedis(t *testing.T) redistest.Backend {
	t.Helper()
	redistest.Require(t)
	return backends[0]
}

// embedded is no Redis: start runs arbiter demo, on its embedded demo store.
var embedded = redistest.Backend{}

// The demo's definitions, as the files a production server is given.
const (
	demoCatalogFile = "../../catalog/demo_catalog.json"
	demoModelFile   = "../../scoring/demo_model.json"
	demoPolicyFile  = "../../consent/policy.json"
)

type testServer struct {
	*Main
	client *client.Client
	trips  *redistest.RoundTrips
}

// start runs the real server program against backend b (embedded for the
// embedded demo store) with a demo population of n HCPs, and a client for
// it.
func start(t *testing.T, b redistest.Backend, n int, flags ...string) *testServer {
	t.Helper()
	return startLogging(t, b, n, io.Discard, flags...)
}

// startLogging is start with the server's log written to w.
func startLogging(t *testing.T, b redistest.Backend, n int, w io.Writer, flags ...string) *testServer {
	t.Helper()
	return startWith(t, b, n, w, nil, flags...)
}

// startWith is startLogging, with setup applied to the program before it
// runs (nil: none).
func startWith(t *testing.T, b redistest.Backend, n int, w io.Writer, setup func(*Main), flags ...string) *testServer {
	t.Helper()
	// No drain window: a test's server has no load balancer to tell. No
	// HTTP listener (arbiter demo's is on port 8080) but for the tests that
	// ask for one (-http-listen 127.0.0.1:0, given later, wins).
	args := []string{"-listen", "127.0.0.1:0", "-http-listen", "", "-demo-size", strconv.Itoa(n), "-shutdown-drain", "0s"}
	cmd := "demo"
	if len(b.Addrs) == 0 {
		// The demo's contact policy has quiet hours: a test that did not
		// ask for it would answer by the time of day it runs at; and its
		// rules would move scores. A test of the policy or the rules gives
		// its own -contact-policy or -rules, which comes later.
		args = append(args, "-contact-policy", "testdata/no_contact_policy.json", "-rules", "testdata/no_rules.json")
	}
	args = append(args, flags...)
	if len(b.Addrs) > 0 {
		// The production server, with the demo's definitions as files.
		cmd = "serve"
		args = append(args, "-redis-addr", strings.Join(b.Addrs, ","), "-redis-cluster="+strconv.FormatBool(b.Cluster),
			"-catalog", demoCatalogFile, "-model", demoModelFile, "-consent-policy", demoPolicyFile)
	}
	cfg, err := parseConfig(cmd, args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
	if cfg.RedisAddr != "" {
		cfg.RedisPrefix = "e2e-" + strings.ReplaceAll(t.Name(), "/", "-")
		if err := Seed(context.Background(), cfg, logger); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	ts := &testServer{Main: NewMain(cfg, logger), trips: &redistest.RoundTrips{}}
	ts.redisHooks = []redis.Hook{ts.trips}
	if setup != nil {
		setup(ts.Main)
	}
	if err := ts.Run(context.Background()); err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { ts.Close() })
	ts.client, err = client.Dial(ts.Addr(), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.client.Close() })
	return ts
}

func TestDecideOptOutEventEndToEnd(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) { testDecideOptOutEventEndToEnd(t, b) })
}

// The same flow with the HCP cache on: the opt-out and the event are seen
// by the very next call, although the HCP was just cached.
func TestDecideOptOutEventEndToEndCached(t *testing.T) {
	testDecideOptOutEventEndToEnd(t, singleRedis(t), "-hcp-cache", "1000")
}

func testDecideOptOutEventEndToEnd(t *testing.T, b redistest.Backend, flags ...string) {
	ts := start(t, b, 200, flags...)
	ctx := context.Background()
	c := ts.client

	// Find a demo HCP who may get promotional email today.
	var hcp string
	var first *client.Decision
	for i := 1; i <= 200 && hcp == ""; i++ {
		id := demo.HCPID(i)
		d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 50, Channels: []arbiter.Channel{arbiter.Email}})
		if err != nil {
			t.Fatalf("decide %s: %v", id, err)
		}
		for _, r := range d.Recommendations {
			if r.Purpose == arbiter.Promotional {
				hcp, first = id, d
				break
			}
		}
	}
	if hcp == "" {
		t.Fatal("no demo HCP is recommended promotional email; demo data or engine is broken")
	}
	if first.ID == "" || first.ModelVersion == "" {
		t.Errorf("decision id %q, model version %q: want both set", first.ID, first.ModelVersion)
	}

	// Opt out of promotional email.
	entry, err := c.SetConsent(ctx, hcp, client.ConsentRecord{
		Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: client.ConsentOptOut,
		CapturedAt: time.Now(), Source: "preference-centre", CapturedBy: "e2e",
	}, false)
	if err != nil {
		t.Fatalf("set consent: %v", err)
	}
	if !entry.Applied {
		t.Errorf("opt-out ledger entry not applied: %+v", entry)
	}

	second, err := c.Decide(ctx, hcp, client.DecideOptions{Limit: 50, Channels: []arbiter.Channel{arbiter.Email}, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range second.Recommendations {
		if r.Channel == arbiter.Email && r.Purpose == arbiter.Promotional {
			t.Errorf("after opt-out, promotional email %s is still recommended", r.ActionID)
		}
	}
	suppressed := map[string]client.Suppression{}
	for _, s := range second.Suppressed {
		suppressed[s.ActionID] = s
	}
	for _, r := range first.Recommendations {
		if r.Purpose != arbiter.Promotional {
			continue
		}
		s, ok := suppressed[r.ActionID]
		if !ok || s.Reason != client.SuppressionNoConsent {
			t.Errorf("%s after opt-out: suppressed %v (%+v), want NO_CONSENT", r.ActionID, ok, s)
		}
		if !strings.Contains(s.Detail, "opted out") {
			t.Errorf("%s detail %q does not say the HCP opted out", r.ActionID, s.Detail)
		}
	}

	// Record an open and see the feature move; the same event again changes nothing.
	_, before, err := c.GetProfile(ctx, hcp)
	if err != nil {
		t.Fatal(err)
	}
	ev := client.Event{ID: "e2e-open-1", HCPID: hcp, Type: arbiter.EventOpened, Channel: arbiter.Email,
		Topic: "cardiolex_safety", DecisionID: second.ID, OccurredAt: time.Now()}
	if dup, err := c.RecordEvent(ctx, ev); err != nil || dup {
		t.Fatalf("record event: duplicate=%v err=%v", dup, err)
	}
	_, after, err := c.GetProfile(ctx, hcp)
	if err != nil {
		t.Fatal(err)
	}
	if got, was := after.Channels[arbiter.Email].Engagement, before.Channels[arbiter.Email].Engagement; got < was+0.99 {
		t.Errorf("email engagement %v -> %v after an open, want +1", was, got)
	}
	if got := after.Topics["cardiolex_safety"]; got < before.Topics["cardiolex_safety"]+0.99 {
		t.Errorf("topic engagement did not move: %v", got)
	}
	if dup, err := c.RecordEvent(ctx, ev); err != nil || !dup {
		t.Fatalf("repeat event: duplicate=%v err=%v, want duplicate", dup, err)
	}
	_, again, err := c.GetProfile(ctx, hcp)
	if err != nil {
		t.Fatal(err)
	}
	if d := again.Channels[arbiter.Email].Engagement - after.Channels[arbiter.Email].Engagement; d > 1e-6 {
		t.Errorf("duplicate event moved engagement by %v", d)
	}

	// The ledger proves the change.
	hist, total, err := c.ConsentHistory(ctx, hcp, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	last := hist[len(hist)-1]
	if int64(len(hist)) != total || last.Record.Status != client.ConsentOptOut || last.Record.Source != "preference-centre" {
		t.Errorf("ledger tail = %+v (total %d), want the opt-out from preference-centre", last, total)
	}
}

func TestOneRedisRoundTripPerDecide(t *testing.T) { eachBackend(t, testOneRedisRoundTripPerDecide) }

func testOneRedisRoundTripPerDecide(t *testing.T, b redistest.Backend) {
	// 64 decisions at once, below: none shed (the bound is 16 a CPU).
	ts := start(t, b, 20, "-max-in-flight", "256")
	ctx := context.Background()
	// Warm the connection pool: a new connection's handshake is not a
	// decision's work.
	if _, err := ts.client.Decide(ctx, "HCP-000007", client.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	// On a cluster, the hook Main adds to the ClusterClient sees each
	// pipeline once, before go-redis splits it by node; what goes over the
	// network is seen by hooks on the node clients. Count both: a decision
	// is one pipeline, to the one node that owns the HCP's slot.
	nodeTrips := &redistest.RoundTrips{}
	if b.Cluster {
		nodeTrips.AddToNodes(t, ts.rdb)
	}
	// The decision's receipt is written after the answer, in a batch of
	// its own (the log is asynchronous): flushed here so that each count
	// is the decision's round trip and, apart, its receipt's.
	flush := func() {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := ts.srv.FlushDecisionLog(fctx); err != nil {
			t.Fatalf("flush the decision log: %v", err)
		}
	}
	flush()
	for _, opts := range []client.DecideOptions{{}, {Limit: 10, Explain: true}, {Channels: []arbiter.Channel{arbiter.Email}}} {
		before, nodeBefore := ts.trips.N(), nodeTrips.N()
		if _, err := ts.client.Decide(ctx, "HCP-000007", opts); err != nil {
			t.Fatal(err)
		}
		flush()
		if got := ts.trips.N() - before; got != 2 {
			t.Errorf("Decide(%+v) and its receipt made %d Redis round trips, want 2: the decision's, and the receipt's after the answer", opts, got)
		}
		if got := nodeTrips.N() - nodeBefore; b.Cluster && got != 2 {
			t.Errorf("Decide(%+v) and its receipt made %d round trips to cluster nodes, want 2", opts, got)
		}
	}

	// Concurrent decisions share the receipts' writes: 64 decisions, at
	// most one round trip each for the decisions, and far fewer for their
	// receipts.
	flush()
	before := ts.trips.N()
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ts.client.Decide(ctx, demo.HCPID(1+i%20), client.DecideOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	flush()
	if got := ts.trips.N() - before; got > 64+32 {
		t.Errorf("64 concurrent decisions and their receipts made %d round trips, want at most 64 + 32", got)
	}
}

func TestBadInput(t *testing.T) { eachBackend(t, testBadInput) }

func testBadInput(t *testing.T, b redistest.Backend) {
	ts := start(t, b, 5)
	ctx := context.Background()
	many := make([]string, 1001)
	for i := range many {
		many[i] = "email-congress-invite"
	}
	tests := []struct {
		name  string
		hcp   string
		opts  client.DecideOptions
		code  codes.Code
		field string
	}{
		{"empty hcp_id", "", client.DecideOptions{}, codes.InvalidArgument, "hcp_id"},
		{"10,000-character hcp_id", strings.Repeat("H", 10000), client.DecideOptions{}, codes.InvalidArgument, "hcp_id"},
		{"hcp_id with spaces", "HCP 1", client.DecideOptions{}, codes.InvalidArgument, "hcp_id"},
		{"limit negative", "HCP-000001", client.DecideOptions{Limit: -1}, codes.InvalidArgument, "limit"},
		{"limit too large", "HCP-000001", client.DecideOptions{Limit: 51}, codes.InvalidArgument, "limit"},
		{"too many candidates", "HCP-000001", client.DecideOptions{Candidates: many}, codes.InvalidArgument, "candidates"},
		{"unknown candidate", "HCP-000001", client.DecideOptions{Candidates: []string{"email-congress-invite", "fax-blast"}}, codes.InvalidArgument, "candidates[1]"},
		{"duplicate candidate", "HCP-000001", client.DecideOptions{Candidates: []string{"email-congress-invite", "email-congress-invite"}}, codes.InvalidArgument, "candidates[1]"},
		{"unknown candidate set", "HCP-000001", client.DecideOptions{CandidateSet: "no-such-set"}, codes.InvalidArgument, "candidate_set"},
		{"candidate set and candidates", "HCP-000001", client.DecideOptions{CandidateSet: "hcp-email", Candidates: []string{"email-congress-invite"}}, codes.InvalidArgument, "candidate_set"},
		{"candidate set name with a control character", "HCP-000001", client.DecideOptions{CandidateSet: "hcp\x00email"}, codes.InvalidArgument, "candidate_set"},
		{"unknown hcp", "HCP-999999", client.DecideOptions{}, codes.NotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.client.Decide(ctx, tt.hcp, tt.opts)
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.code)
			}
			if tt.field == "" {
				return
			}
			if v := client.FieldViolations(err); v[tt.field] == "" {
				t.Errorf("field violations %v, want one for %q", v, tt.field)
			}
			if len(status.Convert(err).Message()) > 500 {
				t.Errorf("error message is %d bytes long; it must not echo the input", len(status.Convert(err).Message()))
			}
		})
	}
}

// rawCodec sends pre-encoded bytes, so a test can put invalid UTF-8 on the
// wire (the Go protobuf library refuses to marshal it).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func TestBadUTF8IsInvalidArgument(t *testing.T) { eachBackend(t, testBadUTF8IsInvalidArgument) }

func testBadUTF8IsInvalidArgument(t *testing.T, b redistest.Backend) {
	ts := start(t, b, 5)
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tests := []struct {
		name, method string
		body         []byte
		field        string
	}{
		// DecideRequest{hcp_id: "HCP-\xff"}
		{"decide hcp_id", "/nba.v1.DecisionService/Decide", []byte{0x0a, 0x05, 'H', 'C', 'P', '-', 0xff}, "hcp_id"},
		// DecideRequest{hcp_id: "HCP-000001", candidates: ["\xc3"]}
		{"decide candidate", "/nba.v1.DecisionService/Decide",
			append([]byte{0x0a, 0x0a}, append([]byte("HCP-000001"), 0x1a, 0x01, 0xc3)...), "candidates[0]"},
		// RecordEventRequest{event: {event_id: "\xfe"}}
		{"event id", "/nba.v1.EventService/RecordEvent", []byte{0x0a, 0x03, 0x0a, 0x01, 0xfe}, "event.event_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			err := conn.Invoke(context.Background(), tt.method, tt.body, &out, grpc.ForceCodec(rawCodec{}))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
			}
			if v := client.FieldViolations(err); !strings.Contains(v[tt.field], "UTF-8") {
				t.Errorf("field violations %v, want %q: must be valid UTF-8", v, tt.field)
			}
		})
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	rs := ownRedis(t)
	var logs lockedBuffer
	ts := startLogging(t, redistest.Backend{Name: "redis", Addrs: []string{rs.Addr}}, 5, &logs)
	ctx := context.Background()
	if _, err := ts.client.Decide(ctx, "HCP-000001", client.DecideOptions{}); err != nil {
		t.Fatalf("decide with Redis up: %v", err)
	}
	rs.Kill()
	d, err := ts.client.Decide(ctx, "HCP-000001", client.DecideOptions{})
	if status.Code(err) != codes.Unavailable || d != nil {
		t.Fatalf("decide with Redis down: %v, %v; want Unavailable and no decision", d, err)
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, "dial") || strings.Contains(msg, "127.0.0.1") {
		t.Errorf("Unavailable message leaks the storage error: %q", msg)
	}
	_, err = ts.client.SetConsent(ctx, "HCP-000001", client.ConsentRecord{Channel: arbiter.Email, Purpose: arbiter.Promotional,
		Status: client.ConsentOptOut, CapturedAt: time.Now(), Source: "crm"}, false)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("set consent with Redis down: %v, want Unavailable (the caller must retry; nothing acknowledged)", err)
	}
	// A write whose acknowledgement failed may have been applied: the
	// message says so, not that no decision was made.
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "may or may not have been applied") || strings.Contains(msg, "no decision") {
		t.Errorf("set consent with Redis down says %q; want it to say the write may have been applied", msg)
	}
	if msg := status.Convert(func() error {
		_, err := ts.client.Decide(ctx, "HCP-000001", client.DecideOptions{})
		return err
	}()).Message(); !strings.Contains(msg, "no decision was made") {
		t.Errorf("decide with Redis down says %q; want no decision was made", msg)
	}
	// The failures are logged for the operator, without the HCP's id.
	log := logs.String()
	if !strings.Contains(log, "storage unavailable") {
		t.Errorf("the outage was not logged:\n%s", log)
	}
	if strings.Contains(log, "HCP-000001") {
		t.Errorf("the log names the HCP:\n%s", log)
	}
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines to write
// while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEmbeddedDemoStoreAndHealth(t *testing.T) {
	ts := start(t, embedded, 100)
	ctx := context.Background()
	d, err := ts.client.Decide(ctx, "HCP-000042", client.DecideOptions{Caller: arbiter.CallerRepTool, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Recommendations) != 3 {
		t.Fatalf("got %d recommendations, want 3", len(d.Recommendations))
	}
	for _, r := range d.Recommendations {
		if r.Reason == "" || r.Score <= 0 {
			t.Errorf("recommendation %s has reason %q and score %v", r.ActionID, r.Reason, r.Score)
		}
	}
	if len(d.Suppressed) == 0 {
		t.Error("nothing suppressed: the demo catalog has unapproved content that must be")
	}

	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, svc := range []string{"", "nba.v1.DecisionService"} {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health(%q) = %v, %v; want SERVING", svc, h, err)
		}
	}
}

// A candidate set names its actions once in the catalog; a decision over it
// considers exactly those, like the same ids listed in the request.
func TestDecideCandidateSet(t *testing.T) {
	ts := start(t, embedded, 50)
	ctx := context.Background()
	set, _ := catalog.Demo().Set("hcp-email")
	var ids []string
	inSet := map[string]bool{}
	for _, ai := range set {
		id := catalog.Demo().Actions[ai].ID
		ids = append(ids, id)
		inSet[id] = true
	}
	recommended := 0
	for i := 1; i <= 50; i++ {
		hcp := demo.HCPID(i)
		bySet, err := ts.client.Decide(ctx, hcp, client.DecideOptions{Limit: 5, CandidateSet: "hcp-email", Explain: true})
		if err != nil {
			t.Fatalf("decide %s over the set: %v", hcp, err)
		}
		byIDs, err := ts.client.Decide(ctx, hcp, client.DecideOptions{Limit: 5, Candidates: ids, Explain: true})
		if err != nil {
			t.Fatalf("decide %s over the ids: %v", hcp, err)
		}
		if len(bySet.Recommendations) != len(byIDs.Recommendations) || len(bySet.Suppressed) != len(byIDs.Suppressed) {
			t.Fatalf("%s: set gives %d recommendations and %d suppressions, its ids %d and %d", hcp,
				len(bySet.Recommendations), len(bySet.Suppressed), len(byIDs.Recommendations), len(byIDs.Suppressed))
		}
		for j, r := range bySet.Recommendations {
			if !inSet[r.ActionID] || r.ActionID != byIDs.Recommendations[j].ActionID {
				t.Errorf("%s: recommendation %d is %s, not in the set or not as with its ids (%s)", hcp, j, r.ActionID, byIDs.Recommendations[j].ActionID)
			}
			recommended++
		}
		for _, s := range bySet.Suppressed {
			if !inSet[s.ActionID] {
				t.Errorf("%s: suppression of %s, not in the set", hcp, s.ActionID)
			}
		}
	}
	if recommended == 0 {
		t.Error("no recommendation from the hcp-email set for 50 demo HCPs; the test shows nothing")
	}
}

// Liveness and readiness: while Redis is stalled, the replica reports
// NOT_SERVING for its services (readiness: a load balancer sends it no
// traffic) but SERVING for "" (liveness: no restart for a Redis blip), and
// it recovers by itself once Redis does. Waits are on the health Watch
// stream, each with a deadline.
func TestReadinessFollowsRedisLivenessDoesNot(t *testing.T) {
	rs := ownRedis(t)
	ts := start(t, redistest.Backend{Name: "redis", Addrs: []string{rs.Addr}}, 1, "-definitions-poll", "100ms")
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "nba.v1.DecisionService"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			h, err := watch.Recv()
			if err != nil {
				t.Fatalf("waiting for readiness %v: %v", want, err)
			}
			if h.Status == want {
				return
			}
		}
	}
	waitStatus(healthpb.HealthCheckResponse_SERVING)
	if err := rs.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			rs.Thaw()
		}
	}()
	waitStatus(healthpb.HealthCheckResponse_NOT_SERVING)
	if h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness with Redis stalled: %v, %v; want SERVING", h, err)
	}
	if err := rs.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	waitStatus(healthpb.HealthCheckResponse_SERVING)
}

// Shutdown: health turns NOT_SERVING first, and the server serves on
// through the drain window; an idle health watch and an idle CheckSendBatch
// stream do not hold it for the whole grace period (the stream ends with
// Unavailable, its answered items standing).
func TestShutdownDrainsThenStopsIdleStreams(t *testing.T) {
	var logs lockedBuffer
	ts := startLogging(t, embedded, 5, &logs, "-shutdown-drain", "2s", "-shutdown-grace", "1m")
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: "nba.v1.DecisionService"})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := watch.Recv(); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("before shutdown: %v, %v", h, err)
	}
	batch, err := nbapb.NewSendServiceClient(conn).CheckSendBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := nbapb.NewProfileServiceClient(conn).ImportProfiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- ts.Main.Close() }()
	if h, err := watch.Recv(); err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("on shutdown: %v, %v; want NOT_SERVING first", h, err)
	}
	// Still serving during the drain.
	if _, err := ts.client.Decide(ctx, "HCP-000001", client.DecideOptions{}); err != nil {
		t.Errorf("a decision during the drain: %v", err)
	}
	if _, err := batch.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("the idle CheckSendBatch stream on shutdown: %v, want Unavailable", err)
	}
	if _, err := imp.CloseAndRecv(); status.Code(err) != codes.Unavailable {
		t.Errorf("the idle ImportProfiles stream on shutdown: %v, want Unavailable", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return: an idle stream held it")
	}
	if strings.Contains(logs.String(), "grace period over") {
		t.Errorf("the server waited out its grace period:\n%s", logs.String())
	}
}

// Admission control: past -max-in-flight, a call is refused at once with
// RESOURCE_EXHAUSTED and a retry hint, rather than queued behind the
// others; health checks are always answered.
func TestAdmissionShedsPastTheBound(t *testing.T) {
	rs := ownRedis(t)
	ts := start(t, redistest.Backend{Name: "redis", Addrs: []string{rs.Addr}}, 5, "-max-in-flight", "1", "-admission-wait", "0s")
	ctx := context.Background()
	if _, err := ts.client.Decide(ctx, "HCP-000001", client.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	// With Redis stalled, the one slot stays taken until its read times out.
	if err := rs.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer rs.Thaw()
	const n = 12
	codesSeen := make(chan error, n)
	for range n {
		go func() {
			_, err := ts.client.Decide(ctx, "HCP-000002", client.DecideOptions{})
			codesSeen <- err
		}()
	}
	shed := 0
	for range n {
		err := <-codesSeen
		switch status.Code(err) {
		case codes.ResourceExhausted:
			shed++
			var hinted bool
			for _, d := range status.Convert(err).Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
					hinted = true
				}
			}
			if !hinted {
				t.Errorf("RESOURCE_EXHAUSTED without a retry hint: %v", err)
			}
		case codes.Unavailable, codes.DeadlineExceeded: // the one admitted, on the stalled Redis
		default:
			t.Errorf("a call past the bound: %v, want RESOURCE_EXHAUSTED", err)
		}
	}
	if shed < n-1 {
		t.Errorf("%d of %d calls shed with one slot taken, want at least %d", shed, n, n-1)
	}
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("a health check: %v", err)
	}
}

// At start the server checks that Redis persists what it acknowledges: by
// default it warns loudly; with -durability refuse it does not start; a
// Redis with AOF on passes.
func TestDurabilityCheck(t *testing.T) {
	volatile := ownRedis(t) // appendonly no
	durable := ownRedis(t, "appendonly yes", "appendfsync everysec")
	run := func(addr string, flags ...string) (string, error) {
		args := append([]string{"-listen", "127.0.0.1:0", "-redis-addr", addr, "-shutdown-drain", "0s",
			"-catalog", demoCatalogFile, "-model", demoModelFile, "-consent-policy", demoPolicyFile}, flags...)
		cfg, err := parseConfig("serve", args, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		var logs lockedBuffer
		m := NewMain(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		err = m.Run(context.Background())
		m.Close()
		return logs.String(), err
	}
	if _, err := run(volatile.Addr, "-durability", "refuse"); err == nil || !strings.Contains(err.Error(), "appendonly no") {
		t.Errorf("-durability refuse on a Redis without AOF: %v, want a refusal naming appendonly", err)
	}
	if logs, err := run(volatile.Addr); err != nil || !strings.Contains(logs, "NOT DURABLE") {
		t.Errorf("the default on a Redis without AOF: %v; want it to start with a warning, log:\n%s", err, logs)
	}
	if logs, err := run(durable.Addr, "-durability", "refuse"); err != nil || strings.Contains(logs, "DURAB") {
		t.Errorf("a Redis with AOF: %v, log:\n%s; want a quiet start", err, logs)
	}
}

// An import stream that sends nothing for the stream idle timeout is
// ended (DEADLINE_EXCEEDED, saying how many items were written), rather
// than held open forever.
func TestImportIdleStreamEnds(t *testing.T) {
	ts := start(t, embedded, 1, "-send-stream-idle", "200ms")
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	imp, err := nbapb.NewProfileServiceClient(conn).ImportProfiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := imp.Send(&nbapb.ImportProfilesRequest{Profile: &nbapb.Profile{HcpId: "IDLE-1", Market: "US", Specialty: "cardiology",
		Audience: nbapb.Audience_AUDIENCE_HCP}, CapturedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	// Then nothing, without closing: the server ends the stream.
	var resp nbapb.ImportProfilesResponse
	err = imp.RecvMsg(&resp)
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "1 items before it were written") {
		t.Errorf("the idle import ended with %v, want DEADLINE_EXCEEDED saying the one item was written", err)
	}
	if _, _, err := ts.client.GetProfile(context.Background(), "IDLE-1"); err != nil {
		t.Errorf("the item sent before the idle time: %v, want it written", err)
	}
}

// ownRedis starts a redis-server of the test's own (one a test may kill,
// freeze or configure), with extra configuration lines, stopped at the
// test's end.
func ownRedis(t *testing.T, extra ...string) *redistest.Server {
	t.Helper()
	redistest.Require(t)
	rs, err := redistest.Start(extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	return rs
}

// -gc-percent: 400 unless GOGC is set (then the runtime's, 0); a bad
// value is refused by name.
func TestGCPercentFlag(t *testing.T) {
	base := []string{"-redis-addr", "127.0.0.1:1", "-catalog", "c", "-model", "m", "-consent-policy", "p"}
	cases := []struct {
		env  map[string]string
		args []string
		want int
		err  bool
	}{
		{want: 400},
		{env: map[string]string{"GOGC": "200"}, want: 0},
		{env: map[string]string{"GOGC": "200"}, args: []string{"-gc-percent", "800"}, want: 800},
		{env: map[string]string{"ARBITER_GC_PERCENT": "150"}, want: 150},
		{args: []string{"-gc-percent", "0"}, want: 0},
		{args: []string{"-gc-percent", "-5"}, err: true},
		{args: []string{"-gc-percent", "lots"}, err: true},
	}
	for _, c := range cases {
		cfg, err := parseConfig("serve", append(append([]string{}, base...), c.args...), func(k string) string { return c.env[k] })
		switch {
		case c.err && (err == nil || !strings.Contains(err.Error(), "gc-percent")):
			t.Errorf("%v %v: err %v, want one naming gc-percent", c.env, c.args, err)
		case !c.err && err != nil:
			t.Errorf("%v %v: %v", c.env, c.args, err)
		case !c.err && cfg.GCPercent != c.want:
			t.Errorf("%v %v: GCPercent %d, want %d", c.env, c.args, cfg.GCPercent, c.want)
		}
	}
}
