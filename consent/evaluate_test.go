package consent

import (
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
)

var (
	t0   = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	send = t0.Add(48 * time.Hour)
)

// Addresses are opaque references; these must never appear in an explanation.
const (
	addrNew = "addr-new-7f3a"
	addrOld = "addr-old-19c2"
)

func rec(ch arbiter.Channel, p arbiter.Purpose, st Status, at time.Time) Record {
	return Record{Channel: ch, Purpose: p, Status: st, CapturedAt: at, Source: "veeva"}
}

func (r Record) topic(t string) Record   { r.Topic = t; return r }
func (r Record) address(a string) Record { r.Address = a; return r }
func (r Record) expires(t time.Time) Record {
	r.ExpiresAt = t
	return r
}

func complete(recs ...Record) *State { return &State{Complete: true, Records: recs} }

func TestEvaluate(t *testing.T) {
	email := func(p arbiter.Purpose, st Status, at time.Time) Record { return rec(arbiter.Email, p, st, at) }
	promo := arbiter.Promotional
	// The default query: promotional email about brand-x to the current
	// address, in the EU (opt-in required) unless a case says otherwise.
	q := func(edit ...func(*Query)) Query {
		q := Query{Channel: arbiter.Email, Purpose: promo, Topic: "brand-x", Address: addrNew, Market: "EU", At: send}
		for _, f := range edit {
			f(&q)
		}
		return q
	}
	us := func(q *Query) { q.Market = "US" }
	noAddress := func(q *Query) { q.Address = "" }

	tests := []struct {
		name  string
		state *State
		q     Query
		want  Verdict
	}{
		// Rule 1: unknown means deny.
		{"nil state", nil, q(), Verdict{DeniedUnknown, -1, false}},
		{"marker missing denies an opt-in",
			&State{Records: []Record{email(promo, OptIn, t0)}}, q(),
			Verdict{DeniedUnknown, -1, false}},
		{"marker missing denies the US opt-out default",
			&State{}, q(us), Verdict{DeniedUnknown, -1, false}},

		// Rule 2: barred.
		{"a later cleared lifts the bar: the opt-in decides",
			complete(rec(arbiter.Email, arbiter.PurposeUnspecified, Cleared, t0.Add(2*time.Hour)),
				email(promo, OptIn, t0.Add(time.Hour))), q(),
			Verdict{Allowed, 1, false}},
		{"a lifted bar allows nothing by itself: EU email still needs an opt-in",
			complete(rec(arbiter.Email, arbiter.PurposeUnspecified, Cleared, t0)), q(),
			Verdict{DeniedNoRecord, -1, false}},
		{"barred beats a later opt-in",
			complete(email(promo, OptIn, t0.Add(time.Hour)).address(addrNew), rec(arbiter.Email, 0, Barred, t0)), q(),
			Verdict{DeniedBarred, 1, false}},
		{"barred beats the US opt-out default",
			complete(rec(arbiter.Email, 0, Barred, t0)), q(us), Verdict{DeniedBarred, 0, false}},
		{"a bar on another channel does not apply",
			complete(rec(arbiter.SMS, 0, Barred, t0), email(promo, OptIn, t0)), q(),
			Verdict{Allowed, 1, false}},

		// Rule 3: specificity, then recency.
		{"address level beats a later topic-level opt-in",
			complete(email(promo, OptIn, t0.Add(time.Hour)).topic("brand-x"), email(promo, OptOut, t0).address(addrNew)), q(),
			Verdict{DeniedOptOut, 1, false}},
		{"a later channel-level opt-out withdraws a topic-level opt-in",
			complete(email(promo, OptOut, t0.Add(time.Hour)), email(promo, OptIn, t0).topic("brand-x")), q(),
			Verdict{DeniedOptOut, 0, false}},
		{"a later channel-level opt-out withdraws an address-level opt-in",
			complete(email(promo, OptIn, t0).address(addrNew), email(promo, OptOut, t0.Add(time.Hour))), q(),
			Verdict{DeniedOptOut, 1, false}},
		{"a channel-level opt-out at the same instant withdraws a topic-level opt-in",
			complete(email(promo, OptIn, t0).topic("brand-x"), email(promo, OptOut, t0)), q(),
			Verdict{DeniedOptOut, 1, false}},
		{"a topic-level opt-in after a channel-level opt-out re-consents that topic",
			complete(email(promo, OptOut, t0), email(promo, OptIn, t0.Add(time.Hour)).topic("brand-x")), q(),
			Verdict{Allowed, 1, false}},
		{"a later channel-level opt-out for another purpose withdraws nothing",
			complete(email(arbiter.Medical, OptOut, t0.Add(time.Hour)), email(promo, OptIn, t0).topic("brand-x")), q(),
			Verdict{Allowed, 1, false}},
		{"address level beats a later channel-level opt-in",
			complete(email(promo, OptIn, t0.Add(time.Hour)), email(promo, OptOut, t0).address(addrNew)), q(),
			Verdict{DeniedOptOut, 1, false}},
		{"address level with topic and without compete on recency",
			complete(email(promo, OptIn, t0).address(addrNew).topic("brand-x"), email(promo, OptOut, t0.Add(time.Hour)).address(addrNew)), q(),
			Verdict{DeniedOptOut, 1, false}},
		{"old address opt-in does not cover the new address: channel level decides",
			complete(email(promo, OptIn, t0.Add(time.Hour)).address(addrOld), email(promo, OptOut, t0)), q(),
			Verdict{DeniedOptOut, 1, false}},
		{"old address opt-in does not cover the new address: EU requires opt-in",
			complete(email(promo, OptIn, t0).address(addrOld)), q(),
			Verdict{DeniedNoRecord, -1, false}},
		{"old address opt-out does not cover the new address: US default allows",
			complete(email(promo, OptOut, t0).address(addrOld)), q(us),
			Verdict{Allowed, -1, true}},
		{"no known address: address records do not match",
			complete(email(promo, OptIn, t0).address(addrNew)), q(noAddress),
			Verdict{DeniedNoRecord, -1, false}},
		{"record for another topic does not match",
			complete(email(promo, OptIn, t0).topic("brand-y")), q(),
			Verdict{DeniedNoRecord, -1, false}},
		{"topic record does not match content without a topic",
			complete(email(promo, OptIn, t0).topic("brand-x")), q(func(q *Query) { q.Topic = "" }),
			Verdict{DeniedNoRecord, -1, false}},
		{"most recent wins: later opt-out",
			complete(email(promo, OptIn, t0), email(promo, OptOut, t0.Add(time.Millisecond))), q(),
			Verdict{DeniedOptOut, 1, false}},
		{"most recent wins: later opt-in",
			complete(email(promo, OptIn, t0.Add(time.Millisecond)), email(promo, OptOut, t0)), q(),
			Verdict{Allowed, 0, false}},
		{"equal capture time: opt-out wins (opt-in first)",
			complete(email(promo, OptIn, t0), email(promo, OptOut, t0)), q(),
			Verdict{DeniedOptOut, 1, false}},
		{"equal capture time: opt-out wins (opt-out first)",
			complete(email(promo, OptOut, t0), email(promo, OptIn, t0)), q(),
			Verdict{DeniedOptOut, 0, false}},
		{"equal capture time: pending wins over opt-in",
			complete(email(promo, OptIn, t0), email(promo, Pending, t0)), q(),
			Verdict{DeniedPending, 1, false}},

		// Rule 4: what the decisive record says.
		{"opt-in allows", complete(email(promo, OptIn, t0)), q(), Verdict{Allowed, 0, false}},
		{"opt-out denies in an opt-out market", complete(email(promo, OptOut, t0)), q(us), Verdict{DeniedOptOut, 0, false}},
		{"opt-in expiring exactly at the send time is expired",
			complete(email(promo, OptIn, t0).expires(send)), q(),
			Verdict{DeniedExpired, 0, false}},
		{"opt-in expiring one millisecond after the send time allows",
			complete(email(promo, OptIn, t0).expires(send.Add(time.Millisecond))), q(),
			Verdict{Allowed, 0, false}},
		{"expired opt-in denies even in an opt-out market",
			complete(email(promo, OptIn, t0).expires(t0.Add(time.Hour))), q(us),
			Verdict{DeniedExpired, 0, false}},
		{"pending double opt-in denies",
			complete(email(promo, Pending, t0).address(addrNew)), q(),
			Verdict{DeniedPending, 0, false}},
		{"medical opt-in does not cover promotion: EU requires opt-in",
			complete(email(arbiter.Medical, OptIn, t0)), q(),
			Verdict{DeniedNoRecord, -1, false}},
		{"medical opt-out does not cover promotion: US default allows",
			complete(email(arbiter.Medical, OptOut, t0)), q(us),
			Verdict{Allowed, -1, true}},
		{"unreadable status denies",
			complete(email(promo, Status(42), t0)), q(),
			Verdict{DeniedUnknown, 0, false}},

		// Rule 5: no record, market default.
		{"US email, no record, marker: allowed by default", complete(), q(us), Verdict{Allowed, -1, true}},
		{"EU email, no record: opt-in required", complete(), q(), Verdict{DeniedNoRecord, -1, false}},
		{"US sms, no record: opt-in required", complete(),
			q(us, func(q *Query) { q.Channel = arbiter.SMS }), Verdict{DeniedNoRecord, -1, false}},
		{"EU rep visit, no record: allowed by default", complete(),
			q(func(q *Query) { q.Channel = arbiter.RepVisit }), Verdict{Allowed, -1, true}},
		{"unknown market requires opt-in", complete(),
			q(func(q *Query) { q.Market = "JP" }), Verdict{DeniedNoRecord, -1, false}},
		{"no market requires opt-in", complete(),
			q(func(q *Query) { q.Market = "" }), Verdict{DeniedNoRecord, -1, false}},

		// Queries that name nothing consent could cover.
		{"unspecified purpose", complete(email(promo, OptIn, t0)),
			q(func(q *Query) { q.Purpose = arbiter.PurposeUnspecified }), Verdict{DeniedInvalid, -1, false}},
		{"out-of-range purpose", complete(email(promo, OptIn, t0)),
			q(func(q *Query) { q.Purpose = 200 }), Verdict{DeniedInvalid, -1, false}},
		{"unspecified channel", complete(rec(0, promo, OptIn, t0)),
			q(func(q *Query) { q.Channel = arbiter.ChannelUnspecified }), Verdict{DeniedInvalid, -1, false}},
		{"no send time", complete(email(promo, OptIn, t0)),
			q(func(q *Query) { q.At = time.Time{} }), Verdict{DeniedInvalid, -1, false}},
	}
	p := DefaultPolicy()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Evaluate(tt.state, tt.q)
			if got != tt.want {
				t.Fatalf("Evaluate() = %+v, want %+v", got, tt.want)
			}
			if got.Allowed() != (tt.want.Outcome == Allowed) {
				t.Errorf("Allowed() = %v, want %v", got.Allowed(), tt.want.Outcome == Allowed)
			}
			why := got.Explain(tt.state, tt.q)
			if why == "" || strings.Contains(why, addrNew) || strings.Contains(why, addrOld) {
				t.Errorf("Explain() = %q, want a non-empty text without addresses", why)
			}
		})
	}
}

