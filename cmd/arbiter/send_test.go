package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// End-to-end tests of the pre-send check (SendService) through the Go
// client: the contact policy's caps, gaps and quiet hours, the earliest
// allowed time, reservations booked by two replicas at once, and the
// batch stream. Each test gives the server a contact policy file of its
// own; a key prefix (one per test name) holds one definitions set.

// Demo catalog actions the tests send (catalog/demo_catalog.json).
const (
	actEmail    = "email-congress-invite"   // email, promotional, any HCP specialty
	actSMS      = "sms-event-reminder"      // sms, service, HCP
	actPush     = "push-congress-app"       // push, promotional, HCP
	actPortal   = "portal-medical-qa"       // portal, medical, HCP
	actCritical = "sms-patient-appointment" // sms, service, critical, patient
)

// demoApprovalEnd is when the demo content's MLR approvals end: a send
// planned after it is blocked as expired content, whatever the policy.
var demoApprovalEnd = time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

var losAngeles = mustZone("America/Los_Angeles")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

var idSeq atomic.Int64

// newID returns a recipient id made of base, new in this process: the
// tests' Redis outlives a run of each test (-count).
func newID(base string) string { return fmt.Sprintf("%s-%d", base, idSeq.Add(1)) }

// ms is t at the ledger's precision.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// writeContactPolicy writes a contact policy file (JSON text, or a value
// to marshal) and returns its path.
func writeContactPolicy(t *testing.T, policy any) string {
	t.Helper()
	data, ok := policy.(string)
	if !ok {
		b, err := json.Marshal(policy)
		if err != nil {
			t.Fatal(err)
		}
		data = string(b)
	}
	path := filepath.Join(t.TempDir(), "contact_policy.json")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func optIn(ch arbiter.Channel, pu arbiter.Purpose) client.ConsentRecord {
	return client.ConsentRecord{Channel: ch, Purpose: pu, Status: client.ConsentOptIn,
		CapturedAt: time.Now().Add(-time.Hour), Source: "e2e", CapturedBy: "send-test"}
}

// addRecipient creates a US recipient in zone tz (none: "") with complete
// consent data made of consents (default: an email opt-in).
func addRecipient(t *testing.T, c *client.Client, id, tz string, aud arbiter.Audience, consents ...client.ConsentRecord) {
	t.Helper()
	ctx := context.Background()
	p := client.Profile{HCPID: id, Market: "US", Audience: aud, TimeZone: tz}
	if aud == arbiter.HCP {
		p.Specialty = "cardiology"
	}
	if err := c.UpsertProfile(ctx, p); err != nil {
		t.Fatalf("upsert profile %s: %v", id, err)
	}
	if len(consents) == 0 {
		consents = []client.ConsentRecord{optIn(arbiter.Email, arbiter.Promotional)}
	}
	for _, r := range consents {
		if _, err := c.SetConsent(ctx, id, r, true); err != nil {
			t.Fatalf("set consent %s: %v", id, err)
		}
	}
}

func recordTouch(t *testing.T, c *client.Client, e client.Event) {
	t.Helper()
	dup, err := c.RecordEvent(context.Background(), e)
	if err != nil || dup {
		t.Fatalf("record event %s: duplicate=%v err=%v", e.ID, dup, err)
	}
}

func checkSend(t *testing.T, c *client.Client, sc client.SendCheck) *client.SendVerdict {
	t.Helper()
	v, err := c.CheckSend(context.Background(), sc)
	if err != nil {
		t.Fatalf("CheckSend(%s, %s, planned %s, reserve %v): %v", sc.HCPID, sc.ActionID, sc.PlannedAt.Format(time.RFC3339Nano), sc.Reserve, err)
	}
	return v
}

func describe(v *client.SendVerdict) string {
	var b strings.Builder
	fmt.Fprintf(&b, "allowed=%v planned=%s earliest=%s reservation=%q", v.Allowed, fmtTime(v.PlannedAt), fmtTime(v.EarliestAllowedAt), v.ReservationID)
	for _, bl := range v.Blocks {
		fmt.Fprintf(&b, "\n\t%s clears %s: %s", bl.Reason, fmtTime(bl.ClearsAt), bl.Detail)
	}
	return b.String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// wantOnlyBlock checks that v is blocked by exactly one block, of reason r,
// with a detail, clearing at clears (zero: not known), and that the
// earliest allowed time is earliest.
func wantOnlyBlock(t *testing.T, v *client.SendVerdict, r client.SuppressionReason, clears, earliest time.Time) {
	t.Helper()
	if v.Allowed || len(v.Blocks) != 1 || v.Blocks[0].Reason != r {
		t.Errorf("got %s\nwant only a %s block", describe(v), r)
		return
	}
	b := v.Blocks[0]
	if b.Detail == "" {
		t.Errorf("the %s block has no detail", r)
	}
	if !b.ClearsAt.Equal(clears) {
		t.Errorf("%s clears at %s, want %s", r, fmtTime(b.ClearsAt), fmtTime(clears))
	}
	if !v.EarliestAllowedAt.Equal(earliest) {
		t.Errorf("earliest allowed at %s, want %s", fmtTime(v.EarliestAllowedAt), fmtTime(earliest))
	}
	if v.ReservationID != "" {
		t.Errorf("a blocked check got reservation %q", v.ReservationID)
	}
}

// wantEdge checks the earliest allowed time e of a send: allowed at e,
// blocked a millisecond before.
func wantEdge(t *testing.T, c *client.Client, hcp, action string, e time.Time) {
	t.Helper()
	if v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: action, PlannedAt: e}); !v.Allowed {
		t.Errorf("at its earliest allowed time %s the send is not allowed: %s", fmtTime(e), describe(v))
	}
	if v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: action, PlannedAt: e.Add(-time.Millisecond)}); v.Allowed {
		t.Errorf("1ms before its earliest allowed time %s the send is allowed", fmtTime(e))
	}
}

// ledger is the recipient's touch ledger as stored: the test's proof that
// a call wrote nothing.
func ledger(t *testing.T, ts *testServer, hcp string) []string {
	t.Helper()
	raw, err := ts.rdb.LRange(context.Background(), ts.cfg.RedisPrefix+":{"+hcp+"}:t", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// 1. A cap shared by two callers on two replicas: what one records and
// the other reserves both count, for both.

const sharedCapPolicy = `{"retention": "35d", "rules": [{"id": "hcp", "audiences": ["hcp"],
  "caps": [{"id": "email-2-7d", "channels": ["email"], "max": 2, "window": "7d"}]}]}`

func TestSendSharedEmailCap(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) { testSendSharedEmailCap(t, b) })
}

// The same with the HCP cache on both replicas: what the other replica
// booked is seen by the very next check.
func TestSendSharedEmailCapCached(t *testing.T) {
	testSendSharedEmailCap(t, singleRedis(t), "-hcp-cache", "1000")
}

