package redisstore

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// newConsentStore is newStoreOn with the clock at now, after the capture
// times of the consent tests' records.
func newConsentStore(tb testing.TB, b redistest.Backend) (*Store, redis.UniversalClient) {
	tb.Helper()
	s, rdb, c := newStoreOn(tb, b)
	c.t = now
	return s, rdb
}

// consentKeysExist returns how many of recipient id's consent keys exist.
func consentKeysExist(t *testing.T, s *Store, rdb redis.UniversalClient, id string) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	// One key per call: a cluster client refuses multi-key EXISTS across
	// keys it cannot route together, and this helper must not depend on it.
	for _, suffix := range []string{suffixConsent, suffixConsentLog, suffixConsentOps} {
		c, err := rdb.Exists(ctx, s.key(id, suffix)).Result()
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		n += c
	}
	return n
}

// ledger returns recipient id's whole consent ledger.
func ledger(t *testing.T, s *Store, id string) []consent.LedgerEntry {
	t.Helper()
	entries, total, err := s.ConsentHistory(context.Background(), id, 0, maxHistoryLimit)
	if err != nil {
		t.Fatalf("ConsentHistory() error = %v", err)
	}
	if total != int64(len(entries)) {
		t.Fatalf("ConsentHistory() total = %d, want %d", total, len(entries))
	}
	return entries
}

func TestConsentFieldEncoding(t *testing.T) {
	tests := []struct {
		name         string
		r            consent.Record
		field, value string
	}{
		{"channel level",
			rec(arbiter.Email, arbiter.Promotional, consent.OptOut, t0),
			"email|promotional||", ms(t0) + "|opt_out|0|veeva|"},
		{"address and topic with expiry",
			consent.Record{Channel: arbiter.SMS, Purpose: arbiter.Service, Topic: "brand-x", Address: "a-1", Status: consent.OptIn,
				CapturedAt: t0, ExpiresAt: t0.Add(time.Second), Source: "web", CapturedBy: "u-17"},
			"sms|service|brand-x|a-1", ms(t0) + "|opt_in|" + ms(t0.Add(time.Second)) + "|web|u-17"},
		{"barred", rec(arbiter.Push, 0, consent.Barred, t0), "push|unspecified||", ms(t0) + "|barred|0|veeva|"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := consentField(&tt.r); got != tt.field {
				t.Errorf("consentField() = %q, want %q", got, tt.field)
			}
			if got := consentValue(&tt.r); got != tt.value {
				t.Errorf("consentValue() = %q, want %q", got, tt.value)
			}
		})
	}
}

func TestConsentRoundTrip(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	barred := rec(arbiter.Email, 0, consent.Barred, t0)
	promo := consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Address: "addr-1", Status: consent.OptIn,
		CapturedAt: t0.Add(1500 * time.Microsecond).In(paris), ExpiresAt: t0.AddDate(1, 0, 0),
		Source: "web", CapturedBy: "u-17"}
	medical := withTopic(rec(arbiter.SMS, arbiter.Medical, consent.OptOut, t0), "brand-x")
	webinar := rec(arbiter.Webinar, arbiter.Promotional, consent.OptIn, t0)

	// As stored: UTC, milliseconds.
	promoStored := promo
	promoStored.CapturedAt = t0.Add(time.Millisecond)

	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, _ := newConsentStore(t, b)
		ctx := context.Background()
		got, err := s.SetConsentMany(ctx, "hcp-1", []consent.Record{webinar, medical, promo, barred}, true)
		if err != nil {
			t.Fatalf("SetConsentMany() error = %v", err)
		}
		want := []consent.LedgerEntry{
			{Seq: 0, Record: webinar, RecordedAt: now, Applied: true, MarkedComplete: true},
			{Seq: 1, Record: medical, RecordedAt: now, Applied: true, MarkedComplete: true},
			{Seq: 2, Record: promoStored, RecordedAt: now, Applied: true, MarkedComplete: true},
			{Seq: 3, Record: barred, RecordedAt: now, Applied: true, MarkedComplete: true},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("SetConsentMany() =\n%+v\nwant\n%+v", got, want)
		}

		state, err := s.GetConsent(ctx, "hcp-1")
		if err != nil {
			t.Fatalf("GetConsent() error = %v", err)
		}
		wantState := consent.State{Complete: true, CompleteAt: now, Records: []consent.Record{barred, promoStored, medical, webinar}, Version: 4}
		if !reflect.DeepEqual(state, wantState) {
			t.Errorf("GetConsent() =\n%+v\nwant\n%+v", state, wantState)
		}

		if got := ledger(t, s, "hcp-1"); !reflect.DeepEqual(got, want) {
			t.Errorf("ConsentHistory() =\n%+v\nwant\n%+v", got, want)
		}

		// Another recipient is untouched.
		other, err := s.GetConsent(ctx, "hcp-2")
		if err != nil {
			t.Fatalf("GetConsent(hcp-2) error = %v", err)
		}
		if !reflect.DeepEqual(other, consent.State{}) {
			t.Errorf("GetConsent(hcp-2) = %+v, want an empty, incomplete State", other)
		}
		if got := ledger(t, s, "hcp-2"); len(got) != 0 {
			t.Errorf("ConsentHistory(hcp-2) = %+v, want empty", got)
		}
	})
}

