package redisstore

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// TestScriptsOnMiniredis runs the same scenario on the real redis-server and
// on miniredis (the embedded store of the demo, `make run`), and checks that
// both end in the same state: the Lua scripts must not rely on anything
// miniredis's Lua lacks.
func TestScriptsOnMiniredis(t *testing.T) {
	bs := []redistest.Backend{redisBackends[0], redistest.Miniredis}
	results := make([]scenarioResult, len(bs))
	for i, b := range bs {
		t.Run(b.Name, func(t *testing.T) {
			s, rdb, c := newStoreOn(t, b)
			c.t = t0.Add(halfLife)
			// What an earlier version left: stamped counters and an old
			// ledger, for Migrate's scripts.
			ctx := context.Background()
			if err := s.UpsertProfile(ctx, hcpProfile("hcp-old")); err != nil {
				t.Fatal(err)
			}
			if err := rdb.HSet(ctx, s.key("hcp-old", suffixProfile), "s:email", "4|"+ms(t0), "e:sms", "2|"+ms(t0.Add(day))).Err(); err != nil {
				t.Fatal(err)
			}
			entries, _ := legacyEntries()
			if err := rdb.RPush(ctx, s.key("hcp-old", suffixLegacyLedger), format1(entries[0]), format2(entries[1])).Err(); err != nil {
				t.Fatal(err)
			}
			results[i] = scenario(t, s)
		})
	}
	if t.Failed() {
		return
	}
	want, got := results[0], results[1]
	if len(got.states) != len(want.states) {
		t.Fatalf("miniredis loaded %d recipients, redis-server %d", len(got.states), len(want.states))
	}
	for j := range want.states {
		g, w := got.states[j], want.states[j]
		if !reflect.DeepEqual(g.Profile, w.Profile) {
			t.Errorf("state %d: miniredis profile %+v, redis-server %+v", j, g.Profile, w.Profile)
		}
		if d := diffCounters(g.Counters, w.Counters); d != "" {
			t.Errorf("state %d: miniredis counters differ from redis-server: %s", j, d)
		}
		if !reflect.DeepEqual(g.Consent, w.Consent) {
			t.Errorf("state %d: miniredis consent %+v, redis-server %+v", j, g.Consent, w.Consent)
		}
	}
	if !reflect.DeepEqual(got.ledgers, want.ledgers) {
		t.Errorf("miniredis ledgers\n%+v\nredis-server\n%+v", got.ledgers, want.ledgers)
	}
	if got.migrated != want.migrated {
		t.Errorf("miniredis Migrate = %+v, redis-server %+v", got.migrated, want.migrated)
	}
}

type scenarioResult struct {
	states   []*recipient.State
	ledgers  map[string][]consent.LedgerEntry
	migrated MigrateProgress
}

// scenario exercises every script path and returns the final states and
// ledgers of the imported HCPs and of hcp-old, which it migrates.
func scenario(t *testing.T, s *Store) scenarioResult {
	t.Helper()
	ctx := context.Background()
	var res scenarioResult
	var err error
	if res.migrated, err = s.Migrate(ctx, nil); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	items := importItems()
	if err := s.Import(ctx, items); err != nil {
		t.Fatalf("Import: %v", err)
	}
	p := items[0].Profile
	p.Attributes = map[string]float64{"decile": 9}
	p.Addresses[arbiter.SMS] = ""
	if err := s.UpsertProfile(ctx, p); err != nil {
		t.Fatalf("UpsertProfile: %v", err)
	}
	t1 := t0.Add(halfLife)
	events := []struct {
		e       recipient.Event
		wantDup bool
		wantErr error
	}{
		{recipient.Event{ID: "1", HCPID: "hcp-a", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0}, false, nil},
		{recipient.Event{ID: "2", HCPID: "hcp-a", Type: arbiter.EventClicked, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t1}, false, nil},
		{recipient.Event{ID: "3", HCPID: "hcp-a", Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}, false, nil},
		{recipient.Event{ID: "3", HCPID: "hcp-a", Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}, true, nil},
		{recipient.Event{ID: "4", HCPID: "hcp-b", Type: arbiter.EventMSLMeeting, Channel: arbiter.MSLMeeting, OccurredAt: t1}, false, nil},
		{recipient.Event{ID: "5", HCPID: "hcp-b", Type: arbiter.EventBounced, Channel: arbiter.Email, OccurredAt: t0}, false, nil},
		{recipient.Event{ID: "6", HCPID: "nobody", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}, false, arbiter.ErrNotFound},
		{unsubscribe("hcp-b", "7", t1.Add(-time.Hour)), false, nil},
		{unsubscribe("hcp-b", "7", t1.Add(-time.Hour)), true, nil},
		{recipient.Event{ID: "8", HCPID: "hcp-old", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}, false, nil},
		{unsubscribe("hcp-old", "9", t1), false, nil},
	}
	for _, ev := range events {
		dup, err := s.ApplyEvent(ctx, ev.e)
		if dup != ev.wantDup || !errors.Is(err, ev.wantErr) {
			t.Errorf("ApplyEvent(%s) = %v, %v; want %v, %v", ev.e.ID, dup, err, ev.wantDup, ev.wantErr)
		}
	}
	res.ledgers = map[string][]consent.LedgerEntry{}
	for _, id := range []string{"hcp-a", "hcp-b", "pat-c", "hcp-old"} {
		snap, err := s.Load(ctx, id, t1.Add(halfLife))
		if err != nil {
			t.Fatalf("Load(%s): %v", id, err)
		}
		res.states = append(res.states, snap)
		res.ledgers[id] = ledger(t, s, id)
	}
	// Spot-checks. hcp-a: engagement 2 at t1 plus 1 at t0, read at t1 + halfLife.
	if got := res.states[0].Counters.Engagement[arbiter.Email]; !near(got, 1.25) {
		t.Errorf("hcp-a email engagement = %v, want 1.25", got)
	}
	// hcp-b: its import's record and one opt-out however often delivered.
	if got := len(res.ledgers["hcp-b"]); got != 2 {
		t.Errorf("hcp-b ledger = %d entries, want 2", got)
	}
	// hcp-old: two migrated entries and the unsubscribe.
	if got := res.ledgers["hcp-old"]; len(got) != 3 || got[2].Seq != 2 || got[2].Record.Source != "unsubscribe-event" {
		t.Errorf("hcp-old ledger = %+v, want 2 migrated entries and the unsubscribe at seq 2", got)
	}
	if res.migrated.Ledgers != 1 || res.migrated.Profiles != 1 {
		t.Errorf("Migrate = %+v, want 1 ledger and 1 profile converted", res.migrated)
	}
	if _, err := s.Load(ctx, "nobody", t1); !errors.Is(err, arbiter.ErrNotFound) {
		t.Errorf("Load(nobody) error = %v, want ErrNotFound", err)
	}
	return res
}