func testSendSharedEmailCap(t *testing.T, b redistest.Backend, flags ...string) {
	flags = append([]string{"-contact-policy", writeContactPolicy(t, sharedCapPolicy)}, flags...)
	one := start(t, b, 1, flags...)
	two := start(t, b, 1, flags...) // the same key prefix: one fleet
	hcp := newID("SEND-CAP")
	addRecipient(t, one.client, hcp, "America/New_York", arbiter.HCP)

	now := time.Now()
	// Caller 1, on replica one: the email platform reports a send six days
	// ago (the catalog's 48h email gap is long over).
	oldest := ms(now.Add(-6 * day))
	recordTouch(t, one.client, client.Event{ID: hcp + "-sent", HCPID: hcp, Type: arbiter.EventSent,
		Channel: arbiter.Email, ActionID: actEmail, MessageID: "m-1", OccurredAt: oldest})
	// Caller 2, on replica two: reserves a send in an hour.
	v := checkSend(t, two.client, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: ms(now.Add(time.Hour)),
		Reserve: true, IdempotencyKey: "caller-2"})
	if !v.Allowed || v.ReservationID == "" || v.ReservationExisting || v.ReservationState != "RESERVED" {
		t.Fatalf("second email of the week: %s (existing %v, state %q); want a new reservation", describe(v), v.ReservationExisting, v.ReservationState)
	}

	// A third, through either replica, is blocked until the oldest touch
	// leaves the 7-day window.
	clears := oldest.Add(7 * day)
	third := ms(now.Add(2 * time.Hour))
	for i, srv := range []*testServer{one, two} {
		v := checkSend(t, srv.client, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: third, Reserve: true, IdempotencyKey: "caller-3"})
		wantOnlyBlock(t, v, client.SuppressionFrequencyCap, clears, clears)
		if len(v.Blocks) == 1 && !strings.Contains(v.Blocks[0].Detail, "email-2-7d") {
			t.Errorf("replica %d: detail %q does not name the cap", i+1, v.Blocks[0].Detail)
		}
	}
	wantEdge(t, one.client, hcp, actEmail, clears)
	// The blocked reservations booked nothing: at the earliest time, one
	// touch (the reservation) is in the window, so one more fits.
	v = checkSend(t, one.client, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: clears, Reserve: true, IdempotencyKey: "caller-4"})
	if !v.Allowed || v.ReservationID == "" || v.ReservationExisting {
		t.Errorf("reserve at the earliest allowed time: %s; want a new reservation (did a blocked check book one?)", describe(v))
	}
}

// 2. A minimum gap between any two touches, whatever their channel.

const gapPolicy = `{"retention": "35d", "rules": [{"id": "hcp", "gaps": [{"id": "any-4h", "min": "4h"}]}]}`

func TestSendMinGap(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-contact-policy", writeContactPolicy(t, gapPolicy))
	c := ts.client
	hcp := newID("SEND-GAP")
	addRecipient(t, c, hcp, "America/Chicago", arbiter.HCP)

	// A rep visited an hour ago: no email for 4 hours after it. (A visit,
	// not an email: the catalog's own email gap does not apply.)
	visit := ms(time.Now().Add(-time.Hour))
	recordTouch(t, c, client.Event{ID: hcp + "-visit", HCPID: hcp, Type: arbiter.EventRepVisit, Channel: arbiter.RepVisit, OccurredAt: visit})
	v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail})
	wantOnlyBlock(t, v, client.SuppressionMinGap, visit.Add(4*time.Hour), visit.Add(4*time.Hour))
	if len(v.Blocks) == 1 && !strings.Contains(v.Blocks[0].Detail, "any-4h") {
		t.Errorf("detail %q does not name the gap", v.Blocks[0].Detail)
	}
	wantEdge(t, c, hcp, actEmail, visit.Add(4*time.Hour))

	// A booked touch holds the gap on both sides of it.
	booked := ms(time.Now().Add(10 * time.Hour))
	if v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actPortal, PlannedAt: booked, Reserve: true}); !v.Allowed || v.ReservationID == "" {
		t.Fatalf("reserve a portal touch 9h after the visit: %s", describe(v))
	}
	for _, at := range []time.Time{booked.Add(-time.Hour), booked.Add(time.Hour)} {
		v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: at})
		wantOnlyBlock(t, v, client.SuppressionMinGap, booked.Add(4*time.Hour), booked.Add(4*time.Hour))
	}
	wantEdge(t, c, hcp, actEmail, booked.Add(4*time.Hour))
}

// 3. Quiet hours in the recipient's zone, also on the nights the clocks
// change.

const quietPolicy = `{"retention": "35d", "rules": [{"id": "hcp",
  "quiet_hours": [{"id": "digital-nights", "channels": ["email", "sms", "push"], "from": "20:00", "to": "08:00"}]}]}`

// clockChanges returns the next n clock changes of loc after from.
func clockChanges(loc *time.Location, from time.Time, n int) []time.Time {
	var out []time.Time
	for t := from; len(out) < n; {
		_, end := t.In(loc).ZoneBounds()
		if end.IsZero() {
			break
		}
		out = append(out, end)
		t = end
	}
	return out
}

// localDate returns the date in loc days after today there, at hh:mm.
func localDate(loc *time.Location, from time.Time, days, hh, mm int) time.Time {
	y, m, d := from.In(loc).Date()
	return time.Date(y, m, d+days, hh, mm, 0, 0, loc)
}

func TestSendQuietHours(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-contact-policy", writeContactPolicy(t, quietPolicy))
	c := ts.client
	hcp := newID("SEND-QUIET-LA")
	addRecipient(t, c, hcp, "America/Los_Angeles", arbiter.HCP)
	now := time.Now()

	quietAt := func(t *testing.T, planned, want time.Time) {
		t.Helper()
		if planned.Before(now) || want.After(now.Add(365*day)) {
			t.Skipf("%s is not within the next year", planned)
		}
		if want.After(demoApprovalEnd) {
			t.Skipf("%s is after the demo content's approval ends", want)
		}
		v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: planned})
		wantOnlyBlock(t, v, client.SuppressionQuietHours, want, want)
		wantEdge(t, c, hcp, actEmail, want)
	}
	t.Run("22:30 local", func(t *testing.T) {
		quietAt(t, localDate(losAngeles, now, 2, 22, 30), localDate(losAngeles, now, 3, 8, 0))
	})
	t.Run("05:00 local", func(t *testing.T) {
		quietAt(t, localDate(losAngeles, now, 2, 5, 0), localDate(losAngeles, now, 2, 8, 0))
	})
	t.Run("afternoon is allowed", func(t *testing.T) {
		if v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: localDate(losAngeles, now, 2, 15, 0)}); !v.Allowed {
			t.Errorf("15:00 local: %s", describe(v))
		}
	})
	for _, change := range clockChanges(losAngeles, now, 2) {
		_, before := change.Add(-time.Second).In(losAngeles).Zone()
		_, after := change.In(losAngeles).Zone()
		name := "spring forward"
		if after < before {
			name = "fall back"
		}
		y, m, d := change.In(losAngeles).Date() // the Sunday of the change
		at := func(days, hh, mm int) time.Time { return time.Date(y, m, d+days, hh, mm, 0, 0, losAngeles) }
		t.Run(fmt.Sprintf("%s %04d-%02d-%02d", name, y, m, d), func(t *testing.T) {
			t.Run("22:30 the night before", func(t *testing.T) { quietAt(t, at(-1, 22, 30), at(0, 8, 0)) })
			t.Run("01:30 the night of", func(t *testing.T) { quietAt(t, at(0, 1, 30), at(0, 8, 0)) })
			t.Run("22:30 the day of", func(t *testing.T) { quietAt(t, at(0, 22, 30), at(1, 8, 0)) })
		})
	}
}

