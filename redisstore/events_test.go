package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// dumpKeys returns every key under the store's prefix (without it) with
// its contents as text: what a test compares to say that two ways of
// writing left Redis in the same state.
func dumpKeys(t *testing.T, s *Store, rdb redis.UniversalClient) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range keysWithPrefix(t, rdb, s.prefix) {
		var v any
		var err error
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "set":
			var m []string
			m, err = rdb.SMembers(ctx, k).Result()
			slices.Sort(m)
			v = m
		default:
			t.Fatalf("key %s: type %s", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(k, s.prefix)] = fmt.Sprint(v)
	}
	return out
}

// outcomeText describes an outcome for comparison: applied, duplicate, or
// the error's class and violations.
func outcomeText(dup bool, err error) string {
	switch {
	case err == nil && dup:
		return "duplicate"
	case err == nil:
		return "applied"
	case errors.Is(err, arbiter.ErrNotFound):
		return "not found"
	case errors.Is(err, arbiter.ErrCorrupt):
		return "corrupt"
	case violationFields(err) != nil:
		return "invalid " + strings.Join(violationFields(err), ",")
	}
	return "error " + err.Error()
}

func TestApplyEvents(t *testing.T) { eachBackend(t, testApplyEvents) }

// A batch with new, repeated, invalid and unknown recipients' events, an
// unsubscribe and a recipient whose counters cannot be read: each gets
// the outcome ApplyEvent gives it, and Redis is left exactly as applying
// them one by one with ApplyEvent leaves it.
func testApplyEvents(t *testing.T, b redistest.Backend) {
	ctx := context.Background()
	t1 := t0.Add(time.Hour)
	ev := func(id, hcp string, typ arbiter.EventType, ch arbiter.Channel, at time.Time) recipient.Event {
		return recipient.Event{ID: id, HCPID: hcp, Type: typ, Channel: ch, OccurredAt: at, ActionID: "act-1"}
	}
	sent := ev("s1", "hcp-1", arbiter.EventSent, arbiter.Email, t0)
	sent.MessageID = "m-1"
	delivered := ev("d1", "hcp-1", arbiter.EventDelivered, arbiter.Email, t0.Add(time.Minute))
	delivered.MessageID = "m-1"
	opened := ev("o1", "hcp-1", arbiter.EventOpened, arbiter.Email, t1)
	opened.Topic = "efficacy"
	noTime := ev("bad-1", "hcp-1", arbiter.EventOpened, arbiter.Email, time.Time{})
	pre := ev("pre-1", "hcp-2", arbiter.EventOpened, arbiter.Email, t0)
	batch := []recipient.Event{
		sent, delivered, opened,
		opened, // the same id again, in the same batch
		pre,    // applied before the batch
		ev("c1", "hcp-2", arbiter.EventClicked, arbiter.SMS, t1),
		ev("u1", "hcp-2", arbiter.EventUnsubscribed, arbiter.Email, t1),
		ev("n1", "hcp-404", arbiter.EventOpened, arbiter.Email, t1),
		noTime,
		ev("x1", "hcp-3", arbiter.EventOpened, arbiter.Email, t1),
		ev("r1", "hcp-2", arbiter.EventRepVisit, arbiter.RepVisit, t1),
		ev("s0", "hcp-1", arbiter.EventSent, arbiter.Email, t0.Add(-day)), // older than the counters' time
	}
	want := []string{"applied", "applied", "applied", "duplicate", "duplicate", "applied", "applied",
		"not found", "invalid occurred_at", "corrupt", "applied", "applied"}

	setup := func() (*Store, redis.UniversalClient, *clock) {
		s, rdb, c := newStoreOn(t, b)
		c.t = t1
		for _, id := range []string{"hcp-1", "hcp-2", "hcp-3"} {
			if err := s.UpsertProfile(ctx, hcpProfile(id)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.ApplyEvent(ctx, pre); err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(ctx, s.key("hcp-3", suffixProfile), fCounterTime, "not-a-time").Err(); err != nil {
			t.Fatal(err)
		}
		return s, rdb, c
	}

	batched, brdb, _ := setup()
	outs, err := batched.ApplyEvents(ctx, batch)
	if err != nil {
		t.Fatalf("ApplyEvents: %v", err)
	}
	if len(outs) != len(batch) {
		t.Fatalf("%d outcomes for %d events", len(outs), len(batch))
	}
	one, ordb, _ := setup()
	for i, e := range batch {
		dup, err := one.ApplyEvent(ctx, e)
		got := outcomeText(outs[i].Duplicate, outs[i].Err)
		if single := outcomeText(dup, err); got != single || got != want[i] {
			t.Errorf("events[%d] (%s): ApplyEvents %q, ApplyEvent %q; want %q", i, e.ID, got, single, want[i])
		}
	}
	if got, single := dumpKeys(t, batched, brdb), dumpKeys(t, one, ordb); !reflect.DeepEqual(got, single) {
		for k := range single {
			if got[k] != single[k] {
				t.Errorf("key %s after ApplyEvents:\n  %s\nafter ApplyEvent one by one:\n  %s", k, got[k], single[k])
			}
		}
		for k := range got {
			if _, ok := single[k]; !ok {
				t.Errorf("key %s written by ApplyEvents only", k)
			}
		}
	}
	// The unsubscribe's opt-out, as ApplyEvent writes it.
	if st, err := batched.GetConsent(ctx, "hcp-2"); err != nil || len(st.Records) == 0 {
		t.Errorf("consent after the batch's unsubscribe: %+v, %v; want its opt-out", st, err)
	}

	// Sent again: every applied event is a duplicate now, the others as
	// they were.
	again, err := batched.ApplyEvents(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range batch {
		w := want[i]
		if w == "applied" {
			w = "duplicate"
		}
		if got := outcomeText(again[i].Duplicate, again[i].Err); got != w {
			t.Errorf("again, events[%d]: %q, want %q", i, got, w)
		}
	}
}

func TestApplyEventsPipelined(t *testing.T) { eachBackend(t, testApplyEventsPipelined) }

// A batch's events go to Redis in one pipeline (on a cluster, one per
// node), after the script was loaded once; a script cache flushed since
// (a restart, a failover) costs one more round trip, and nothing is
// applied twice or lost.
func testApplyEventsPipelined(t *testing.T, b redistest.Backend) {
	ctx := context.Background()
	s, rdb, c := newStoreOn(t, b)
	const hcps, n = 20, 300
	for i := range hcps {
		if err := s.UpsertProfile(ctx, hcpProfile(fmt.Sprint("hcp-", i))); err != nil {
			t.Fatal(err)
		}
	}
	batch := func(tag string) []recipient.Event {
		es := make([]recipient.Event, n)
		for i := range es {
			es[i] = recipient.Event{ID: fmt.Sprint(tag, "-", i), HCPID: fmt.Sprint("hcp-", i%hcps), Type: arbiter.EventOpened,
				Channel: arbiter.Email, OccurredAt: c.t.Add(-time.Duration(i) * time.Second)}
		}
		return es
	}
	check := func(name string, outs []recipient.EventOutcome, err error, dup bool) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, o := range outs {
			if o.Err != nil || o.Duplicate != dup {
				t.Fatalf("%s: events[%d] = %+v, want duplicate=%v", name, i, o, dup)
			}
		}
	}
	// The first call loads the script (once per master).
	outs, err := s.ApplyEvents(ctx, batch("warm"))
	check("first batch", outs, err, false)

	trips := &redistest.RoundTrips{}
	trips.AddToNodes(t, rdb)
	masters := int64(1)
	if b.Cluster {
		masters = 3
	}
	outs, err = s.ApplyEvents(ctx, batch("a"))
	check("batch", outs, err, false)
	if got := trips.N(); got < 1 || got > masters {
		t.Errorf("a batch of %d events made %d round trips, want one pipeline (per master: at most %d)", n, got, masters)
	}

	// The script cache flushed on every master: the events that met
	// NOSCRIPT go again with the script's source.
	if err := forEachNode(ctx, rdb, func(ctx context.Context, c redis.Cmdable) error { return c.ScriptFlush(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	trips.Reset()
	outs, err = s.ApplyEvents(ctx, batch("b"))
	check("after SCRIPT FLUSH", outs, err, false)
	if got := trips.N(); got > 2*masters {
		t.Errorf("after SCRIPT FLUSH: %d round trips, want at most two pipelines per master (%d)", got, 2*masters)
	}
	outs, err = s.ApplyEvents(ctx, batch("b"))
	check("after SCRIPT FLUSH, again", outs, err, true)
	outs, err = s.ApplyEvents(ctx, batch("c"))
	check("the script loaded again", outs, err, false)
}

// Without Redis, a batch's valid events fail with the store's error (the
// call's too), and an invalid one with its own.
func TestApplyEventsUnavailable(t *testing.T) {
	c := &clock{t: t0}
	s := mustNew(t, unreachableClient(t), WithClock(c.now))
	es := []recipient.Event{
		{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0},
		{ID: "e2", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email},
		{ID: "e3", HCPID: "hcp-1", Type: arbiter.EventUnsubscribed, Channel: arbiter.Email, OccurredAt: t0},
		{ID: "e4", HCPID: "hcp-2", Type: arbiter.EventUnsubscribed, Channel: arbiter.Email, OccurredAt: t0},
	}
	outs, err := s.ApplyEvents(context.Background(), es)
	if !errors.Is(err, arbiter.ErrUnavailable) {
		t.Fatalf("ApplyEvents error = %v, want one wrapping ErrUnavailable", err)
	}
	for i, want := range []string{"unavailable", "invalid occurred_at", "unavailable", "unavailable"} {
		got := outcomeText(outs[i].Duplicate, outs[i].Err)
		if errors.Is(outs[i].Err, arbiter.ErrUnavailable) {
			got = "unavailable"
		}
		if got != want {
			t.Errorf("events[%d]: %s, want %s", i, got, want)
		}
	}
}
