package decision

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/scoring"
)

// testContactPolicy: one email a day in the recipient's zone, 4h between
// any two touches, and no email or SMS from 20:00 to 08:00 local.
const testContactPolicy = `{
  "retention": "35d",
  "markets": {"US": {"zones": ["America/New_York", "America/Los_Angeles"]}},
  "rules": [{
    "id": "r",
    "caps": [{"id": "email-day", "channels": ["email"], "max": 1, "per": "day"}],
    "gaps": [{"id": "gap-4h", "min": "4h"}],
    "quiet_hours": [{"id": "nights", "channels": ["email", "sms"], "from": "20:00", "to": "08:00"}]
  }]
}`

// booker is a fake Booker: it answers with the statuses queued in answers
// (Booked once they run out) and records the bookings it was asked for.
type booker struct {
	answers  []contact.BookStatus
	bookings []*contact.Booking
	released []string
}

func (b *booker) Reserve(_ context.Context, _ string, bk *contact.Booking) (contact.BookResult, error) {
	b.bookings = append(b.bookings, bk)
	st := contact.Booked
	if len(b.answers) > 0 {
		st, b.answers = b.answers[0], b.answers[1:]
	}
	return contact.BookResult{Status: st}, nil
}

func (b *booker) Release(_ context.Context, _, id string) error {
	b.released = append(b.released, id)
	return &contact.ReleaseError{State: "already"}
}

// laCardiologist is usCardiologist in Los Angeles, with an email opt-in.
func laCardiologist() *recipient.State {
	s := usCardiologist()
	s.Profile.TimeZone = "America/Los_Angeles"
	s.Consent.Records = append(s.Consent.Records, consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional,
		Status: consent.OptIn, CapturedAt: now.AddDate(0, -1, 0), Source: "crm"})
	return s
}