// 4. A cap per calendar day ends at the recipient's midnight.

const dayCapPolicy = `{"retention": "35d", "rules": [{"id": "hcp",
  "caps": [{"id": "email-per-day", "channels": ["email"], "max": 1, "per": "day"}]}]}`

func TestSendCalendarDayCap(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-contact-policy", writeContactPolicy(t, dayCapPolicy))
	c := ts.client
	now := time.Now()
	la, ny := newID("SEND-DAY-LA"), newID("SEND-DAY-NY")
	addRecipient(t, c, la, "America/Los_Angeles", arbiter.HCP)
	addRecipient(t, c, ny, "America/New_York", arbiter.HCP)
	newYork := mustZone("America/New_York")

	reserve := func(t *testing.T, hcp string, at time.Time) {
		t.Helper()
		if v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: at, Reserve: true}); !v.Allowed || v.ReservationID == "" {
			t.Fatalf("reserve %s at %s: %s", hcp, fmtTime(at), describe(v))
		}
	}
	// Both book an email at 23:00 Los Angeles time, in two days: for the
	// New York recipient that is 02:00 the day after.
	touch := localDate(losAngeles, now, 2, 23, 0)
	reserve(t, la, touch)
	reserve(t, ny, touch)

	laMidnight := localDate(losAngeles, now, 3, 0, 0)
	v := checkSend(t, c, client.SendCheck{HCPID: la, ActionID: actEmail, PlannedAt: localDate(losAngeles, now, 2, 23, 30)})
	wantOnlyBlock(t, v, client.SuppressionFrequencyCap, laMidnight, laMidnight)
	// Earlier the same local day is blocked too (a calendar day, not a
	// rolling window), until the same midnight.
	v = checkSend(t, c, client.SendCheck{HCPID: la, ActionID: actEmail, PlannedAt: localDate(losAngeles, now, 2, 0, 30)})
	wantOnlyBlock(t, v, client.SuppressionFrequencyCap, laMidnight, laMidnight)
	if v := checkSend(t, c, client.SendCheck{HCPID: la, ActionID: actEmail, PlannedAt: localDate(losAngeles, now, 3, 0, 30)}); !v.Allowed {
		t.Errorf("00:30 local the next day: %s; want allowed", describe(v))
	}
	wantEdge(t, c, la, actEmail, laMidnight)

	// The New York recipient's day is New York's: 23:30 Los Angeles time is
	// 02:30 there, the day of the touch, which ends at midnight in New York.
	nyMidnight := localDate(newYork, touch, 1, 0, 0)
	v = checkSend(t, c, client.SendCheck{HCPID: ny, ActionID: actEmail, PlannedAt: localDate(losAngeles, now, 2, 23, 30)})
	wantOnlyBlock(t, v, client.SuppressionFrequencyCap, nyMidnight, nyMidnight)
	// ... and 22:30 Los Angeles time is 01:30 in New York: also that day.
	v = checkSend(t, c, client.SendCheck{HCPID: ny, ActionID: actEmail, PlannedAt: localDate(losAngeles, now, 2, 22, 30)})
	wantOnlyBlock(t, v, client.SuppressionFrequencyCap, nyMidnight, nyMidnight)
	// 20:30 Los Angeles time is 23:30 in New York, the day before: allowed.
	if v := checkSend(t, c, client.SendCheck{HCPID: ny, ActionID: actEmail, PlannedAt: localDate(losAngeles, now, 2, 20, 30)}); !v.Allowed {
		t.Errorf("23:30 New York time the day before: %s; want allowed", describe(v))
	}

	// The 25-hour day the clocks fall back.
	for _, change := range clockChanges(losAngeles, now, 2) {
		_, before := change.Add(-time.Second).In(losAngeles).Zone()
		if _, after := change.In(losAngeles).Zone(); after > before {
			continue
		}
		t.Run("fall back day", func(t *testing.T) {
			y, m, d := change.In(losAngeles).Date()
			at := func(days, hh, mm int) time.Time { return time.Date(y, m, d+days, hh, mm, 0, 0, losAngeles) }
			if at(1, 1, 0).After(now.Add(365*day)) || at(1, 1, 0).After(demoApprovalEnd) {
				t.Skip("the next fall-back is too far ahead for the demo content")
			}
			hcp := newID("SEND-DAY-LA-FALL")
			addRecipient(t, c, hcp, "America/Los_Angeles", arbiter.HCP)
			reserve(t, hcp, at(0, 0, 30))
			v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: at(0, 23, 30)})
			wantOnlyBlock(t, v, client.SuppressionFrequencyCap, at(1, 0, 0), at(1, 0, 0))
			if got := at(1, 0, 0).Sub(at(0, 0, 0)); got != 25*time.Hour {
				t.Fatalf("the fall-back day lasts %s", got)
			}
			wantEdge(t, c, hcp, actEmail, at(1, 0, 0))
		})
	}
}

// 5. A critical message is exempt from quiet hours and caps, not from
// consent.

const criticalPolicy = `{"retention": "35d", "rules": [{"id": "all",
  "caps": [{"id": "sms-per-day", "channels": ["sms"], "max": 1, "per": "day"}],
  "quiet_hours": [{"id": "nights", "from": "20:00", "to": "08:00"}]}]}`