func TestConsentOlderRecordDoesNotReplaceNewer(t *testing.T) {
	newer := rec(arbiter.Email, arbiter.Promotional, consent.OptOut, t0.Add(time.Hour))
	older := rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0)
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, _ := newConsentStore(t, b)
		ctx := context.Background()
		if _, err := s.SetConsent(ctx, "hcp-1", newer, true); err != nil {
			t.Fatalf("SetConsent(newer) error = %v", err)
		}
		got, err := s.SetConsent(ctx, "hcp-1", older, false)
		if err != nil {
			t.Fatalf("SetConsent(older) error = %v", err)
		}
		want := consent.LedgerEntry{Seq: 1, Record: older, RecordedAt: now, Applied: false}
		if got != want {
			t.Errorf("SetConsent(older) = %+v, want %+v", got, want)
		}
		state, err := s.GetConsent(ctx, "hcp-1")
		if err != nil {
			t.Fatalf("GetConsent() error = %v", err)
		}
		if want := []consent.Record{newer}; !reflect.DeepEqual(state.Records, want) {
			t.Errorf("GetConsent().Records = %+v, want %+v", state.Records, want)
		}
		entries := ledger(t, s, "hcp-1")
		if len(entries) != 2 || !entries[0].Applied || entries[1].Applied {
			t.Errorf("ConsentHistory() = %+v, want the newer applied, then the older not applied", entries)
		}
	})
}

// At equal capture times the more restrictive status wins, whatever the
// order the two arrive in, in one batch or in two writes.
func TestConsentEqualCaptureTime(t *testing.T) {
	email := func(s consent.Status) consent.Record {
		r := rec(arbiter.Email, arbiter.Promotional, s, t0)
		r.Source = "src-" + s.String() // tells the two writes apart
		return r
	}
	bar := func(s consent.Status) consent.Record {
		r := rec(arbiter.Email, 0, s, t0)
		r.Source = "src-" + s.String()
		return r
	}
	tests := []struct {
		name        string
		first, then consent.Record
		batch       bool // both in one SetConsentMany rather than two SetConsents
		wantApplied []bool
		want        consent.Record
	}{
		{"opt-in then opt-out", email(consent.OptIn), email(consent.OptOut), false, []bool{true, true}, email(consent.OptOut)},
		{"opt-out then opt-in", email(consent.OptOut), email(consent.OptIn), false, []bool{true, false}, email(consent.OptOut)},
		{"opt-in then opt-out, one batch", email(consent.OptIn), email(consent.OptOut), true, []bool{true, true}, email(consent.OptOut)},
		{"opt-out then opt-in, one batch", email(consent.OptOut), email(consent.OptIn), true, []bool{true, false}, email(consent.OptOut)},
		{"pending then opt-in", email(consent.Pending), email(consent.OptIn), false, []bool{true, false}, email(consent.Pending)},
		{"pending then opt-out", email(consent.Pending), email(consent.OptOut), false, []bool{true, true}, email(consent.OptOut)},
		{"same status again", email(consent.OptIn), email(consent.OptIn), false, []bool{true, false}, email(consent.OptIn)},
		{"bar then cleared", bar(consent.Barred), bar(consent.Cleared), false, []bool{true, false}, bar(consent.Barred)},
		{"cleared then bar", bar(consent.Cleared), bar(consent.Barred), false, []bool{true, true}, bar(consent.Barred)},
		// Two opt-ins captured together: the earlier expiry stands,
		// whichever arrived first (no expiry is the latest).
		{"opt-in, then one expiring", email(consent.OptIn), expiring(email(consent.OptIn), 30), false, []bool{true, true}, expiring(email(consent.OptIn), 30)},
		{"opt-in expiring, then one without", expiring(email(consent.OptIn), 30), email(consent.OptIn), false, []bool{true, false}, expiring(email(consent.OptIn), 30)},
		{"later expiry, then earlier", expiring(email(consent.OptIn), 60), expiring(email(consent.OptIn), 30), false, []bool{true, true}, expiring(email(consent.OptIn), 30)},
		{"earlier expiry, then later", expiring(email(consent.OptIn), 30), expiring(email(consent.OptIn), 60), false, []bool{true, false}, expiring(email(consent.OptIn), 30)},
		{"earlier expiry, then later, one batch", expiring(email(consent.OptIn), 30), expiring(email(consent.OptIn), 60), true, []bool{true, false}, expiring(email(consent.OptIn), 30)},
	}
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, _ := newConsentStore(t, b)
		ctx := context.Background()
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := "hcp-" + strconv.Itoa(i)
				var entries []consent.LedgerEntry
				if tt.batch {
					es, err := s.SetConsentMany(ctx, id, []consent.Record{tt.first, tt.then}, false)
					if err != nil {
						t.Fatalf("SetConsentMany() error = %v", err)
					}
					entries = es
				} else {
					for _, r := range []consent.Record{tt.first, tt.then} {
						e, err := s.SetConsent(ctx, id, r, false)
						if err != nil {
							t.Fatalf("SetConsent() error = %v", err)
						}
						entries = append(entries, e)
					}
				}
				for i, e := range entries {
					if e.Applied != tt.wantApplied[i] || e.Seq != int64(i) {
						t.Errorf("write %d: Applied = %v, Seq = %d; want %v, %d", i, e.Applied, e.Seq, tt.wantApplied[i], i)
					}
				}
				state, err := s.GetConsent(ctx, id)
				if err != nil {
					t.Fatalf("GetConsent() error = %v", err)
				}
				if want := []consent.Record{tt.want}; !reflect.DeepEqual(state.Records, want) {
					t.Errorf("GetConsent().Records = %+v, want %+v", state.Records, want)
				}
			})
		}
	})
}