func sendEngine(t *testing.T, st *recipient.State, b Booker, clock time.Time) *Engine {
	t.Helper()
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := contact.Parse([]byte(testContactPolicy))
	if err != nil {
		t.Fatal(err)
	}
	opts := []Option{WithClock(func() time.Time { return clock }), WithContactPolicy(pol)}
	if b != nil {
		opts = append(opts, WithBooker(b))
	}
	e, err := New(&snapshots{m: map[string]*recipient.State{"HCP-1": st}}, scoring.Demo(), cat, consent.DefaultPolicy(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var la = func() *time.Location {
	loc, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		panic(err)
	}
	return loc
}()

func reasons(bs []Block) []Reason {
	var out []Reason
	for _, b := range bs {
		out = append(out, b.Reason)
	}
	return out
}

// A cap that clears inside quiet hours: the earliest allowed time is the
// end of the quiet hours, and every block is reported with its clear time.
func TestCheckSendEarliestAllowed(t *testing.T) {
	st := laCardiologist()
	// An email at 19:00 local today: the day's cap is used, and the 4h gap
	// runs to 23:00.
	sent := time.Date(2026, 11, 20, 19, 0, 0, 0, la)
	st.Touches.Touches = []contact.Touch{{At: sent, Channel: arbiter.Email, Purpose: arbiter.Promotional, State: contact.Sent}}
	clock := time.Date(2026, 11, 20, 22, 30, 0, 0, la)
	e := sendEngine(t, st, nil, clock)
	res, err := e.CheckSend(context.Background(), SendRequest{HCPID: "HCP-1", ActionID: "email-ok"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed {
		t.Fatal("allowed at 22:30 local after an email at 19:00, want blocked")
	}
	want := map[Reason]time.Time{
		FrequencyCap: time.Date(2026, 11, 21, 0, 0, 0, 0, la), // the next local day
		MinGap:       sent.Add(4 * time.Hour),
		QuietHours:   time.Date(2026, 11, 21, 8, 0, 0, 0, la),
	}
	if len(res.Blocks) != len(want) {
		t.Errorf("blocks %v, want %d (every gate's)", reasons(res.Blocks), len(want))
	}
	for _, b := range res.Blocks {
		if w, ok := want[b.Reason]; !ok || !b.ClearsAt.Equal(w) {
			t.Errorf("block %s clears %v, want %v", b.Reason, b.ClearsAt.In(la), w)
		}
		if b.Detail == "" {
			t.Errorf("block %s has no detail", b.Reason)
		}
	}
	if w := time.Date(2026, 11, 21, 8, 0, 0, 0, la); !res.EarliestAllowed.Equal(w) {
		t.Errorf("earliest allowed %v, want %v (the cap clears in the quiet hours)", res.EarliestAllowed.In(la), w)
	}
	// The earliest time is allowed, and a millisecond before it is not.
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{{res.EarliestAllowed, true}, {res.EarliestAllowed.Add(-time.Millisecond), false}} {
		r, err := e.CheckSend(context.Background(), SendRequest{HCPID: "HCP-1", ActionID: "email-ok", At: tt.at})
		if err != nil {
			t.Fatal(err)
		}
		if r.Allowed != tt.want {
			t.Errorf("at %v: allowed %v (%v), want %v", tt.at.In(la), r.Allowed, reasons(r.Blocks), tt.want)
		}
	}
}

// A block that never clears by itself leaves no earliest time.
func TestCheckSendNeverClears(t *testing.T) {
	st := laCardiologist()
	st.Consent.Records = st.Consent.Records[:1] // no email consent (US email is opt-out, but consent is incomplete...)
	st.Consent.Complete = false
	e := sendEngine(t, st, nil, time.Date(2026, 11, 20, 12, 0, 0, 0, la))
	res, err := e.CheckSend(context.Background(), SendRequest{HCPID: "HCP-1", ActionID: "email-ok"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed || !res.EarliestAllowed.IsZero() {
		t.Errorf("unknown consent: allowed %v, earliest %v; want blocked with no earliest time", res.Allowed, res.EarliestAllowed)
	}
}

// A booking that loses a race reads the state again and checks again; the
// booking carries the compiled limits and what the check read.
func TestCheckSendReserveRetries(t *testing.T) {
	st := laCardiologist()
	st.Consent.Version = 7
	b := &booker{answers: []contact.BookStatus{contact.BookFull, contact.BookStale}}
	clock := time.Date(2026, 11, 20, 12, 0, 0, 0, la)
	e := sendEngine(t, st, b, clock)
	res, err := e.CheckSend(context.Background(), SendRequest{HCPID: "HCP-1", ActionID: "email-ok", Reserve: true, IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.bookings) != 3 || !res.Allowed || res.Reservation == nil {
		t.Fatalf("%d bookings, allowed %v, reservation %+v; want the third booking to succeed", len(b.bookings), res.Allowed, res.Reservation)
	}
	bk := b.bookings[2]
	if bk.ConsentVersion != 7 || bk.Guard.TimeZone != "America/Los_Angeles" || bk.Guard.Market != "US" {
		t.Errorf("booking read consent version %d, guard %+v; want 7 and the profile's", bk.ConsentVersion, bk.Guard)
	}
	if len(bk.Limits) != 2 { // the email day cap and the gap
		t.Errorf("booking limits %+v, want the day cap and the gap", bk.Limits)
	}
	if bk.Touch.ReservationID != res.Reservation.ID || bk.Touch.State != contact.Reserved || !bk.Touch.ExpiresAt.Equal(clock.Add(contact.DefaultReservationTTL)) {
		t.Errorf("booked touch %+v, want reserved under %s until now + the TTL", bk.Touch, res.Reservation.ID)
	}
	// The same key from the same caller names the same reservation; once
	// it is in the ledger, nothing is booked again.
	st.Touches.Touches = append(st.Touches.Touches, bk.Touch)
	again, err := e.CheckSend(context.Background(), SendRequest{HCPID: "HCP-1", ActionID: "email-ok", Reserve: true, IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.bookings) != 3 || again.Reservation == nil || !again.Reservation.Existing || again.Reservation.ID != res.Reservation.ID {
		t.Errorf("retry with the same key: %d bookings, reservation %+v; want the existing one, no new booking", len(b.bookings), again.Reservation)
	}
	// The same key for another action is a mistake, not a retry.
	var pre *arbiter.PreconditionError
	if _, err := e.CheckSend(context.Background(), SendRequest{HCPID: "HCP-1", ActionID: "email-medical", Reserve: true, IdempotencyKey: "k"}); !errors.As(err, &pre) || pre.Subject != "idempotency_key" {
		t.Errorf("the key again for another action: %v, want a precondition failure on idempotency_key", err)
	}
	// Once the reservation expired it holds nothing: a retry checks and
	// books again, under the same id.
	st.Touches.Touches[len(st.Touches.Touches)-1].ExpiresAt = clock
	again, err = e.CheckSend(context.Background(), SendRequest{HCPID: "HCP-1", ActionID: "email-ok", Reserve: true, IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.bookings) != 4 || again.Reservation == nil || again.Reservation.Existing || again.Reservation.ID != res.Reservation.ID {
		t.Errorf("retry after expiry: %d bookings, reservation %+v; want a new booking of the same id", len(b.bookings), again.Reservation)
	}
}

func TestCheckSendBadInput(t *testing.T) {
	clock := time.Date(2026, 11, 20, 12, 0, 0, 0, la)
	e := sendEngine(t, laCardiologist(), &booker{}, clock)
	for _, tt := range []struct {
		name  string
		req   SendRequest
		field string
	}{
		{"unknown action", SendRequest{HCPID: "HCP-1", ActionID: "nope"}, "action_id"},
		{"no action", SendRequest{HCPID: "HCP-1"}, "action_id"},
		{"both", SendRequest{HCPID: "HCP-1", ActionID: "email-ok", ContentID: "EM-1", Channel: arbiter.Email}, "action_id"},
		{"unknown content", SendRequest{HCPID: "HCP-1", ContentID: "EM-9", Channel: arbiter.Email}, "content_id"},
		{"an hour ago", SendRequest{HCPID: "HCP-1", ActionID: "email-ok", At: clock.Add(-time.Hour)}, "planned_at"},
		{"two years ahead", SendRequest{HCPID: "HCP-1", ActionID: "email-ok", At: clock.AddDate(2, 0, 0)}, "planned_at"},
	} {
		_, err := e.CheckSend(context.Background(), tt.req)
		var inv *arbiter.InvalidError
		if !errors.As(err, &inv) || len(inv.Violations) == 0 || inv.Violations[0].Field != tt.field {
			t.Errorf("%s: %v, want an invalid %s", tt.name, err, tt.field)
		}
	}
	// By channel and content: the same action.
	res, err := e.CheckSend(context.Background(), SendRequest{HCPID: "HCP-1", ContentID: "EM-1", Channel: arbiter.Email})
	if err != nil || res.Action.ID != "email-ok" {
		t.Errorf("by content: %v, %v; want email-ok", res, err)
	}
	// A release the store refuses as already released is a precondition
	// failure.
	var pre *arbiter.PreconditionError
	if err := e.Release(context.Background(), "HCP-1", "rsv_x"); !errors.As(err, &pre) {
		t.Errorf("release twice: %v, want a PreconditionError", err)
	}
}

// Decide's contact gates answer from a per-decision memo; their answers
// are the same as CheckAll's, which asks every gate afresh.
func TestDecideContactGatesMatchCheckAll(t *testing.T) {
	st := laCardiologist()
	st.Touches.Touches = []contact.Touch{
		{At: time.Date(2026, 11, 20, 9, 0, 0, 0, la), Channel: arbiter.Email, Purpose: arbiter.Promotional, State: contact.Sent},
	}
	for _, h := range []int{10, 12, 21} {
		clock := time.Date(2026, 11, 20, h, 0, 0, 0, la)
		e := sendEngine(t, st, nil, clock)
		req := Request{HCPID: "HCP-1", Limit: 10, Explain: true}
		res, err := e.Decide(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		checks, err := e.CheckAll(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		got := suppressedAs(res)
		for _, c := range checks {
			var first Reason
			if len(c.Blocks) > 0 {
				first = c.Blocks[0].Reason
			}
			if got[c.ActionID] != first {
				t.Errorf("%02d:00 local, %s: Decide says %q, CheckAll's first block %q", h, c.ActionID, got[c.ActionID], first)
			}
		}
	}
}

// A retry of a booked key asks the gates again: consent withdrawn since
// the booking blocks it, and nothing is booked.
func TestCheckSendRetryAfterOptOut(t *testing.T) {
	st := laCardiologist()
	b := &booker{}
	clock := time.Date(2026, 11, 20, 12, 0, 0, 0, la)
	e := sendEngine(t, st, b, clock)
	req := SendRequest{HCPID: "HCP-1", ActionID: "email-ok", Reserve: true, IdempotencyKey: "k"}
	first, err := e.CheckSend(context.Background(), req)
	if err != nil || first.Reservation == nil {
		t.Fatalf("first: %+v, %v", first, err)
	}
	st.Touches.Touches = append(st.Touches.Touches, b.bookings[0].Touch)
	st.Consent.Records = append(st.Consent.Records, consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional,
		Status: consent.OptOut, CapturedAt: clock.Add(-time.Minute), Source: "preference-centre"})
	again, err := e.CheckSend(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Allowed || len(again.Blocks) == 0 || again.Blocks[0].Reason != NoConsent {
		t.Errorf("retry after an opt-out: allowed %v, blocks %v; want blocked NO_CONSENT", again.Allowed, reasons(again.Blocks))
	}
	if again.Reservation == nil || !again.Reservation.Existing || len(b.bookings) != 1 {
		t.Errorf("retry after an opt-out: reservation %+v, %d bookings; want the existing one named, nothing booked", again.Reservation, len(b.bookings))
	}
	// Its own touch does not count against it: without the opt-out, the
	// retry is allowed although the day's one email is that reservation.
	st.Consent.Records = st.Consent.Records[:len(st.Consent.Records)-1]
	if r, err := e.CheckSend(context.Background(), req); err != nil || !r.Allowed {
		t.Errorf("retry: %+v, %v; want allowed (its own reservation does not block it)", r, err)
	}
}

// A critical action bypasses the catalog's minimum gap too.
func TestCriticalBypassesCatalogGap(t *testing.T) {
	cat, err := catalog.Parse([]byte(strings.Replace(testCatalog, `"purpose": "service", "audience": "hcp", "value": 1,`,
		`"purpose": "service", "audience": "hcp", "value": 1, "critical": true,`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	st := usCardiologist()
	st.Counters.LastContact[arbiter.SMS] = now.Add(-time.Hour) // within the catalog's 72h SMS gap
	e, err := New(&snapshots{m: map[string]*recipient.State{"HCP-1": st}}, scoring.Demo(), cat, consent.DefaultPolicy(),
		WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	if !cat.Actions[7].Critical || cat.Actions[7].ID != "sms-reminder" {
		t.Fatalf("the test catalog's sms-reminder is not the critical action: %+v", cat.Actions[7])
	}
	res, err := e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 10, Candidates: []string{"sms-reminder"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := suppressedAs(res)["sms-reminder"]; got != "" {
		t.Errorf("critical sms-reminder an hour after an SMS: suppressed as %s, want recommended", got)
	}
}