func TestSendCriticalInQuietHours(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-contact-policy", writeContactPolicy(t, criticalPolicy))
	c := ts.client
	patient, noSMS, hcp := newID("SEND-PATIENT"), newID("SEND-PATIENT-NO-SMS"), newID("SEND-CRIT-HCP")
	addRecipient(t, c, patient, "America/Los_Angeles", arbiter.Patient, optIn(arbiter.SMS, arbiter.Service))
	addRecipient(t, c, noSMS, "America/Los_Angeles", arbiter.Patient, optIn(arbiter.Email, arbiter.Service))
	addRecipient(t, c, hcp, "America/Los_Angeles", arbiter.HCP, optIn(arbiter.SMS, arbiter.Service))
	night := localDate(losAngeles, time.Now(), 2, 22, 30)
	morning := localDate(losAngeles, time.Now(), 3, 8, 0)

	// The quiet hours hold for SMS: a service SMS to an HCP waits.
	v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actSMS, PlannedAt: night})
	wantOnlyBlock(t, v, client.SuppressionQuietHours, morning, morning)

	// The critical one goes out, twice: neither quiet hours nor the daily
	// SMS cap hold it back.
	for i := range 2 {
		v := checkSend(t, c, client.SendCheck{HCPID: patient, ActionID: actCritical, PlannedAt: night.Add(time.Duration(i) * time.Minute),
			Reserve: true, IdempotencyKey: fmt.Sprintf("appt-%d", i)})
		if !v.Allowed || len(v.Blocks) != 0 || v.ReservationID == "" {
			t.Errorf("critical SMS %d at 22:30 local: %s; want allowed and reserved", i, describe(v))
		}
	}
	// Without SMS consent it is not sent, and no time fixes that.
	v = checkSend(t, c, client.SendCheck{HCPID: noSMS, ActionID: actCritical, PlannedAt: night, Reserve: true})
	wantOnlyBlock(t, v, client.SuppressionNoConsent, time.Time{}, time.Time{})
}

// 6. The earliest allowed time is exact: allowed there, blocked a
// millisecond before, for random small policies and histories.

var (
	propChannels = []string{"email", "sms", "push", "portal", "rep_visit"}
	propPurposes = []string{"promotional", "medical", "service"}
	propWindows  = []string{"30m", "2h", "6h", "1d", "3d"}
	propGaps     = []string{"15m", "1h", "4h", "12h"}
	propZones    = []string{"America/Los_Angeles", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Europe/London", ""}
	propActions  = []string{actEmail, actSMS, actPush, actPortal}
)

func randomPolicy(r *rand.Rand) map[string]any {
	subset := func(from []string) []string {
		if r.IntN(2) == 0 {
			return nil
		}
		var out []string
		for _, s := range from {
			if r.IntN(3) == 0 {
				out = append(out, s)
			}
		}
		return out
	}
	rule := map[string]any{"id": "r"}
	var caps, gaps, quiet []map[string]any
	for i := range r.IntN(3) {
		c := map[string]any{"id": fmt.Sprintf("cap%d", i), "max": 1 + r.IntN(3)}
		if s := subset(propChannels); len(s) > 0 {
			c["channels"] = s
		}
		if s := subset(propPurposes); len(s) > 0 {
			c["purposes"] = s
		}
		switch r.IntN(4) {
		case 0:
			c["per"] = "day"
		case 1:
			c["per"] = "week"
		default:
			c["window"] = propWindows[r.IntN(len(propWindows))]
		}
		caps = append(caps, c)
	}
	for i := range r.IntN(2) {
		g := map[string]any{"id": fmt.Sprintf("gap%d", i), "min": propGaps[r.IntN(len(propGaps))]}
		if s := subset(propChannels); len(s) > 0 {
			g["channels"] = s
		}
		gaps = append(gaps, g)
	}
	if r.IntN(2) == 0 || len(caps)+len(gaps) == 0 {
		from := r.IntN(48) * 30
		to := (from + 30*(1+r.IntN(47))) % (24 * 60)
		q := map[string]any{"id": "quiet", "from": fmt.Sprintf("%02d:%02d", from/60, from%60), "to": fmt.Sprintf("%02d:%02d", to/60, to%60)}
		if s := subset(propChannels); len(s) > 0 {
			q["channels"] = s
		}
		if r.IntN(3) == 0 {
			days := []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
			r.Shuffle(len(days), func(i, j int) { days[i], days[j] = days[j], days[i] })
			q["weekdays"] = days[:1+r.IntN(6)]
		}
		quiet = append(quiet, q)
	}
	if caps != nil {
		rule["caps"] = caps
	}
	if gaps != nil {
		rule["gaps"] = gaps
	}
	if quiet != nil {
		rule["quiet_hours"] = quiet
	}
	p := map[string]any{"retention": "10d", "rules": []any{rule}}
	if r.IntN(2) == 0 {
		p["markets"] = map[string]any{"US": map[string]any{"zones": []string{"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"}}}
	}
	return p
}

func TestSendEarliestAllowedProperty(t *testing.T) {
	b := singleRedis(t)
	// ARBITER_PROP_SEED replays a run (with the same clock, roughly: the
	// times are drawn relative to now); ARBITER_PROP_CASES runs more.
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("ARBITER_PROP_SEED"), 10, 64); err == nil {
		seed = s
	}
	cases := 50
	if n, err := strconv.Atoi(os.Getenv("ARBITER_PROP_CASES")); err == nil && n > 0 {
		cases = n
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	exercised, nearChange, truncated := 0, 0, 0
	for i := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			policy := randomPolicy(r)
			// Some ledgers outgrow the policy's bound: the oldest touches
			// are dropped and nothing before them is proven.
			nEvents := r.IntN(4)
			if r.IntN(4) == 0 {
				policy["max_touches"] = 10
				nEvents = 11 + r.IntN(3)
				truncated++
			}
			zone := propZones[r.IntN(len(propZones))]
			pj, _ := json.Marshal(policy)
			ts := start(t, b, 1, "-contact-policy", writeContactPolicy(t, string(pj)))
			c := ts.client
			hcp := newID(fmt.Sprintf("SEND-PROP-%d", i))
			addRecipient(t, c, hcp, zone, arbiter.HCP, optIn(arbiter.Email, arbiter.Promotional),
				optIn(arbiter.SMS, arbiter.Service), optIn(arbiter.Push, arbiter.Promotional))
			now := time.Now()
			// Half the cases plan around the zone's next clock change.
			anchor := now
			if r.IntN(2) == 0 {
				loc := losAngeles
				if zone != "" {
					loc = mustZone(zone)
				}
				if ch := clockChanges(loc, now.Add(3*day), 1); len(ch) == 1 && ch[0].Before(now.Add(300*day)) && ch[0].Add(3*day).Before(demoApprovalEnd) {
					anchor = ch[0].Add(-2 * day)
					nearChange++
				}
			}
			var history []string
			for j := range nEvents {
				e := client.Event{ID: fmt.Sprintf("%s-%d", hcp, j), HCPID: hcp,
					OccurredAt: ms(now.Add(-time.Minute - time.Duration(r.Int64N(int64(3*day))))),
					Purpose:    arbiter.Purpose(r.IntN(arbiter.NumPurposes))}
				switch r.IntN(4) {
				case 0:
					e.Type, e.Channel = arbiter.EventRepVisit, arbiter.RepVisit
				case 1:
					e.Type, e.Channel = arbiter.EventDelivered, []arbiter.Channel{arbiter.Email, arbiter.SMS, arbiter.Push}[r.IntN(3)]
				default:
					e.Type, e.Channel = arbiter.EventSent, []arbiter.Channel{arbiter.Email, arbiter.SMS, arbiter.Push, arbiter.Portal}[r.IntN(4)]
				}
				recordTouch(t, c, e)
				history = append(history, fmt.Sprintf("%s %s %s at %s", e.Type, e.Channel, e.Purpose, fmtTime(e.OccurredAt)))
			}
			for range r.IntN(4) {
				sc := client.SendCheck{HCPID: hcp, ActionID: propActions[r.IntN(len(propActions))], Reserve: true,
					PlannedAt: ms(anchor.Add(time.Duration(r.Int64N(int64(4 * day)))))}
				v := checkSend(t, c, sc)
				history = append(history, fmt.Sprintf("reserve %s at %s: allowed=%v", sc.ActionID, fmtTime(sc.PlannedAt), v.Allowed))
			}
			about := func() string {
				return fmt.Sprintf("seed %d, case %d, policy %s, zone %q, history:\n\t%s", seed, i, pj, zone, strings.Join(history, "\n\t"))
			}
			for range 5 {
				action := propActions[r.IntN(len(propActions))]
				sc := client.SendCheck{HCPID: hcp, ActionID: action}
				if anchor != now || r.IntN(5) != 0 {
					sc.PlannedAt = ms(anchor.Add(time.Duration(r.Int64N(int64(4 * day)))))
				}
				v := checkSend(t, c, sc)
				e := v.EarliestAllowedAt
				if v.Allowed || e.IsZero() {
					continue
				}
				exercised++
				if !e.After(v.PlannedAt) {
					t.Errorf("%s at %s: earliest allowed %s is not after the blocked time\n%s", action, fmtTime(v.PlannedAt), fmtTime(e), about())
				}
				for _, bl := range v.Blocks {
					if !bl.ClearsAt.IsZero() && e.Before(bl.ClearsAt) {
						t.Errorf("%s at %s: earliest allowed %s is before the %s block clears (%s)\n%s", action, fmtTime(v.PlannedAt), fmtTime(e), bl.Reason, fmtTime(bl.ClearsAt), about())
					}
				}
				if at := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: action, PlannedAt: e}); !at.Allowed {
					t.Errorf("%s at %s: %s\nat its earliest allowed time: %s\n%s", action, fmtTime(v.PlannedAt), describe(v), describe(at), about())
				}
				if before := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: action, PlannedAt: e.Add(-time.Millisecond)}); before.Allowed {
					t.Errorf("%s at %s: %s\nallowed 1ms before its earliest allowed time\n%s", action, fmtTime(v.PlannedAt), describe(v), about())
				}
				// It is the first: blocked anywhere between.
				if span := e.Sub(v.PlannedAt) - time.Millisecond; span > 0 {
					for range 2 {
						at := ms(v.PlannedAt.Add(time.Duration(r.Int64N(int64(span)))))
						if between := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: action, PlannedAt: at}); between.Allowed {
							t.Errorf("%s at %s: %s\nallowed at %s, before its earliest allowed time\n%s", action, fmtTime(v.PlannedAt), describe(v), fmtTime(at), about())
						}
					}
				}
			}
		})
	}
	if exercised < cases/2 {
		t.Errorf("only %d blocked checks had an earliest allowed time; the property was hardly tested", exercised)
	}
	t.Logf("%d blocked checks with an earliest allowed time; %d cases around a clock change, %d with a truncated ledger", exercised, nearChange, truncated)
}

