package features

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
)

// TestScriptsOnMiniredis runs the same scenario on the real redis-server and
// on miniredis (the embedded store of the demo, `make run`), and checks that
// both end in the same state: the Lua scripts must not rely on anything
// miniredis's Lua lacks.
func TestScriptsOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	mrdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { mrdb.Close() })
	t1 := func() time.Time { return t0.Add(halfLife) }
	real, _, _ := newStore(t, WithClock(t1))

	backends := []struct {
		name string
		s    *Store
	}{
		{"redis-server", real},
		{"miniredis", NewStore(mrdb, WithClock(t1), WithHalfLife(halfLife))},
	}

	snaps := make([][]*Snapshot, len(backends))
	for i, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			snaps[i] = scenario(t, b.s)
		})
	}
	if t.Failed() {
		return
	}
	for j := range snaps[0] {
		got, want := snaps[1][j], snaps[0][j]
		if !reflect.DeepEqual(got.Profile, want.Profile) {
			t.Errorf("snapshot %d: miniredis profile %+v, redis-server %+v", j, got.Profile, want.Profile)
		}
		if d := diffCounters(got.Counters, want.Counters); d != "" {
			t.Errorf("snapshot %d: miniredis counters differ from redis-server: %s", j, d)
		}
		if !reflect.DeepEqual(got.Consent, want.Consent) {
			t.Errorf("snapshot %d: miniredis consent %+v, redis-server %+v", j, got.Consent, want.Consent)
		}
	}
}

// scenario exercises every script path and returns the final snapshots of
// the imported HCPs.
func scenario(t *testing.T, s *Store) []*Snapshot {
	t.Helper()
	ctx := context.Background()
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
		e       Event
		wantDup bool
		wantErr error
	}{
		{Event{ID: "1", HCPID: "hcp-a", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0}, false, nil},
		{Event{ID: "2", HCPID: "hcp-a", Type: arbiter.EventClicked, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t1}, false, nil},
		{Event{ID: "3", HCPID: "hcp-a", Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}, false, nil},
		{Event{ID: "3", HCPID: "hcp-a", Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}, true, nil},
		{Event{ID: "4", HCPID: "hcp-b", Type: arbiter.EventMSLMeeting, Channel: arbiter.MSLMeeting, OccurredAt: t1}, false, nil},
		{Event{ID: "5", HCPID: "hcp-b", Type: arbiter.EventBounced, Channel: arbiter.Email, OccurredAt: t0}, false, nil},
		{Event{ID: "6", HCPID: "nobody", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}, false, arbiter.ErrNotFound},
	}
	for _, ev := range events {
		dup, err := s.ApplyEvent(ctx, ev.e)
		if dup != ev.wantDup || !errors.Is(err, ev.wantErr) {
			t.Errorf("ApplyEvent(%s) = %v, %v; want %v, %v", ev.e.ID, dup, err, ev.wantDup, ev.wantErr)
		}
	}
	var out []*Snapshot
	for _, it := range items {
		snap, err := s.Load(ctx, it.Profile.HCPID, t1.Add(halfLife))
		if err != nil {
			t.Fatalf("Load(%s): %v", it.Profile.HCPID, err)
		}
		out = append(out, snap)
	}
	// Spot-check hcp-a: engagement 2 at t1 plus 1 at t0, read at t1 + halfLife.
	if got := out[0].Counters.Engagement[arbiter.Email]; !near(got, 1.25) {
		t.Errorf("hcp-a email engagement = %v, want 1.25", got)
	}
	if _, err := s.Load(ctx, "nobody", t1); !errors.Is(err, arbiter.ErrNotFound) {
		t.Errorf("Load(nobody) error = %v, want ErrNotFound", err)
	}
	return out
}