// expiring returns r expiring days after its capture, told apart by its
// source.
func expiring(r consent.Record, days int) consent.Record {
	r.ExpiresAt = r.CapturedAt.AddDate(0, 0, days)
	r.Source += "-" + strconv.Itoa(days)
	return r
}

// An expiry finer than a millisecond is stored rounded up: an opt-in never
// expires early for the store's precision.
func TestConsentExpiryRoundsUp(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, _ := newConsentStore(t, b)
		ctx := context.Background()
		r := rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0)
		r.ExpiresAt = t0.Add(24*time.Hour + 1500*time.Microsecond)
		if _, err := s.SetConsent(ctx, "hcp-round", r, true); err != nil {
			t.Fatal(err)
		}
		st, err := s.GetConsent(ctx, "hcp-round")
		if err != nil || len(st.Records) != 1 {
			t.Fatalf("GetConsent: %+v, %v", st, err)
		}
		if got, want := st.Records[0].ExpiresAt, t0.Add(24*time.Hour+2*time.Millisecond); !got.Equal(want) {
			t.Errorf("stored expiry %v, want %v (rounded up)", got, want)
		}
		at := t0.Add(24*time.Hour + 1400*time.Microsecond) // before the expiry asked for
		if v := consent.DefaultPolicy().Evaluate(&st, consent.Query{Channel: arbiter.Email, Purpose: arbiter.Promotional, At: at}); !v.Allowed() {
			t.Errorf("at %v, before the expiry asked for, the opt-in is %v", at, v.Outcome)
		}
	})
}

// set_consent.lua knows no order of its own: it is handed
// consent.PrecedenceOrder. Every pair of statuses that share a scope,
// captured at the same instant, must end with the one of higher
// consent.Status.Precedence, in either arrival order.
func TestConsentPrecedenceFollowsConsentPackage(t *testing.T) {
	// Statuses that share a scope: the purpose-level ones, and the bar and
	// its lifting (channel-wide).
	groups := []struct {
		purpose  arbiter.Purpose
		statuses []consent.Status
	}{
		{arbiter.Medical, []consent.Status{consent.OptIn, consent.Pending, consent.OptOut}},
		{arbiter.PurposeUnspecified, []consent.Status{consent.Barred, consent.Cleared}},
	}
	type pair struct {
		purpose     arbiter.Purpose
		first, then consent.Status
	}
	var pairs []pair
	for _, g := range groups {
		for _, a := range g.statuses {
			for _, b := range g.statuses {
				if a != b {
					pairs = append(pairs, pair{g.purpose, a, b})
				}
			}
		}
	}
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, _ := newConsentStore(t, b)
		ctx := context.Background()
		for _, p := range pairs {
			t.Run(p.first.String()+"_then_"+p.then.String(), func(t *testing.T) {
				id := "hcp-" + p.first.String() + "-" + p.then.String()
				first, then := rec(arbiter.SMS, p.purpose, p.first, t0), rec(arbiter.SMS, p.purpose, p.then, t0)
				if _, err := s.SetConsent(ctx, id, first, false); err != nil {
					t.Fatal(err)
				}
				e, err := s.SetConsent(ctx, id, then, false)
				if err != nil {
					t.Fatal(err)
				}
				wins := p.then.Precedence() > p.first.Precedence()
				if e.Applied != wins {
					t.Errorf("second write applied = %v, want %v (precedence %d over %d)", e.Applied, wins, p.then.Precedence(), p.first.Precedence())
				}
				want := first
				if wins {
					want = then
				}
				state, err := s.GetConsent(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(state.Records, []consent.Record{want}) {
					t.Errorf("GetConsent().Records = %+v, want %+v", state.Records, want)
				}
			})
		}
	})
}

