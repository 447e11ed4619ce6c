package server

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	_ "github.com/arbiter-nba/arbiter/celrules"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
)

type fixedStates map[string]*recipient.State

func (s fixedStates) Load(_ context.Context, id string, _ time.Time) (*recipient.State, error) {
	if st, ok := s[id]; ok {
		return st, nil
	}
	return nil, arbiter.ErrNotFound
}

// demoStates is the demo population's first n recipients as decisions
// load them, with a few recent events each.
func demoStates(n int, now time.Time) fixedStates {
	out := fixedStates{}
	for i := 1; i <= n; i++ {
		item := demo.HCP(i, now)
		st := &recipient.State{Profile: item.Profile, Counters: *item.Counters}
		st.Profile.Attributes = maps.Clone(item.Profile.Attributes)
		st.Consent = consent.State{Complete: item.ConsentComplete, Records: item.Consent, Version: int64(len(item.Consent))}
		st.Touches.Touches = item.Touches
		for _, e := range demo.JourneyEvents(i, now) {
			st.Recent = append(st.Recent, recipient.RecentEvent{At: e.OccurredAt, Type: e.Type, Channel: e.Channel,
				ActionID: e.ActionID, Topic: e.Topic, Purpose: e.Purpose})
		}
		out[item.Profile.HCPID] = st
	}
	return out
}

func demoEngine(t testing.TB, loader decision.Loader, now time.Time) *decision.Engine {
	t.Helper()
	set := definitions.Demo()
	e, err := decision.New(loader, set.Model, set.Catalog, set.Policy, decision.WithDefinitionsVersion(set.Version),
		decision.WithContactPolicy(set.Contact), decision.WithRules(set.Rules), decision.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A receipt's stored form gives back, for a replay, exactly what the
// decision was made from: the replay of every demo recipient's decision,
// from the decoded receipt, is the logged answer to the bit.
func TestReceiptRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.UTC)
	states := demoStates(300, now)
	e := demoEngine(t, states, now)
	e.SetPausedJourneys(map[string]bool{"glucanor-launch": true})
	ctx := context.Background()
	for id := range states {
		req := decision.Request{HCPID: id, Limit: 5, Explain: len(id)%2 == 0}
		res, err := e.Decide(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		data, err := EncodeReceipt(&decision.Receipt{Kind: decision.KindDecide, Principal: "svc-crm", Request: req, Result: res})
		if err != nil {
			t.Fatal(err)
		}
		p, err := DecodeReceipt(data, func(string) *catalog.Catalog { return e.Catalog() })
		if err != nil {
			t.Fatal(err)
		}
		rc, err := receiptOf(p)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := e.Replay(ctx, rc)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffDecided(p.GetDecided(), decideResponse(got)); len(d) > 0 {
			t.Fatalf("%s: the replay from the stored receipt differs: %v", id, d)
		}
		if !proto.Equal(p.GetDecided(), decideResponse(got)) {
			t.Fatalf("%s: the replay is not the logged answer", id)
		}
	}
}

// BenchmarkEncodeReceipt is what the asynchronous log costs the server per
// decision: converting the receipt and marshalling it (the answer is
// converted once, for the caller, and reused).
func BenchmarkEncodeReceipt(b *testing.B) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	states := demoStates(20, now)
	e := demoEngine(b, states, now)
	ctx := context.Background()
	var ps []pendingReceipt
	for id := range states {
		req := decision.Request{HCPID: id, Limit: 3}
		res, err := e.Decide(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, pendingReceipt{rc: &decision.Receipt{Kind: decision.KindDecide, Request: req, Result: res}, decided: decideResponse(res)})
	}
	var size int
	defer cpuPerOp(b)()
	for i := 0; b.Loop(); i++ {
		sr, err := stored(ps[i%len(ps)])
		if err != nil {
			b.Fatal(err)
		}
		size += len(sr.Data)
	}
	b.ReportMetric(float64(size)/float64(b.N), "bytes/receipt")
}

// A stored answer keeps its decision id, definitions version and decision
// time (the previous release reads it as it is, and a replay compares
// them); a receipt stored without them (they are the receipt's own too)
// decodes to the same answer, which a replay gives again.
func TestReceiptsStoredBeforeStillDecode(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.UTC)
	states := demoStates(20, now)
	e := demoEngine(t, states, now)
	ctx := context.Background()
	catalogFor := func(string) *catalog.Catalog { return e.Catalog() }
	for id := range states {
		req := decision.Request{HCPID: id, Limit: 3, Explain: len(id)%2 == 1}
		res, err := e.Decide(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		p := receiptProtoWith(&decision.Receipt{Kind: decision.KindDecide, Request: req, Result: res}, nil, nil)
		if d := p.GetDecided(); d.GetDecisionId() != res.ID || d.GetDefinitionsVersion() != res.DefinitionsVersion ||
			!d.GetDecisionTime().AsTime().Equal(res.At) {
			t.Fatalf("%s: the stored answer lacks its identity: %v", id, d)
		}
		before, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		// The compact form: the answer without its identity.
		compact := proto.Clone(p).(*nbapb.DecisionReceipt)
		compact.Decided.DecisionId, compact.Decided.DefinitionsVersion, compact.Decided.DecisionTime = "", "", nil
		now, err := proto.Marshal(compact)
		if err != nil {
			t.Fatal(err)
		}
		a, err := DecodeReceipt(before, catalogFor)
		if err != nil {
			t.Fatal(err)
		}
		b, err := DecodeReceipt(now, catalogFor)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(a, b) {
			t.Fatalf("%s: the earlier form decodes to\n%v\nthe new one to\n%v", id, a, b)
		}
		if !proto.Equal(b.GetDecided(), decideResponse(res)) {
			t.Fatalf("%s: the decoded answer is not the one given:\n%v\n%v", id, b.GetDecided(), decideResponse(res))
		}
	}
}