// 7. The race: two replicas, 500 concurrent reservations, exactly the
// slots left are granted.

const raceCap = 8

const racePolicy = `{"retention": "35d", "reservation_ttl": "1s", "rules": [{"id": "hcp",
  "caps": [{"id": "email-8-7d", "channels": ["email"], "max": 8, "window": "7d"}]}]}`

type granted struct{ id, key string }

// reserveConcurrently sends n reservations at once, alternating between
// the servers, and returns those granted; every other answer must be a
// FREQUENCY_CAP block.
func reserveConcurrently(t *testing.T, srv []*testServer, hcp string, planned time.Time, keyPrefix string, n int) []granted {
	t.Helper()
	var (
		mu  sync.Mutex
		out []granted
		wg  sync.WaitGroup
	)
	startGun := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("%s-%d", keyPrefix, i)
			<-startGun
			v, err := srv[i%len(srv)].client.CheckSend(context.Background(), client.SendCheck{HCPID: hcp, ActionID: actEmail,
				PlannedAt: planned, Reserve: true, IdempotencyKey: key})
			switch {
			case err != nil:
				t.Errorf("reservation %s: %v", key, err)
			case v.Allowed:
				if v.ReservationID == "" || v.ReservationExisting || v.ReservationState != "RESERVED" {
					t.Errorf("reservation %s allowed but %s (existing %v, state %q)", key, describe(v), v.ReservationExisting, v.ReservationState)
				}
				mu.Lock()
				out = append(out, granted{v.ReservationID, key})
				mu.Unlock()
			case len(v.Blocks) != 1 || v.Blocks[0].Reason != client.SuppressionFrequencyCap || v.ReservationID != "":
				t.Errorf("reservation %s: %s; want granted, or blocked by the cap alone", key, describe(v))
			}
		}()
	}
	close(startGun)
	wg.Wait()
	ids := map[string]bool{}
	for _, g := range out {
		if ids[g.id] {
			t.Errorf("reservation id %s granted twice", g.id)
		}
		ids[g.id] = true
	}
	return out
}

// prefill records sends of the email cap's touches, three days ago (the
// catalog's 48h email gap is over).
func prefill(t *testing.T, srv []*testServer, hcp string, n int) {
	t.Helper()
	base := ms(time.Now().Add(-3 * day))
	for i := range n {
		recordTouch(t, srv[i%len(srv)].client, client.Event{ID: fmt.Sprintf("%s-prefill-%d", hcp, i), HCPID: hcp, Type: arbiter.EventSent,
			Channel: arbiter.Email, ActionID: actEmail, MessageID: fmt.Sprintf("%s-m%d", hcp, i), OccurredAt: base.Add(time.Duration(i) * time.Minute)})
	}
}

func TestSendReservationRace(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) { testSendReservationRace(t, b) })
}

// The race with the HCP cache on both replicas.
func TestSendReservationRaceCached(t *testing.T) {
	testSendReservationRace(t, singleRedis(t), "-hcp-cache", "1000")
}