func TestConsentLedgerIsAppendOnly(t *testing.T) {
	in := rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0)
	out := rec(arbiter.Email, arbiter.Promotional, consent.OptOut, t0.Add(time.Hour))
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb := newConsentStore(t, b)
		ctx := context.Background()
		raw := func() []string {
			v, err := rdb.LRange(ctx, s.key("hcp-1", suffixConsentLog), 0, -1).Result()
			if err != nil {
				t.Fatalf("LRANGE: %v", err)
			}
			return v
		}
		for _, r := range []consent.Record{in, out} {
			if _, err := s.SetConsent(ctx, "hcp-1", r, false); err != nil {
				t.Fatalf("SetConsent() error = %v", err)
			}
		}
		before := raw()
		// A repeated delivery and a late, older record: neither applies,
		// both are ledgered. Then the marker alone.
		for _, r := range []consent.Record{out, in} {
			if _, err := s.SetConsent(ctx, "hcp-1", r, false); err != nil {
				t.Fatalf("SetConsent() error = %v", err)
			}
		}
		if _, err := s.SetConsentMany(ctx, "hcp-1", nil, true); err != nil {
			t.Fatalf("SetConsentMany(marker) error = %v", err)
		}

		after := raw()
		if len(before) != 2 || len(after) != 5 || !reflect.DeepEqual(after[:len(before)], before) {
			t.Fatalf("ledger went from %d to %d entries, want 2 to 5 with the first 2 unchanged", len(before), len(after))
		}
		want := []consent.LedgerEntry{
			{Seq: 0, Record: in, RecordedAt: now, Applied: true},
			{Seq: 1, Record: out, RecordedAt: now, Applied: true},
			{Seq: 2, Record: out, RecordedAt: now, Applied: false},
			{Seq: 3, Record: in, RecordedAt: now, Applied: false},
			{Seq: 4, RecordedAt: now, Applied: true, MarkedComplete: true},
		}
		if got := ledger(t, s, "hcp-1"); !reflect.DeepEqual(got, want) {
			t.Errorf("ConsentHistory() =\n%+v\nwant\n%+v", got, want)
		}
		// Each element is stored in format 3, numbered by its place.
		for i, data := range after {
			if got, err := decodeLedger(data); err != nil || !reflect.DeepEqual(got, want[i]) {
				t.Errorf("element %d = %q decodes to %+v, %v; want %+v", i, data, got, err, want[i])
			}
		}
	})
}

func TestConsentHistoryInvalid(t *testing.T) {
	s := mustNew(t, unreachableClient(t)) // never reached: validation comes first
	tests := []struct {
		name          string
		id            string
		offset, limit int
		fields        []string
	}{
		{"no hcp", "", 0, 10, []string{"hcp_id"}},
		{"negative offset", "hcp-1", -1, 10, []string{"offset"}},
		{"zero limit", "hcp-1", 0, 0, []string{"limit"}},
		{"limit too large", "hcp-1", 0, maxHistoryLimit + 1, []string{"limit"}},
		{"all wrong", "", -1, 0, []string{"hcp_id", "offset", "limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.ConsentHistory(context.Background(), tt.id, tt.offset, tt.limit)
			if got := violationFields(err); !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("ConsentHistory() error = %v, want violations of %v", err, tt.fields)
			}
		})
	}
	if _, err := s.GetConsent(context.Background(), ""); !reflect.DeepEqual(violationFields(err), []string{"hcp_id"}) {
		t.Errorf("GetConsent(\"\") error = %v, want a violation of hcp_id", err)
	}
}

