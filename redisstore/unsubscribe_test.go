package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// unsubscribe returns an unsubscribe event from email.
func unsubscribe(id, eventID string, at time.Time) recipient.Event {
	return recipient.Event{ID: eventID, HCPID: id, Type: arbiter.EventUnsubscribed, Channel: arbiter.Email, OccurredAt: at}
}

// An unsubscribe event must take effect as an opt-out on its channel, and
// a repeated delivery must neither lose nor duplicate the opt-out: the
// ledger gets exactly one entry per event.
func TestUnsubscribeEventRecordsOptOut(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb, _ := newStoreOn(t, b)
		ctx := context.Background()
		if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
			t.Fatal(err)
		}
		in := optIn(arbiter.Email, arbiter.Promotional, t0.Add(-48*time.Hour))
		if _, err := s.SetConsentMany(ctx, "hcp-1", []consent.Record{in}, true); err != nil {
			t.Fatal(err)
		}
		ev := unsubscribe("hcp-1", "unsub-1", t0.Add(-time.Hour))
		for i, wantDup := range []bool{false, true, true} {
			dup, err := s.ApplyEvent(ctx, ev)
			if err != nil || dup != wantDup {
				t.Fatalf("delivery %d: duplicate=%v err=%v, want duplicate=%v", i+1, dup, err, wantDup)
			}
		}
		snap, err := s.Load(ctx, "hcp-1", t0)
		if err != nil {
			t.Fatal(err)
		}
		v := consent.DefaultPolicy().Evaluate(&snap.Consent, consent.Query{Channel: arbiter.Email, Purpose: arbiter.Promotional,
			Address: snap.Profile.Addresses[arbiter.Email], Market: snap.Profile.Market, At: t0})
		if v.Outcome != consent.DeniedOptOut {
			t.Fatalf("after unsubscribe, promotional email is %v, want denied_opt_out", v.Outcome)
		}
		optOut := consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: consent.OptOut,
			CapturedAt: ev.OccurredAt, Source: "unsubscribe-event", CapturedBy: "unsub-1"}
		if got := snap.Consent.Records[v.Record]; got != optOut {
			t.Errorf("decisive record = %+v, want the unsubscribe event's opt-out %+v", got, optOut)
		}
		if st := snap.Consent; len(st.Records) != 1 {
			t.Errorf("consent records = %d, want the opt-out alone (it replaced the older opt-in of the same scope)", len(st.Records))
		}
		want := []consent.LedgerEntry{
			{Seq: 0, Record: in, RecordedAt: t0, Applied: true, MarkedComplete: true},
			{Seq: 1, Record: optOut, RecordedAt: t0, Applied: true},
		}
		got := ledger(t, s, "hcp-1")
		if len(got) != len(want) {
			t.Fatalf("ledger = %+v, want the opt-in and one opt-out: %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("ledger entry %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		// The event's key names the ledger entry it wrote.
		if seq, err := rdb.HGet(ctx, s.key("hcp-1", suffixConsentOps), "event:unsub-1").Result(); err != nil || seq != "1" {
			t.Errorf("idempotency key event:unsub-1 = %q, %v; want 1 (its entry's seq)", seq, err)
		}
	})
}

// The opt-out is written before the event is applied, keyed by the event
// id: a delivery that fails after it (no profile yet), a duplicate and a
// replay after the dedup window add nothing to the ledger; another event
// adds one entry.
func TestUnsubscribeRedelivery(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		s, _, c := newStoreOn(t, b, WithDedupWindow(day))
		ctx := context.Background()
		at := t0.Add(-time.Hour)
		longID := "unsub-" + strings.Repeat("x", 100) // too long for captured_by
		steps := []struct {
			name       string
			before     func() error
			ev         recipient.Event
			wantDup    bool
			wantErr    error
			wantLedger int
		}{
			{"no profile yet: the opt-out stays", nil, unsubscribe("hcp-1", "unsub-1", at), false, arbiter.ErrNotFound, 1},
			{"redelivered once the profile exists", func() error { return s.UpsertProfile(ctx, hcpProfile("hcp-1")) },
				unsubscribe("hcp-1", "unsub-1", at), false, nil, 1},
			{"duplicate delivery", nil, unsubscribe("hcp-1", "unsub-1", at), true, nil, 1},
			{"replayed after the dedup window", func() error { c.t = c.t.Add(2 * day); return nil },
				unsubscribe("hcp-1", "unsub-1", at), false, nil, 1},
			{"another event", nil, unsubscribe("hcp-1", "unsub-2", at.Add(time.Minute)), false, nil, 2},
			{"an id too long for captured_by", nil, unsubscribe("hcp-1", longID, at.Add(2*time.Minute)), false, nil, 3},
			{"that one again", nil, unsubscribe("hcp-1", longID, at.Add(2*time.Minute)), true, nil, 3},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				if st.before != nil {
					if err := st.before(); err != nil {
						t.Fatal(err)
					}
				}
				dup, err := s.ApplyEvent(ctx, st.ev)
				if dup != st.wantDup || !errors.Is(err, st.wantErr) {
					t.Errorf("ApplyEvent(%.12s) = %v, %v; want %v, %v", st.ev.ID, dup, err, st.wantDup, st.wantErr)
				}
				entries := ledger(t, s, "hcp-1")
				if len(entries) != st.wantLedger {
					t.Fatalf("ledger has %d entries, want %d: %+v", len(entries), st.wantLedger, entries)
				}
				last := entries[len(entries)-1]
				if !last.Applied || last.Record.Status != consent.OptOut || !last.Record.CapturedAt.Equal(st.ev.OccurredAt) {
					t.Errorf("last ledger entry = %+v, want this event's opt-out, applied", last)
				}
				wantBy := st.ev.ID
				if len(wantBy) > 64 {
					wantBy = ""
				}
				if last.Record.CapturedBy != wantBy {
					t.Errorf("CapturedBy = %q, want %q", last.Record.CapturedBy, wantBy)
				}
			})
		}
	})
}