func testSendReservationRace(t *testing.T, b redistest.Backend, flags ...string) {
	// Hundreds of reservations at once, on purpose: no admission bound
	// (the race is about the ledger, not capacity).
	flags = append([]string{"-contact-policy", writeContactPolicy(t, racePolicy), "-max-in-flight", "0"}, flags...)
	srv := []*testServer{start(t, b, 1, flags...), start(t, b, 1, flags...)}
	for _, n := range []int{1, 3, 7} {
		for rep := range 2 {
			t.Run(fmt.Sprintf("%d slots, %d", n, rep), func(t *testing.T) { testReservationRace(t, srv, n, newID(fmt.Sprintf("SEND-RACE-%d-%d", n, rep))) })
		}
	}
	t.Run("expiry", func(t *testing.T) { testReservationExpiry(t, srv) })
}

func testReservationRace(t *testing.T, srv []*testServer, n int, hcp string) {
	ctx := context.Background()
	addRecipient(t, srv[0].client, hcp, "America/Chicago", arbiter.HCP)
	prefill(t, srv, hcp, raceCap-n)
	// Planned two minutes ahead: the 1s reservation TTL runs from then.
	planned := ms(time.Now().Add(2 * time.Minute))

	got := reserveConcurrently(t, srv, hcp, planned, "race", 500)
	if len(got) != n {
		t.Fatalf("500 concurrent reservations with %d slots left granted %d", n, len(got))
	}

	// Releasing one frees exactly one slot.
	if err := srv[1].client.ReleaseReservation(ctx, hcp, got[0].id); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := srv[0].client.ReleaseReservation(ctx, hcp, got[0].id); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("release twice: %v, want FailedPrecondition", err)
	}
	again := reserveConcurrently(t, srv, hcp, planned, "after-release", 20)
	if len(again) != 1 {
		t.Fatalf("after one release, 20 concurrent reservations granted %d, want 1", len(again))
	}
	live := append(got[1:], again...)
	if len(live) < 2 {
		return
	}

	// Free a slot, then confirm another reservation by its send event and
	// report the message's delivery: the reservation, the send and the
	// delivery are one touch, so exactly the freed slot is left.
	if err := srv[0].client.ReleaseReservation(ctx, hcp, live[0].id); err != nil {
		t.Fatalf("release: %v", err)
	}
	sent := live[1]
	// The send is reported after the planned time of the reservations
	// below: the catalog's email gap runs after a contact, not before it.
	occurred := ms(time.Now().Add(4 * time.Minute))
	msg := hcp + "-sent"
	recordTouch(t, srv[1].client, client.Event{ID: hcp + "-sent", HCPID: hcp, Type: arbiter.EventSent, Channel: arbiter.Email,
		ActionID: actEmail, MessageID: msg, ReservationID: sent.id, OccurredAt: occurred})
	recordTouch(t, srv[0].client, client.Event{ID: hcp + "-delivered", HCPID: hcp, Type: arbiter.EventDelivered, Channel: arbiter.Email,
		ActionID: actEmail, MessageID: msg, OccurredAt: occurred})
	after := reserveConcurrently(t, srv, hcp, planned, "after-send", 20)
	if len(after) != 1 {
		t.Errorf("with one slot free and a reservation confirmed by a send and a delivery, 20 concurrent reservations granted %d, want 1", len(after))
	}
	if err := srv[0].client.ReleaseReservation(ctx, hcp, sent.id); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("release a sent reservation: %v, want FailedPrecondition", err)
	}
	v := checkSend(t, srv[1].client, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: planned, Reserve: true, IdempotencyKey: sent.key})
	if !v.Allowed || !v.ReservationExisting || v.ReservationID != sent.id || v.ReservationState != "SENT" {
		t.Errorf("retry of the sent reservation's key: %s (existing %v, state %q); want the same reservation, SENT", describe(v), v.ReservationExisting, v.ReservationState)
	}
}

// An expired reservation stops counting. Its TTL (1s) runs from the time
// of the booking: the test waits for it by polling, with a deadline.
func testReservationExpiry(t *testing.T, srv []*testServer) {
	ctx := context.Background()
	hcp := newID("SEND-RACE-EXPIRY")
	addRecipient(t, srv[0].client, hcp, "America/Chicago", arbiter.HCP)
	prefill(t, srv, hcp, raceCap-1)
	v := checkSend(t, srv[0].client, client.SendCheck{HCPID: hcp, ActionID: actEmail, Reserve: true, IdempotencyKey: "expiring"})
	if !v.Allowed || v.ReservationID == "" {
		t.Fatalf("reserve the last slot: %s", describe(v))
	}
	if want := v.PlannedAt.Truncate(time.Millisecond).Add(time.Second); !v.ReservationExpiresAt.Equal(want) {
		t.Errorf("reservation expires at %s, want the booking time %s + 1s", fmtTime(v.ReservationExpiresAt), fmtTime(v.PlannedAt))
	}
	probe := client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: ms(time.Now().Add(time.Hour))}
	asked := time.Now()
	if w := checkSend(t, srv[1].client, probe); w.Allowed {
		// Only a failure if the reservation was surely live when asked.
		if asked.Before(v.ReservationExpiresAt.Add(-500 * time.Millisecond)) {
			t.Errorf("a live reservation does not count: %s", describe(w))
		}
	} else if len(w.Blocks) != 1 || w.Blocks[0].Reason != client.SuppressionFrequencyCap {
		t.Errorf("with the last slot reserved: %s; want a FREQUENCY_CAP block", describe(w))
	}

	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !checkSend(t, srv[1].client, probe).Allowed {
		if time.Now().After(deadline) {
			t.Fatalf("the reservation (expiring %s) still counts 10s later", fmtTime(v.ReservationExpiresAt))
		}
		<-tick.C
	}
	if got := reserveConcurrently(t, srv, hcp, probe.PlannedAt, "after-expiry", 20); len(got) != 1 {
		t.Errorf("after the reservation expired, 20 concurrent reservations granted %d, want 1", len(got))
	}
	if err := srv[1].client.ReleaseReservation(ctx, hcp, v.ReservationID); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("release an expired reservation: %v, want FailedPrecondition", err)
	}
}

// 8. Bad input is refused, and writes nothing.