func TestConsentMarkComplete(t *testing.T) {
	r := rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0)
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb := newConsentStore(t, b)
		ctx := context.Background()
		if _, err := s.SetConsent(ctx, "hcp-1", r, false); err != nil {
			t.Fatalf("SetConsent() error = %v", err)
		}
		state, err := s.GetConsent(ctx, "hcp-1")
		if err != nil {
			t.Fatalf("GetConsent() error = %v", err)
		}
		if state.Complete {
			t.Errorf("GetConsent().Complete = true after a write without the marker, want false")
		}

		e, err := s.SetConsent(ctx, "hcp-1", r, true)
		if err != nil {
			t.Fatalf("SetConsent(mark) error = %v", err)
		}
		if !e.MarkedComplete {
			t.Errorf("SetConsent(mark).MarkedComplete = false, want true")
		}
		if state, err = s.GetConsent(ctx, "hcp-1"); err != nil {
			t.Fatalf("GetConsent() error = %v", err)
		}
		if !state.Complete || !state.CompleteAt.Equal(now) {
			t.Errorf("GetConsent() = Complete %v at %v, want true at %v", state.Complete, state.CompleteAt, now)
		}

		// A recipient known to have no consent at all: only the marker.
		if es, err := s.SetConsentMany(ctx, "hcp-2", nil, false); err != nil || es != nil {
			t.Errorf("SetConsentMany(nothing) = %v, %v; want nil, nil", es, err)
		}
		if n := consentKeysExist(t, s, rdb, "hcp-2"); n != 0 {
			t.Errorf("SetConsentMany(nothing) created %d keys, want 0", n)
		}
		es, err := s.SetConsentMany(ctx, "hcp-2", nil, true)
		if err != nil {
			t.Fatalf("SetConsentMany(marker) error = %v", err)
		}
		want := []consent.LedgerEntry{{Seq: 0, RecordedAt: now, Applied: true, MarkedComplete: true}}
		if !reflect.DeepEqual(es, want) {
			t.Errorf("SetConsentMany(marker) = %+v, want %+v", es, want)
		}
		if got := ledger(t, s, "hcp-2"); !reflect.DeepEqual(got, want) {
			t.Errorf("ConsentHistory(hcp-2) = %+v, want %+v", got, want)
		}
		state, err = s.GetConsent(ctx, "hcp-2")
		if err != nil {
			t.Fatalf("GetConsent(hcp-2) error = %v", err)
		}
		if want := (consent.State{Complete: true, CompleteAt: now, Version: 1}); !reflect.DeepEqual(state, want) {
			t.Errorf("GetConsent(hcp-2) = %+v, want %+v", state, want)
		}
	})
}

func TestConsentInvalidRecordWritesNothing(t *testing.T) {
	valid := rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0)
	edit := func(f func(r *consent.Record)) consent.Record {
		r := valid
		f(&r)
		return r
	}
	tests := []struct {
		name string
		id   string
		r    consent.Record
		want []string
	}{
		{"no hcp id", "", valid, []string{"hcp_id"}},
		{"no channel", "hcp-1", edit(func(r *consent.Record) { r.Channel = 0 }), []string{"record.channel"}},
		{"unknown channel", "hcp-1", edit(func(r *consent.Record) { r.Channel = 99 }), []string{"record.channel"}},
		{"no status", "hcp-1", edit(func(r *consent.Record) { r.Status = 0 }), []string{"record.status"}},
		{"no purpose", "hcp-1", edit(func(r *consent.Record) { r.Purpose = 0 }), []string{"record.purpose"}},
		{"barred with a purpose", "hcp-1", edit(func(r *consent.Record) { r.Status = consent.Barred }), []string{"record.purpose"}},
		{"barred with topic and address", "hcp-1",
			edit(func(r *consent.Record) { r.Status, r.Purpose, r.Topic, r.Address = consent.Barred, 0, "t", "a" }),
			[]string{"record.topic", "record.address_ref"}},
		{"'|' in topic", "hcp-1", edit(func(r *consent.Record) { r.Topic = "a|b" }), []string{"record.topic"}},
		{"'|' in address", "hcp-1", edit(func(r *consent.Record) { r.Address = "a|b" }), []string{"record.address_ref"}},
		{"address too long", "hcp-1", edit(func(r *consent.Record) { r.Address = strings.Repeat("a", 129) }), []string{"record.address_ref"}},
		{"no source", "hcp-1", edit(func(r *consent.Record) { r.Source = "" }), []string{"record.source"}},
		{"source too long", "hcp-1", edit(func(r *consent.Record) { r.Source = strings.Repeat("s", 65) }), []string{"record.source"}},
		{"'|' in captured_by", "hcp-1", edit(func(r *consent.Record) { r.CapturedBy = "u|1" }), []string{"record.captured_by"}},
		{"no capture time", "hcp-1", edit(func(r *consent.Record) { r.CapturedAt = time.Time{} }), []string{"record.captured_at"}},
		{"expires before capture", "hcp-1", edit(func(r *consent.Record) { r.ExpiresAt = r.CapturedAt }), []string{"record.expires_at"}},
		{"opt-out that expires", "hcp-1", edit(func(r *consent.Record) { r.Status, r.ExpiresAt = consent.OptOut, now }), []string{"record.expires_at"}},
	}
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb := newConsentStore(t, b)
		ctx := context.Background()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.SetConsent(ctx, tt.id, tt.r, true)
				if got := violationFields(err); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("SetConsent() error = %v, want violations of %v", err, tt.want)
				}
				// Record.Validate names the fields relative to the record.
				var relative []string
				for _, f := range tt.want {
					relative = append(relative, strings.TrimPrefix(f, "record."))
				}
				if err := tt.r.Validate(); tt.id != "" && !reflect.DeepEqual(violationFields(err), relative) {
					t.Errorf("Validate() = %v, want violations of %v", err, relative)
				}
				if n := consentKeysExist(t, s, rdb, tt.id); n != 0 {
					t.Errorf("an invalid SetConsent created %d keys, want 0", n)
				}
			})
		}
		t.Run("captured in the future", func(t *testing.T) {
			// Only the Store, which has a clock, can tell.
			future := edit(func(r *consent.Record) { r.CapturedAt = now.Add(consent.MaxClockSkew + time.Millisecond) })
			_, err := s.SetConsent(ctx, "hcp-1", future, true)
			if got, want := violationFields(err), []string{"record.captured_at"}; !reflect.DeepEqual(got, want) {
				t.Errorf("SetConsent() error = %v, want violations of %v", err, want)
			}
			if n := consentKeysExist(t, s, rdb, "hcp-1"); n != 0 {
				t.Errorf("an invalid SetConsent created %d keys, want 0", n)
			}
		})
		t.Run("one invalid record in a batch", func(t *testing.T) {
			_, err := s.SetConsentMany(ctx, "hcp-1", []consent.Record{valid, edit(func(r *consent.Record) { r.Source = "" })}, true)
			if got, want := violationFields(err), []string{"records[1].source"}; !reflect.DeepEqual(got, want) {
				t.Errorf("SetConsentMany() error = %v, want violations of %v", err, want)
			}
			if n := consentKeysExist(t, s, rdb, "hcp-1"); n != 0 {
				t.Errorf("an invalid SetConsentMany created %d keys, want 0", n)
			}
		})
		t.Run("too many records", func(t *testing.T) {
			recs := make([]consent.Record, consent.MaxWriteRecords+1)
			for i := range recs {
				recs[i] = valid
			}
			_, err := s.SetConsentMany(ctx, "hcp-1", recs, true)
			if got, want := violationFields(err), []string{"records"}; !reflect.DeepEqual(got, want) {
				t.Errorf("SetConsentMany() error = %v, want violations of %v", err, want)
			}
			if n := consentKeysExist(t, s, rdb, "hcp-1"); n != 0 {
				t.Errorf("an invalid SetConsentMany created %d keys, want 0", n)
			}
		})
	})
}