// A receipt's stored form, its inputs encoded directly, decodes to
// exactly the message receiptProtoWith makes, as proto.Marshal of it
// would: for the demo population's decisions, the bench's, and a state
// with the edges of the encoding (times before 1970, at its very second,
// with and without nanoseconds, zero; long strings and a state of more
// than 16 KB, whose lengths take more than a byte; an unknown
// reservation state). Invalid UTF-8 fails both.
func TestReceiptEncodingDecodesAsTheMessage(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.UTC)
	states := demoStates(100, now)
	e := demoEngine(t, states, now)
	ctx := context.Background()
	check := func(name string, rc *decision.Receipt) {
		t.Helper()
		got, err := EncodeReceipt(rc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := proto.Marshal(receiptProtoWith(rc, nil, nil))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var g, w nbapb.DecisionReceipt
		if err := proto.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := proto.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&g, &w) || len(g.ProtoReflect().GetUnknown()) != 0 || len(g.GetInputs().ProtoReflect().GetUnknown()) != 0 {
			t.Fatalf("%s: the stored form decodes to\n%v\nwant\n%v", name, &g, &w)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d bytes, proto.Marshal %d", name, len(got), len(want))
		}
	}
	var last *decision.Result
	var lastReq decision.Request
	for id := range states {
		req := decision.Request{HCPID: id, Limit: 5, Explain: len(id)%2 == 0}
		res, err := e.Decide(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		check(id, &decision.Receipt{Kind: decision.KindDecide, Principal: "svc-crm", Request: req, Result: res})
		last, lastReq = res, req
	}
	for _, p := range benchResults(t) {
		check("bench "+p.rc.HCPID(), p.rc)
	}

	// The edges.
	long := strings.Repeat("topic-e-", 40)
	st := *last.Inputs
	st.Touches.Touches = nil
	for i, at := range []time.Time{{}, time.Unix(0, 0), time.Unix(0, 7), time.Unix(-1, 999_999_999), time.Unix(-86400*400, 0),
		now, time.Unix(1<<40, 1)} {
		st.Touches.Touches = append(st.Touches.Touches, contact.Touch{At: at, Channel: arbiter.Email, Purpose: arbiter.Promotional,
			Topic: long[:i*40], ActionID: "act-" + long[:i], MessageID: "", State: contact.TouchState(i), ReservationID: strings.Repeat("é", 100),
			ExpiresAt: at.Add(time.Hour)})
		st.Recent = append(st.Recent, recipient.RecentEvent{At: at, Type: arbiter.EventType(i), Channel: arbiter.Channel(i % 3),
			ActionID: long[:i*10], Topic: "t", Purpose: arbiter.Purpose(i % 2)})
		st.JourneyOverrides = append(st.JourneyOverrides, recipient.JourneyOverride{Journey: "j", Step: long[:i*20], At: at, Principal: "p"})
		st.Dismissals = append(st.Dismissals, recipient.Dismissal{ActionID: long[:i], At: at, Principal: ""})
	}
	st.Touches.Touches = append(st.Touches.Touches, contact.Touch{State: contact.TouchState(200)}) // not a known state
	res := *last
	res.Inputs = &st
	check("edges", &decision.Receipt{Kind: decision.KindDecide, Request: lastReq, Result: &res})
	big := st
	for range 9 {
		big.Touches.Touches = append(big.Touches.Touches, big.Touches.Touches...)
	}
	res.Inputs = &big
	check("more than 16 KB of state", &decision.Receipt{Kind: decision.KindDecide, Request: lastReq, Result: &res})

	bad := st
	bad.Recent = append(slices.Clone(st.Recent), recipient.RecentEvent{At: now, Topic: "\xff"})
	res.Inputs = &bad
	if _, err := EncodeReceipt(&decision.Receipt{Kind: decision.KindDecide, Request: lastReq, Result: &res}); err == nil {
		t.Error("a receipt with invalid UTF-8 was encoded")
	}
	if _, err := proto.Marshal(receiptProtoWith(&decision.Receipt{Kind: decision.KindDecide, Request: lastReq, Result: &res}, nil, nil)); err == nil {
		t.Error("proto.Marshal took invalid UTF-8: the test's premise is wrong")
	}
}