func TestSendBadInput(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-contact-policy", writeContactPolicy(t, sharedCapPolicy))
	c := ts.client
	ctx := context.Background()
	x, y := newID("SEND-BAD-X"), newID("SEND-BAD-Y")
	addRecipient(t, c, x, "America/Denver", arbiter.HCP)
	addRecipient(t, c, y, "America/Denver", arbiter.HCP)
	planned := ms(time.Now().Add(time.Hour))
	v := checkSend(t, c, client.SendCheck{HCPID: x, ActionID: actEmail, PlannedAt: planned, Reserve: true, IdempotencyKey: "x-1"})
	if !v.Allowed || v.ReservationID == "" {
		t.Fatalf("reserve: %s", describe(v))
	}
	res := v.ReservationID
	if v := checkSend(t, c, client.SendCheck{HCPID: y, ActionID: actEmail, PlannedAt: planned, Reserve: true, IdempotencyKey: "y-1"}); !v.Allowed {
		t.Fatalf("reserve: %s", describe(v))
	}
	beforeX, beforeY := ledger(t, ts, x), ledger(t, ts, y)
	if len(beforeX) != 2 || len(beforeY) != 2 {
		t.Fatalf("ledgers %q and %q: want a header and one reservation each", beforeX, beforeY)
	}

	send := func(sc client.SendCheck) func() error {
		return func() error { _, err := c.CheckSend(ctx, sc); return err }
	}
	release := func(hcp, id string) func() error {
		return func() error { return c.ReleaseReservation(ctx, hcp, id) }
	}
	now := time.Now()
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"unknown action", send(client.SendCheck{HCPID: x, ActionID: "no-such-action", PlannedAt: planned, Reserve: true, IdempotencyKey: "bad-1"}), codes.InvalidArgument, "action_id"},
		{"no action", send(client.SendCheck{HCPID: x, Reserve: true}), codes.InvalidArgument, "action_id"},
		{"planned an hour ago", send(client.SendCheck{HCPID: x, ActionID: actEmail, PlannedAt: now.Add(-time.Hour), Reserve: true, IdempotencyKey: "bad-2"}), codes.InvalidArgument, "planned_at"},
		{"planned in two years", send(client.SendCheck{HCPID: x, ActionID: actEmail, PlannedAt: now.Add(2 * 365 * day), Reserve: true, IdempotencyKey: "bad-3"}), codes.InvalidArgument, "planned_at"},
		{"bad hcp id", send(client.SendCheck{HCPID: "SEND BAD", ActionID: actEmail, Reserve: true}), codes.InvalidArgument, "hcp_id"},
		{"unknown hcp", send(client.SendCheck{HCPID: "SEND-NOBODY", ActionID: actEmail, Reserve: true}), codes.NotFound, ""},
		{"release unknown reservation", release(x, "rsv_AAAAAAAAAAAAAAAAAAAAAAAA"), codes.NotFound, ""},
		{"release another recipient's reservation", release(y, res), codes.NotFound, ""},
		{"release without id", release(x, ""), codes.InvalidArgument, "reservation_id"},
		{"release with bad hcp id", release("SEND BAD", res), codes.InvalidArgument, "hcp_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.code)
			}
			if tt.field != "" {
				if v := client.FieldViolations(err); v[tt.field] == "" {
					t.Errorf("field violations %v, want one for %q", v, tt.field)
				}
			}
		})
	}
	if got := ledger(t, ts, x); !slices.Equal(got, beforeX) {
		t.Errorf("refused calls changed %s's ledger:\n%q\nwas\n%q", x, got, beforeX)
	}
	if got := ledger(t, ts, y); !slices.Equal(got, beforeY) {
		t.Errorf("refused calls changed %s's ledger:\n%q\nwas\n%q", y, got, beforeY)
	}

	// Released once, then refused, and the second attempt writes nothing.
	if err := c.ReleaseReservation(ctx, x, res); err != nil {
		t.Fatalf("release: %v", err)
	}
	released := ledger(t, ts, x)
	if slices.Equal(released, beforeX) {
		t.Fatal("a release changed nothing in the ledger")
	}
	if err := c.ReleaseReservation(ctx, x, res); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("release twice: %v, want FailedPrecondition", err)
	}
	if got := ledger(t, ts, x); !slices.Equal(got, released) {
		t.Errorf("a refused second release changed the ledger:\n%q\nwas\n%q", got, released)
	}
	// The released reservation no longer counts: two of two fit again.
	for i := range 3 {
		v := checkSend(t, c, client.SendCheck{HCPID: x, ActionID: actEmail, PlannedAt: planned, Reserve: true, IdempotencyKey: fmt.Sprintf("x-again-%d", i)})
		if want := i < 2; v.Allowed != want {
			t.Errorf("reservation %d after the release: %s; want allowed=%v", i, describe(v), want)
		}
	}
}

// 9. A batch stream answers in order, books each key once, and carries on
// past a bad item.

const batchPolicy = `{"retention": "35d", "rules": [{"id": "hcp",
  "caps": [{"id": "email-20-7d", "channels": ["email"], "max": 20, "window": "7d"}]}]}`