func TestConsentDeadline(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, _ := newConsentStore(t, b)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := s.SetConsent(ctx, "hcp-1", rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0), true)
		if !errors.Is(err, arbiter.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("SetConsent() with an expired deadline: error = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
	})
}

func TestConsentCorrupt(t *testing.T) {
	r := withAddress(rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0), addrNew)
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb := newConsentStore(t, b)
		ctx := context.Background()
		wantCorrupt := func(t *testing.T, op string, err error) {
			t.Helper()
			if !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("%s: error = %v, want one wrapping ErrCorrupt", op, err)
			}
			if err != nil && strings.Contains(err.Error(), addrNew) {
				t.Errorf("%s: error = %q, contains the recipient's address", op, err)
			}
		}
		noLedger := func(t *testing.T, id string) {
			t.Helper()
			if n := rdb.Exists(ctx, s.key(id, suffixConsentLog)).Val(); n != 0 {
				t.Errorf("ledger written after a refused write")
			}
		}
		noConsent := func(t *testing.T, id string) {
			t.Helper()
			if n := rdb.Exists(ctx, s.key(id, suffixConsent)).Val(); n != 0 {
				t.Errorf("consent written without its ledger entry")
			}
		}

		t.Run("undecodable value", func(t *testing.T) {
			key := s.key("hcp-1", suffixConsent)
			if err := rdb.HSet(ctx, key, consentField(&r), "garbage").Err(); err != nil {
				t.Fatal(err)
			}
			_, err := s.GetConsent(ctx, "hcp-1")
			wantCorrupt(t, "GetConsent", err)
			// A new record must not replace a value that may be a withdrawal.
			_, err = s.SetConsent(ctx, "hcp-1", r, true)
			wantCorrupt(t, "SetConsent", err)
			if v := rdb.HGet(ctx, key, consentField(&r)).Val(); v != "garbage" {
				t.Errorf("SetConsent replaced the corrupt value with %q", v)
			}
			noLedger(t, "hcp-1")
		})

		t.Run("consent key of the wrong type", func(t *testing.T) {
			if err := rdb.Set(ctx, s.key("hcp-2", suffixConsent), "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := s.GetConsent(ctx, "hcp-2")
			wantCorrupt(t, "GetConsent", err)
			_, err = s.SetConsent(ctx, "hcp-2", r, true)
			wantCorrupt(t, "SetConsent", err)
			noLedger(t, "hcp-2")
		})

		t.Run("ledger key a string", func(t *testing.T) {
			if err := rdb.Set(ctx, s.key("hcp-3", suffixConsentLog), "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := s.SetConsent(ctx, "hcp-3", r, true)
			wantCorrupt(t, "SetConsent", err)
			noConsent(t, "hcp-3")
			_, _, err = s.ConsentHistory(ctx, "hcp-3", 0, 10)
			wantCorrupt(t, "ConsentHistory", err)
		})

		t.Run("ledger key a hash", func(t *testing.T) {
			if err := rdb.HSet(ctx, s.key("hcp-5", suffixConsentLog), "x", "y").Err(); err != nil {
				t.Fatal(err)
			}
			_, err := s.SetConsent(ctx, "hcp-5", r, true)
			wantCorrupt(t, "SetConsent", err)
			noConsent(t, "hcp-5")
			_, _, err = s.ConsentHistory(ctx, "hcp-5", 0, 10)
			wantCorrupt(t, "ConsentHistory", err)
		})

		t.Run("idempotency keys of the wrong type", func(t *testing.T) {
			if err := rdb.Set(ctx, s.key("hcp-6", suffixConsentOps), "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
			ev := unsubscribe("hcp-6", "unsub-1", t0)
			_, err := s.ApplyEvent(ctx, ev)
			wantCorrupt(t, "ApplyEvent(unsubscribe)", err)
			noConsent(t, "hcp-6")
			noLedger(t, "hcp-6")
		})

		entries := []struct {
			name, data string
		}{
			{"format 1 JSON", `{"v":1,"recorded_at":"2025-03-01T12:00:00Z","applied":true}`},
			{"not JSON either", "{not json"},
			{"format 2", format2(consent.LedgerEntry{RecordedAt: t0, Applied: true, MarkedComplete: true})},
			{"sequence number out of place", format3(7, consent.LedgerEntry{RecordedAt: t0, Applied: true, MarkedComplete: true})},
			{"too few fields", "3|0|" + ms(t0) + "|am"},
		}
		for i, tt := range entries {
			t.Run("ledger entry "+tt.name, func(t *testing.T) {
				id := "hcp-e" + strconv.Itoa(i)
				if err := rdb.RPush(ctx, s.key(id, suffixConsentLog), tt.data).Err(); err != nil {
					t.Fatal(err)
				}
				_, _, err := s.ConsentHistory(ctx, id, 0, 10)
				wantCorrupt(t, "ConsentHistory", err)
			})
		}
	})
}