func TestEvaluateNilPolicyRequiresOptIn(t *testing.T) {
	var p *Policy
	q := Query{Channel: arbiter.Email, Purpose: arbiter.Promotional, Market: "US", At: send}
	if got, want := p.Evaluate(complete(), q), (Verdict{DeniedNoRecord, -1, false}); got != want {
		t.Errorf("nil policy: Evaluate() = %+v, want %+v", got, want)
	}
}

func TestExplain(t *testing.T) {
	promoEmail := Query{Channel: arbiter.Email, Purpose: arbiter.Promotional, Address: addrNew, Topic: "brand-x", Market: "EU", At: send}
	optIn := rec(arbiter.Email, arbiter.Promotional, OptIn, time.Date(2025, 10, 1, 23, 0, 0, 0, time.UTC))
	optIn.Source = "web"
	tests := []struct {
		name  string
		state *State
		q     Query
		want  string
	}{
		{"not loaded", &State{Records: []Record{optIn}}, promoEmail, "consent data not loaded for this HCP"},
		{"opted in", complete(optIn), promoEmail, "opted in to promotional email on 2025-10-01 (source web)"},
		{"opted in at an address", complete(optIn.address(addrNew)), promoEmail,
			"opted in to promotional email at the current address on 2025-10-01 (source web)"},
		{"opted out of a topic",
			complete(rec(arbiter.Email, arbiter.Promotional, OptOut, t0).topic("brand-x")), promoEmail,
			"opted out of promotional email about brand-x on 2026-03-02 (source veeva)"},
		{"expired",
			complete(optIn.expires(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))), promoEmail,
			"opt-in to promotional email expired on 2026-01-01"},
		{"pending", complete(rec(arbiter.Email, arbiter.Promotional, Pending, t0)), promoEmail,
			"opt-in to promotional email pending confirmation since 2026-03-02 (source veeva)"},
		{"barred", complete(rec(arbiter.Email, 0, Barred, t0)), promoEmail, "email barred on 2026-03-02 (source veeva)"},
		{"no record", complete(), Query{Channel: arbiter.SMS, Purpose: arbiter.Service, Market: "EU", At: send},
			"no consent on record for service sms; EU requires opt-in for sms"},
		{"opt-out default", complete(), Query{Channel: arbiter.Email, Purpose: arbiter.Promotional, Market: "US", At: send},
			"allowed by US opt-out default for email"},
		{"invalid query", complete(), Query{Channel: arbiter.Email, Market: "US", At: send},
			"no valid channel, purpose or send time to evaluate consent for"},
		{"unreadable status", complete(rec(arbiter.Email, arbiter.Promotional, Status(42), t0)), promoEmail,
			"consent record for promotional email has an unreadable status"},
	}
	p := DefaultPolicy()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := p.Evaluate(tt.state, tt.q)
			if got := v.Explain(tt.state, tt.q); got != tt.want {
				t.Errorf("Explain() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    Outcome
		want string
	}{
		{DeniedUnknown, "denied_unknown"},
		{Allowed, "allowed"},
		{DeniedBarred, "denied_barred"},
		{DeniedOptOut, "denied_opt_out"},
		{DeniedNoRecord, "denied_no_record"},
		{DeniedExpired, "denied_expired"},
		{DeniedPending, "denied_pending"},
		{DeniedInvalid, "denied_invalid"},
		{Outcome(200), "invalid"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", tt.o, got, tt.want)
		}
	}
	if (Verdict{}).Allowed() {
		t.Errorf("zero Verdict allows, want deny")
	}
}

