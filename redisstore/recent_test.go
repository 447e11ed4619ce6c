package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// History entries of every version decode: without a principal (before
// the principal was recorded), with one, and with the event's purpose.
func TestDecodeHistoryVersions(t *testing.T) {
	want := recipient.RecentEvent{At: t0, Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "a", Topic: "t"}
	withPurpose := want
	withPurpose.Purpose = arbiter.Medical
	e := recipient.Event{Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "a", Topic: "t"}
	ep := e
	ep.Purpose = arbiter.Medical
	for _, tt := range []struct {
		entry string
		want  recipient.RecentEvent
	}{
		{ms(t0) + "|opened|email|a|t", want},
		{historyEntry(e, t0.UnixMilli(), "feed|1"), want},
		{historyEntry(ep, t0.UnixMilli(), "feed|1"), withPurpose},
	} {
		got, ok := decodeHistory(tt.entry)
		if !ok || got != tt.want {
			t.Errorf("decodeHistory(%q) = %+v, %v; want %+v", tt.entry, got, ok, tt.want)
		}
	}
	for _, bad := range []string{"", "x|opened|email|a|t", ms(t0) + "|nope|email|a|t", ms(t0) + "|opened|email|a|t|p|nope"} {
		if _, ok := decodeHistory(bad); ok {
			t.Errorf("decodeHistory(%q) decoded", bad)
		}
	}
}

// A decision reads the newest events the definitions ask for, none older
// than their maximum age.
func TestRecentEventsBounds(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		s, _, c := newStoreOn(t, b)
		ctx := context.Background()
		if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
			t.Fatal(err)
		}
		for i, age := range []time.Duration{50 * time.Hour, 3 * time.Hour, 2 * time.Hour, time.Hour} {
			e := recipient.Event{ID: fmt.Sprint("e", i), HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: c.t.Add(-age)}
			if _, err := s.ApplyEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		s.SetRecentEvents(RecentEvents{Count: 3, MaxAge: 150 * time.Minute})
		st, err := s.Load(ctx, "hcp-1", c.t)
		if err != nil {
			t.Fatal(err)
		}
		// The newest three by arrival are 3h, 2h and 1h old; the 3h one is
		// past the maximum age.
		if len(st.Recent) != 2 || !st.Recent[0].At.Equal(c.t.Add(-time.Hour)) || !st.Recent[1].At.Equal(c.t.Add(-2*time.Hour)) {
			t.Errorf("recent = %+v, want the events of 1h and 2h ago, newest first", st.Recent)
		}
	})
}