func TestDecodeConsent(t *testing.T) {
	fields := map[string]string{
		"sms|service||a-2":           ms(t0) + "|opt_in|" + ms(t0.AddDate(1, 0, 0)) + "|web|u-17",
		"email|promotional|brand-x|": ms(t0) + "|opt_out|0|veeva|",
		"email|unspecified||":        ms(t0) + "|barred|0|veeva|",
		"_complete":                  ms(now),
	}
	got, err := decodeConsent(fields)
	if err != nil {
		t.Fatalf("decodeConsent() error = %v", err)
	}
	want := consent.State{Complete: true, CompleteAt: now, Records: []consent.Record{
		rec(arbiter.Email, 0, consent.Barred, t0),
		withTopic(rec(arbiter.Email, arbiter.Promotional, consent.OptOut, t0), "brand-x"),
		{Channel: arbiter.SMS, Purpose: arbiter.Service, Address: "a-2", Status: consent.OptIn, CapturedAt: t0,
			ExpiresAt: t0.AddDate(1, 0, 0), Source: "web", CapturedBy: "u-17"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeConsent() =\n%+v\nwant\n%+v", got, want)
	}

	for _, empty := range []map[string]string{nil, {}} {
		if got, err := decodeConsent(empty); err != nil || !reflect.DeepEqual(got, consent.State{}) {
			t.Errorf("decodeConsent(%v) = %+v, %v; want an empty State", empty, got, err)
		}
	}
}

func TestDecodeConsentCorrupt(t *testing.T) {
	value := ms(t0) + "|opt_in|0|veeva|u-1"
	field := "email|promotional||" + addrNew
	tests := []struct {
		name          string
		field, value  string
		wantInMessage string
	}{
		{"marker not a time", "_complete", "yesterday", "completeness marker"},
		{"marker zero", "_complete", "0", "completeness marker"},
		{"unknown meta field", "_version", "2", "field name"},
		{"field name with too few parts", "email|promotional|" + addrNew, value, "field name"},
		{"unknown channel", "fax|promotional||" + addrNew, value, "channel"},
		{"unknown purpose", "email|marketing||" + addrNew, value, "purpose"},
		{"opt-in without purpose", "email|unspecified||" + addrNew, value, "record.purpose"},
		{"barred with a purpose", field, ms(t0) + "|barred|0|veeva|", "record.purpose"},
		{"value with too few parts", field, ms(t0) + "|opt_in|0|veeva", "parts"},
		{"capture time not a number", field, "x|opt_in|0|veeva|", "capture time"},
		{"capture time zero", field, "0|opt_in|0|veeva|", "record.captured_at"},
		{"unknown status", field, ms(t0) + "|maybe|0|veeva|", "status"},
		{"expiry not a number", field, ms(t0) + "|opt_in|never|veeva|", "expiry"},
		{"expiry before capture", field, ms(t0) + "|opt_in|1|veeva|", "record.expires_at"},
		{"no source", field, ms(t0) + "|opt_in|0||", "record.source"},
		{"extra part", field, value + "|x|y", "record.notice_version"}, // one extra part is the notice version
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]string{"_complete": ms(now), tt.field: tt.value}
			got, err := decodeConsent(fields)
			if !errors.Is(err, arbiter.ErrCorrupt) {
				t.Fatalf("decodeConsent() = %+v, %v; want an error wrapping ErrCorrupt", got, err)
			}
			if !reflect.DeepEqual(got, consent.State{}) {
				t.Errorf("decodeConsent() state = %+v, want the zero State (unknown)", got)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantInMessage) {
				t.Errorf("decodeConsent() error = %q, want it to mention %q", msg, tt.wantInMessage)
			}
			if strings.Contains(msg, addrNew) {
				t.Errorf("decodeConsent() error = %q, contains an address", msg)
			}
		})
	}
}