// benchState is a realistic recipient: a dozen records over several
// channels, purposes, topics and addresses, the decisive one last.
func benchState() (*State, Query) {
	s := complete(
		rec(arbiter.SMS, arbiter.Service, OptIn, t0).address("sms-1"),
		rec(arbiter.SMS, arbiter.Promotional, OptIn, t0).address("sms-1"),
		rec(arbiter.Webinar, arbiter.Promotional, OptIn, t0),
		rec(arbiter.Webinar, arbiter.Medical, OptIn, t0),
		rec(arbiter.Portal, arbiter.Promotional, OptIn, t0),
		rec(arbiter.RepVisit, arbiter.Promotional, OptOut, t0),
		rec(arbiter.Email, arbiter.Medical, OptIn, t0).address(addrNew),
		rec(arbiter.Email, arbiter.Promotional, OptIn, t0).address(addrOld),
		rec(arbiter.Email, arbiter.Promotional, OptOut, t0.Add(-time.Hour)),
		rec(arbiter.Email, arbiter.Promotional, OptIn, t0).topic("brand-x"),
		rec(arbiter.Email, arbiter.Promotional, OptIn, t0).topic("brand-y"),
		rec(arbiter.Email, arbiter.Promotional, OptIn, t0).address(addrNew).expires(send.Add(time.Hour)),
	)
	q := Query{Channel: arbiter.Email, Purpose: arbiter.Promotional, Topic: "brand-x", Address: addrNew, Market: "EU", At: send}
	return s, q
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	p := DefaultPolicy()
	s, q := benchState()
	if got, want := p.Evaluate(s, q), (Verdict{Allowed, 11, false}); got != want {
		t.Fatalf("Evaluate() = %+v, want %+v", got, want)
	}
	if got := testing.AllocsPerRun(100, func() { p.Evaluate(s, q) }); got != 0 {
		t.Errorf("Evaluate allocates %v times per call, want 0", got)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	p := DefaultPolicy()
	s, q := benchState()
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(s, q)
	}
}