// runBatch sends items on one stream while receiving, and returns the
// answers.
func runBatch(t *testing.T, c *client.Client, items []client.SendCheck) []client.SendBatchItem {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.CheckSendBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	sendErr := make(chan error, 1)
	go func() {
		for _, it := range items {
			if err := stream.Send(it); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	var out []client.SendBatchItem
	for {
		it, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d answers: %v", len(out), err)
		}
		out = append(out, it)
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("send: %v", err)
	}
	return out
}

func TestSendBatch(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-contact-policy", writeContactPolicy(t, batchPolicy))
	c := ts.client
	const recipients, perRecipient, capMax = 10, 30, 20
	var hcps []string
	for i := range recipients {
		hcps = append(hcps, newID(fmt.Sprintf("SEND-BATCH-%02d", i)))
		addRecipient(t, c, hcps[i], "Europe/London", arbiter.HCP)
	}
	planned := ms(time.Now().Add(time.Hour))
	var items []client.SendCheck
	for i := range recipients * perRecipient {
		items = append(items, client.SendCheck{HCPID: hcps[i%recipients], ActionID: actEmail, PlannedAt: planned, Reserve: true,
			IdempotencyKey: fmt.Sprintf("campaign-7-%d", i)})
	}
	// A bad and an unknown recipient in the middle of the stream.
	const badAt, unknownAt = 150, 151
	items = slices.Insert(items, badAt,
		client.SendCheck{HCPID: "BAD ID", ActionID: actEmail, PlannedAt: planned, Reserve: true, IdempotencyKey: "bad"},
		client.SendCheck{HCPID: "SEND-BATCH-NOBODY", ActionID: actEmail, PlannedAt: planned, Reserve: true, IdempotencyKey: "nobody"})

	check := func(t *testing.T, out []client.SendBatchItem) {
		t.Helper()
		if len(out) != len(items) {
			t.Fatalf("%d answers to %d items", len(out), len(items))
		}
		for i, it := range out {
			if it.Index != int64(i) || it.HCPID != items[i].HCPID || it.IdempotencyKey != items[i].IdempotencyKey {
				t.Fatalf("answer %d is for item %d (%s, %s), want %s, %s", i, it.Index, it.HCPID, it.IdempotencyKey, items[i].HCPID, items[i].IdempotencyKey)
			}
		}
		if code := status.Code(out[badAt].Err); code != codes.InvalidArgument || out[badAt].Verdict != nil {
			t.Errorf("bad hcp id item: %v, want an InvalidArgument item error", out[badAt].Err)
		}
		if code := status.Code(out[unknownAt].Err); code != codes.NotFound {
			t.Errorf("unknown hcp item: %v, want a NotFound item error", out[unknownAt].Err)
		}
	}

	first := runBatch(t, c, items)
	check(t, first)
	byKey := map[string]string{} // idempotency key -> reservation id
	grantedPer := map[string]int{}
	for i, it := range first {
		if i == badAt || i == unknownAt {
			continue
		}
		switch v := it.Verdict; {
		case it.Err != nil || v == nil:
			t.Errorf("item %d: %v", i, it.Err)
		case v.Allowed:
			if v.ReservationID == "" || v.ReservationExisting {
				t.Errorf("item %d allowed: %s, existing %v; want a new reservation", i, describe(v), v.ReservationExisting)
			}
			byKey[it.IdempotencyKey] = v.ReservationID
			grantedPer[it.HCPID]++
		case len(v.Blocks) != 1 || v.Blocks[0].Reason != client.SuppressionFrequencyCap:
			t.Errorf("item %d: %s; want granted or a FREQUENCY_CAP block", i, describe(v))
		}
	}
	for _, h := range hcps {
		if grantedPer[h] != capMax {
			t.Errorf("%s: %d of %d reservations granted, want the cap, %d", h, grantedPer[h], perRecipient, capMax)
		}
	}
	ledgers := map[string][]string{}
	for _, h := range hcps {
		ledgers[h] = ledger(t, ts, h)
	}

	// The same stream again: the same reservations, nothing new.
	second := runBatch(t, c, items)
	check(t, second)
	for i, it := range second {
		if i == badAt || i == unknownAt {
			continue
		}
		v := it.Verdict
		if v == nil {
			t.Errorf("item %d: %v", i, it.Err)
			continue
		}
		if id, ok := byKey[it.IdempotencyKey]; ok {
			if !v.Allowed || !v.ReservationExisting || v.ReservationID != id || v.ReservationState != "RESERVED" {
				t.Errorf("item %d again: %s (existing %v, state %q); want reservation %s, existing", i, describe(v), v.ReservationExisting, v.ReservationState, id)
			}
		} else if v.Allowed || len(v.Blocks) != 1 || v.Blocks[0].Reason != client.SuppressionFrequencyCap {
			t.Errorf("item %d was blocked, and again: %s; want the FREQUENCY_CAP block", i, describe(v))
		}
	}
	for _, h := range hcps {
		if got := ledger(t, ts, h); !slices.Equal(got, ledgers[h]) {
			t.Errorf("%s: the repeated stream changed the ledger (%d entries, were %d)", h, len(got), len(ledgers[h]))
		}
	}
}

// 10. With Redis down, every send call is Unavailable: nothing is allowed
// unchecked.

func TestSendRedisDownIsUnavailable(t *testing.T) {
	redistest.Require(t)
	rs, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Stop()
	ts := start(t, redistest.Backend{Name: "redis", Addrs: []string{rs.Addr}}, 1, "-contact-policy", writeContactPolicy(t, sharedCapPolicy))
	c := ts.client
	ctx := context.Background()
	hcp := newID("SEND-DOWN")
	addRecipient(t, c, hcp, "America/New_York", arbiter.HCP)
	planned := ms(time.Now().Add(time.Hour))
	v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: planned, Reserve: true})
	if !v.Allowed || v.ReservationID == "" {
		t.Fatalf("reserve with Redis up: %s", describe(v))
	}
	rs.Kill()

	for _, reserve := range []bool{false, true} {
		v, err := c.CheckSend(ctx, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: planned, Reserve: reserve})
		if status.Code(err) != codes.Unavailable || v != nil {
			t.Errorf("check send (reserve %v) with Redis down: %v, %v; want Unavailable", reserve, v, err)
		}
	}
	if err := c.ReleaseReservation(ctx, hcp, v.ReservationID); status.Code(err) != codes.Unavailable {
		t.Errorf("release with Redis down: %v, want Unavailable", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := c.CheckSendBatch(sctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if err := stream.Send(client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: planned}); err != nil {
		t.Fatal(err)
	}
	if it, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("batch with Redis down: %+v, %v; want the stream to end Unavailable", it, err)
	}
}

// A delivery reported before its send (webhooks arrive out of order): the
// reservation, the send and the delivery are still one touch.
func TestSendDeliveredBeforeSentCountsOnce(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-contact-policy", writeContactPolicy(t, sharedCapPolicy))
	c := ts.client
	hcp := newID("SEND-DELIVERED-FIRST")
	addRecipient(t, c, hcp, "America/New_York", arbiter.HCP)
	planned := ms(time.Now().Add(2 * time.Minute))
	v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: planned, Reserve: true, IdempotencyKey: "first"})
	if !v.Allowed || v.ReservationID == "" {
		t.Fatalf("reserve: %s", describe(v))
	}
	occurred := ms(time.Now().Add(4 * time.Minute)) // after planned: the catalog's email gap does not apply
	recordTouch(t, c, client.Event{ID: hcp + "-delivered", HCPID: hcp, Type: arbiter.EventDelivered, Channel: arbiter.Email,
		ActionID: actEmail, MessageID: "msg-1", OccurredAt: occurred})
	recordTouch(t, c, client.Event{ID: hcp + "-sent", HCPID: hcp, Type: arbiter.EventSent, Channel: arbiter.Email,
		ActionID: actEmail, MessageID: "msg-1", ReservationID: v.ReservationID, OccurredAt: occurred})
	if l := ledger(t, ts, hcp); len(l) != 2 {
		t.Errorf("the ledger holds %d touches for one message, want 1: %q", len(l)-1, l)
	}
	// One touch of two: exactly one more fits.
	for i := range 2 {
		v := checkSend(t, c, client.SendCheck{HCPID: hcp, ActionID: actEmail, PlannedAt: planned, Reserve: true, IdempotencyKey: fmt.Sprintf("more-%d", i)})
		if want := i == 0; v.Allowed != want {
			t.Errorf("reservation %d after the send: %s; want allowed=%v", i, describe(v), want)
		}
	}
}

// A CheckSendBatch stream on which no item arrives ends by itself, with
// DeadlineExceeded, after the idle timeout.
func TestSendBatchIdleTimeout(t *testing.T) {
	ts := start(t, embedded, 5, "-send-stream-idle", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := ts.client.CheckSendBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if _, err := stream.Recv(); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("an idle stream ended with %v, want DeadlineExceeded from the server's idle timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the test's own deadline ended the stream, not the server's idle timeout")
	}
}