// decodeBenchFields is a realistic recipient's consent hash: a dozen
// records over several channels, purposes, topics and addresses.
func decodeBenchFields() map[string]string {
	recs := []consent.Record{
		withAddress(rec(arbiter.SMS, arbiter.Service, consent.OptIn, t0), "sms-1"),
		withAddress(rec(arbiter.SMS, arbiter.Promotional, consent.OptIn, t0), "sms-1"),
		rec(arbiter.Webinar, arbiter.Promotional, consent.OptIn, t0),
		rec(arbiter.Webinar, arbiter.Medical, consent.OptIn, t0),
		rec(arbiter.Portal, arbiter.Promotional, consent.OptIn, t0),
		rec(arbiter.RepVisit, arbiter.Promotional, consent.OptOut, t0),
		withAddress(rec(arbiter.Email, arbiter.Medical, consent.OptIn, t0), addrNew),
		withAddress(rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0), "addr-old-19c2"),
		rec(arbiter.Email, arbiter.Promotional, consent.OptOut, t0.Add(-time.Hour)),
		withTopic(rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0), "brand-x"),
		withTopic(rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0), "brand-y"),
		rec(arbiter.Push, 0, consent.Barred, t0),
	}
	fields := map[string]string{completeField: ms(now)}
	for i := range recs {
		fields[consentField(&recs[i])] = consentValue(&recs[i])
	}
	return fields
}

func TestDecodeConsentAllocs(t *testing.T) {
	fields := decodeBenchFields()
	if st, err := decodeConsent(fields); err != nil || len(st.Records) != len(fields)-1 {
		t.Fatalf("decodeConsent() = %d records, %v; want %d, nil", len(st.Records), err, len(fields)-1)
	}
	// One allocation: the Records slice. Strings are substrings of fields.
	if got := testing.AllocsPerRun(100, func() { decodeConsent(fields) }); got != 1 {
		t.Errorf("decodeConsent allocates %v times per call, want 1", got)
	}
}

func BenchmarkDecodeConsent(b *testing.B) {
	fields := decodeBenchFields()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeConsent(fields); err != nil {
			b.Fatal(err)
		}
	}
}

// A record stored before address references were checked for e-mail
// addresses stays readable: the check is on writes. (A new write naming
// that address is refused; a broader opt-out, on the channel, withdraws
// the old record.)
func TestConsentStoredAddressWithAtStaysReadable(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, rdb := newConsentStore(t, b)
		ctx := context.Background()
		r := rec(arbiter.Email, arbiter.Promotional, consent.OptIn, t0)
		if _, err := s.SetConsent(ctx, "hcp-at", r, true); err != nil {
			t.Fatal(err)
		}
		old := r
		old.Address = "jane@example.com"
		if err := rdb.HSet(ctx, s.key("hcp-at", suffixConsent), consentField(&old), consentValue(&old)).Err(); err != nil {
			t.Fatal(err)
		}
		st, err := s.GetConsent(ctx, "hcp-at")
		if err != nil || len(st.Records) != 2 {
			t.Fatalf("GetConsent with an old record holding '@': %+v, %v; want both records", st, err)
		}
		old.Status, old.CapturedAt = consent.OptOut, t0.Add(time.Hour)
		if _, err := s.SetConsent(ctx, "hcp-at", old, false); err == nil {
			t.Error("a new write with an e-mail address as its reference was accepted")
		}
	})
}
