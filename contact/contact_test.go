package contact_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/contact"
)

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("zone %s: %v", name, err)
	}
	return loc
}

func utc(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

// parse calls contact.Parse and turns a panic into a failure message.
func parse(data []byte) (p *contact.Policy, err error, panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprint(r)
		}
	}()
	p, err = contact.Parse(data)
	return p, err, ""
}

func TestParseDemo(t *testing.T) {
	p, err, pn := parse(contact.DemoJSON())
	if pn != "" || err != nil {
		t.Fatalf("demo policy: err %v, panic %s", err, pn)
	}
	if p.Retention != 35*24*time.Hour || p.MaxTouches != 500 || p.ReservationTTL != 15*time.Minute {
		t.Errorf("demo policy: retention %s, max touches %d, reservation ttl %s", p.Retention, p.MaxTouches, p.ReservationTTL)
	}
	hcp := p.For("US", arbiter.HCP)
	if len(hcp.Caps) != 5 || len(hcp.Gaps) != 1 || len(hcp.Quiet) != 2 {
		t.Errorf("For(US, hcp): %d caps, %d gaps, %d quiet hours; want 5, 1, 2", len(hcp.Caps), len(hcp.Gaps), len(hcp.Quiet))
	}
	// The rule names no market: it applies in markets the policy does not name.
	if other := p.For("JP", arbiter.HCP); len(other.Caps) != 5 {
		t.Errorf("For(JP, hcp): %d caps, want 5", len(other.Caps))
	}
	// Patients have a rule of their own.
	if pat := p.For("US", arbiter.Patient); len(pat.Caps) != 2 || len(pat.Gaps) != 1 || len(pat.Quiet) != 1 || pat.Caps[0].ID != "patient-digital-per-day" {
		t.Errorf("For(US, patient) = %+v, want the patient rule's 2 caps, 1 gap, 1 quiet hours", pat)
	}
	for _, c := range hcp.Caps {
		switch c.ID {
		case "digital-per-day":
			if c.Period != contact.Day || c.Max != 2 || !c.Filter.Matches(arbiter.SMS, arbiter.Medical) || c.Filter.Matches(arbiter.RepVisit, arbiter.Medical) {
				t.Errorf("digital-per-day parsed as %+v", c)
			}
		case "promo-email-7d":
			if c.Period != contact.Rolling || c.Window != 7*24*time.Hour || c.Filter.Matches(arbiter.Email, arbiter.Medical) || !c.Filter.Matches(arbiter.Email, arbiter.Promotional) {
				t.Errorf("promo-email-7d parsed as %+v", c)
			}
		}
	}
	if n := len(p.Zones("US", "")); n != 4 {
		t.Errorf("Zones(US) has %d zones, want 4", n)
	}
	if z := p.Zones("US", "Europe/Berlin"); len(z) != 1 || z[0].String() != "Europe/Berlin" {
		t.Errorf("Zones(US, Europe/Berlin) = %v, want the recipient's own zone", z)
	}
	if z := p.Zones("EU", "Not/AZone"); len(z) != 3 {
		t.Errorf("Zones(EU, bad tz) = %v, want the market's 3 zones", z)
	}
	if z := p.Zones("ZZ", ""); z != nil {
		t.Errorf("Zones(ZZ) = %v, want nil", z)
	}
	var nilPolicy *contact.Policy
	if !nilPolicy.For("US", arbiter.HCP).Empty() || nilPolicy.Zones("US", "") != nil {
		t.Error("a nil policy limits something")
	}
}

func TestParseErrors(t *testing.T) {
	rule := func(body string) string {
		return `{"retention": "35d", "rules": [{"id": "r", ` + body + `}]}`
	}
	cases := []struct {
		name string
		json string
		want []string // each must appear in the error
	}{
		{"not json", `{"retention": `, []string{"parse"}},
		{"unknown top-level field", `{"retention": "35d", "colour": "red"}`, []string{"colour"}},
		{"unknown cap field", rule(`"caps": [{"id": "c", "max": 2, "window": "7d", "maximum": 3}]`), []string{"maximum"}},
		{"wrong type", rule(`"caps": [{"id": "c", "max": "2", "window": "7d"}]`), []string{"max"}},
		{"no retention", `{"rules": []}`, []string{"retention"}},
		{"negative retention", `{"retention": "-1h"}`, []string{"retention"}},
		{"max_touches too small", `{"retention": "35d", "max_touches": 5}`, []string{"max_touches", "5"}},
		{"max_touches too large", `{"retention": "35d", "max_touches": 5001}`, []string{"max_touches", "5001"}},
		{"reservation_ttl zero", `{"retention": "35d", "reservation_ttl": "0s"}`, []string{"reservation_ttl"}},
		{"reservation_ttl too long", `{"retention": "35d", "reservation_ttl": "8d"}`, []string{"reservation_ttl"}},
		{"bad zone", `{"retention": "35d", "markets": {"US": {"zones": ["America/New_York", "America/Nowhere"]}}}`,
			[]string{"markets.US.zones[1]", "America/Nowhere"}},
		{"market without zones", `{"retention": "35d", "markets": {"US": {"zones": []}}}`, []string{"markets.US.zones"}},
		{"window longer than retention", `{"retention": "7d", "rules": [{"id": "r", "caps": [{"id": "c", "max": 2, "window": "8d"}]}]}`,
			[]string{"rules[0].caps[0]", "retention"}},
		{"week longer than retention", `{"retention": "7d", "rules": [{"id": "r", "caps": [{"id": "c", "max": 2, "per": "week"}]}]}`,
			[]string{"rules[0].caps[0]", "retention"}},
		{"unknown channel", rule(`"caps": [{"id": "c", "channels": ["email", "fax"], "max": 2, "window": "7d"}]`),
			[]string{"rules[0].caps[0].channels[1]", "fax"}},
		{"unknown purpose", rule(`"gaps": [{"id": "g", "purposes": ["gossip"], "min": "1h"}]`),
			[]string{"rules[0].gaps[0].purposes[0]", "gossip"}},
		{"unknown quiet channel", rule(`"quiet_hours": [{"id": "q", "channels": ["pigeon"], "from": "20:00", "to": "08:00"}]`),
			[]string{"rules[0].quiet_hours[0].channels[0]", "pigeon"}},
		{"max zero", rule(`"caps": [{"id": "c", "max": 0, "window": "7d"}]`), []string{"rules[0].caps[0].max"}},
		{"max too large", rule(`"caps": [{"id": "c", "max": 1001, "window": "7d"}]`), []string{"rules[0].caps[0].max"}},
		{"window and per", rule(`"caps": [{"id": "c", "max": 1, "window": "7d", "per": "day"}]`), []string{"rules[0].caps[0]", "not both"}},
		{"neither window nor per", rule(`"caps": [{"id": "c", "max": 1}]`), []string{"rules[0].caps[0]"}},
		{"unknown per", rule(`"caps": [{"id": "c", "max": 1, "per": "month"}]`), []string{"rules[0].caps[0]"}},
		{"window too short", rule(`"caps": [{"id": "c", "max": 1, "window": "30s"}]`), []string{"rules[0].caps[0].window"}},
		{"gap too short", rule(`"gaps": [{"id": "g", "min": "59s"}]`), []string{"rules[0].gaps[0].min"}},
		{"gap longer than retention", rule(`"gaps": [{"id": "g", "min": "36d"}]`), []string{"rules[0].gaps[0].min", "retention"}},
		{"empty rule", rule(`"markets": ["US"]`), []string{"rules[0]", "caps, gaps or quiet_hours"}},
		{"empty id", rule(`"gaps": [{"id": "", "min": "1h"}]`), []string{"rules[0].gaps[0].id"}},
		{"id with space", rule(`"gaps": [{"id": "a b", "min": "1h"}]`), []string{"rules[0].gaps[0].id"}},
		{"duplicate id", rule(`"caps": [{"id": "x", "max": 1, "window": "1d"}], "gaps": [{"id": "x", "min": "1h"}]`),
			[]string{"rules[0].gaps[0].id", "used twice"}},
		{"unknown audience", rule(`"audiences": ["vet"], "gaps": [{"id": "g", "min": "1h"}]`), []string{"rules[0].audiences[0]", "vet"}},
		{"empty market", rule(`"markets": [""], "gaps": [{"id": "g", "min": "1h"}]`), []string{"rules[0].markets"}},
		{"bad clock", rule(`"quiet_hours": [{"id": "q", "from": "25:00", "to": "08:00"}]`), []string{"rules[0].quiet_hours[0]", "HH:MM"}},
		{"24:30", rule(`"quiet_hours": [{"id": "q", "from": "24:30", "to": "08:00"}]`), []string{"rules[0].quiet_hours[0]"}},
		{"quiet limiting nothing", rule(`"quiet_hours": [{"id": "q", "from": "08:00", "to": "08:00"}]`),
			[]string{"rules[0].quiet_hours[0]", "limits nothing"}},
		{"weekdays all invalid", rule(`"quiet_hours": [{"id": "q", "from": "20:00", "to": "08:00", "weekdays": ["funday", "Mon"]}]`),
			[]string{"rules[0].quiet_hours[0].weekdays[0]", "funday", "rules[0].quiet_hours[0].weekdays[1]", "rules[0].quiet_hours[0].weekdays:"}},
		{"second rule", `{"retention": "35d", "rules": [{"id": "a", "gaps": [{"id": "g", "min": "1h"}]}, {"id": "b", "caps": [{"id": "c", "max": 0, "per": "day"}]}]}`,
			[]string{"rules[1].caps[0].max"}},
		{"every problem reported", `{"retention": "35d", "max_touches": 1, "rules": [{"id": "r", "caps": [{"id": "c", "channels": ["fax"], "max": 0, "per": "day"}]}]}`,
			[]string{"max_touches", "rules[0].caps[0].channels[0]", "rules[0].caps[0].max"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err, pn := parse([]byte(tc.json))
			if pn != "" {
				t.Fatalf("Parse panicked: %s", pn)
			}
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", p)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with the error %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, js := range []string{
		`{"retention": "1h"}`,
		`{"retention": "35d", "rules": [{"id": "r", "quiet_hours": [{"id": "q", "from": "20:00", "to": "24:00"}]}]}`,
		// From == To with weekdays: only the weekdays limit.
		`{"retention": "35d", "rules": [{"id": "r", "quiet_hours": [{"id": "q", "from": "00:00", "to": "00:00", "weekdays": ["mon", "tue"]}]}]}`,
		`{"retention": "8d", "max_touches": 10, "reservation_ttl": "1s", "rules": [{"id": "r", "caps": [{"id": "c", "max": 1000, "per": "week"}]}]}`,
	} {
		if _, err, pn := parse([]byte(js)); err != nil || pn != "" {
			t.Errorf("Parse(%s): err %v, panic %s", js, err, pn)
		}
	}
}

var email = contact.Send{Channel: arbiter.Email, Purpose: arbiter.Promotional}

func TestQuietHoursOneZone(t *testing.T) {
	la := zone(t, "America/Los_Angeles")
	r := &contact.Rules{Quiet: []contact.Quiet{{ID: "nights", Channels: 1 << arbiter.Email, From: 20 * 60, To: 8 * 60, Days: 0x7f}}}
	zones := []*time.Location{la}
	at := func(y int, m time.Month, d, h, min, s int) time.Time { return time.Date(y, m, d, h, min, s, 0, la) }
	cases := []struct {
		name   string
		at     time.Time
		clears time.Time // zero: allowed
	}{
		{"22:30 summer", at(2026, 6, 10, 22, 30, 0), utc(2026, 6, 11, 15, 0)},
		{"20:00 exactly", at(2026, 6, 10, 20, 0, 0), utc(2026, 6, 11, 15, 0)},
		{"19:59:59", at(2026, 6, 10, 19, 59, 59), time.Time{}},
		{"07:59:59.999", at(2026, 6, 11, 7, 59, 59).Add(999 * time.Millisecond), utc(2026, 6, 11, 15, 0)},
		{"08:00 exactly", at(2026, 6, 11, 8, 0, 0), time.Time{}},
		{"00:00", at(2026, 6, 11, 0, 0, 0), utc(2026, 6, 11, 15, 0)},
		// 2026-11-01: 02:00 PDT falls back to 01:00 PST; 08:00 PST is 16:00 UTC.
		{"eve of fall back", at(2026, 10, 31, 22, 30, 0), utc(2026, 11, 1, 16, 0)},
		{"01:30 PDT", utc(2026, 11, 1, 8, 30), utc(2026, 11, 1, 16, 0)},
		{"01:30 PST", utc(2026, 11, 1, 9, 30), utc(2026, 11, 1, 16, 0)},
		{"08:00 PST", utc(2026, 11, 1, 16, 0), time.Time{}},
		{"07:59 PST", utc(2026, 11, 1, 15, 59), utc(2026, 11, 1, 16, 0)},
		// 2026-03-08: 02:00 PST springs forward to 03:00 PDT; 08:00 PDT is 15:00 UTC.
		{"eve of spring forward", at(2026, 3, 7, 22, 30, 0), utc(2026, 3, 8, 15, 0)},
		{"03:30 PDT", utc(2026, 3, 8, 10, 30), utc(2026, 3, 8, 15, 0)},
		{"08:00 PDT", utc(2026, 3, 8, 15, 0), time.Time{}},
		{"07:00 PST the day before", utc(2026, 3, 7, 15, 0), utc(2026, 3, 7, 16, 0)},
	}
	for _, tc := range cases {
		var v contact.Verdict
		blocked := r.CheckQuiet(email, tc.at, zones, &v)
		if blocked != !tc.clears.IsZero() {
			t.Errorf("%s (%s): blocked %v, want %v", tc.name, tc.at.In(la), blocked, !tc.clears.IsZero())
			continue
		}
		if !blocked {
			continue
		}
		if !v.ClearsAt.Equal(tc.clears) || v.Kind != contact.KindQuiet || v.RuleID != "nights" || v.Zone != la {
			t.Errorf("%s (%s): verdict %+v, want clears at %s (%s)", tc.name, tc.at.In(la), v, tc.clears, tc.clears.In(la))
		}
		if h, m, _ := v.ClearsAt.In(la).Clock(); h != 8 || m != 0 {
			t.Errorf("%s: clears at %s local, not 08:00", tc.name, v.ClearsAt.In(la))
		}
		if r.CheckQuiet(email, v.ClearsAt, zones, &contact.Verdict{}) {
			t.Errorf("%s: still quiet at its ClearsAt %s", tc.name, v.ClearsAt.In(la))
		}
		// Other channels are not quiet.
		if r.CheckQuiet(contact.Send{Channel: arbiter.SMS, Purpose: arbiter.Promotional}, tc.at, zones, &v) {
			t.Errorf("%s: sms blocked by an email-only quiet rule", tc.name)
		}
	}
}

// Quiet hours whose end falls in a local hour a clock change skips or
// repeats: the block must not be said to last past the first instant it
// lifts.
func TestQuietHoursClockChanges(t *testing.T) {
	cases := []struct {
		zone     string
		from, to int
		at       time.Time
		clears   time.Time
	}{
		// 01:45 PDT; at 02:00 PDT the clock falls back to 01:00 PST,
		// before the quiet hours' 01:30.
		{"America/Los_Angeles", 90, 360, utc(2026, 11, 1, 8, 45), utc(2026, 11, 1, 9, 0)},
		// 01:12 +1030; at 02:00 the clock springs to 02:30 +11, past 02:15.
		{"Australia/Lord_Howe", 22 * 60, 135, utc(2026, 10, 3, 14, 42), utc(2026, 10, 3, 15, 30)},
		// 02:37 CEST: quiet until 02:55 CEST, not 02:55 CET an hour later.
		{"Europe/Berlin", 0, 175, utc(2026, 10, 25, 0, 37), utc(2026, 10, 25, 0, 55)},
		// 01:10 PST; 02:30 does not exist on 2026-03-08, so the quiet
		// hours end when the clock springs to 03:00 PDT.
		{"America/Los_Angeles", 60, 150, utc(2026, 3, 8, 9, 10), utc(2026, 3, 8, 10, 0)},
	}
	for _, tc := range cases {
		loc := zone(t, tc.zone)
		r := &contact.Rules{Quiet: []contact.Quiet{{ID: "q", From: tc.from, To: tc.to, Days: 0x7f}}}
		var v contact.Verdict
		if !r.CheckQuiet(email, tc.at, []*time.Location{loc}, &v) || !v.ClearsAt.Equal(tc.clears) {
			t.Errorf("%s, quiet %02d:%02d-%02d:%02d, at %s: clears at %s, want %s", tc.zone, tc.from/60, tc.from%60, tc.to/60, tc.to%60,
				tc.at.In(loc), v.ClearsAt.In(loc), tc.clears.In(loc))
		}
		if r.CheckQuiet(email, tc.clears, []*time.Location{loc}, &v) {
			t.Errorf("%s: still quiet at %s", tc.zone, tc.clears.In(loc))
		}
	}
}

func TestQuietHoursMarketZones(t *testing.T) {
	p, err := contact.Parse(contact.DemoJSON())
	if err != nil {
		t.Fatal(err)
	}
	r := p.For("US", arbiter.HCP)
	us := p.Zones("US", "")
	ny := p.Zones("US", "America/New_York")
	visit := contact.Send{Channel: arbiter.RepVisit, Purpose: arbiter.Medical}
	cases := []struct {
		name   string
		send   contact.Send
		zones  []*time.Location
		at     time.Time
		clears time.Time // zero: allowed
	}{
		// 10:30 in New York, 07:30 in Los Angeles: quiet there until 08:00 PDT.
		{"morning east", email, us, utc(2026, 6, 10, 14, 30), utc(2026, 6, 10, 15, 0)},
		{"morning east, recipient in NY", email, ny, utc(2026, 6, 10, 14, 30), time.Time{}},
		{"noon east", email, us, utc(2026, 6, 10, 17, 0), time.Time{}},
		// 20:30 in New York, 17:30 in Los Angeles: quiet from there until
		// 08:00 in Los Angeles, the last zone to wake.
		{"evening east", email, us, utc(2026, 6, 11, 0, 30), utc(2026, 6, 11, 15, 0)},
		{"evening east, recipient in NY", email, ny, utc(2026, 6, 11, 0, 30), utc(2026, 6, 11, 12, 0)},
		// Saturday 2026-06-13, noon in every US zone: no visits until Monday
		// 08:00 in Los Angeles.
		{"saturday visit", visit, us, utc(2026, 6, 13, 18, 0), utc(2026, 6, 15, 15, 0)},
		{"monday visit", visit, us, utc(2026, 6, 15, 18, 0), time.Time{}},
		{"monday visit, 07:30 in LA", visit, us, utc(2026, 6, 15, 14, 30), utc(2026, 6, 15, 15, 0)},
	}
	for _, tc := range cases {
		var v contact.Verdict
		blocked := r.CheckQuiet(tc.send, tc.at, tc.zones, &v)
		if blocked != !tc.clears.IsZero() {
			t.Errorf("%s: blocked %v, want %v", tc.name, blocked, !tc.clears.IsZero())
			continue
		}
		if blocked && !v.ClearsAt.Equal(tc.clears) {
			t.Errorf("%s: clears at %s, want %s", tc.name, v.ClearsAt, tc.clears)
		}
		if blocked && len(tc.zones) > 1 && v.Zone != nil {
			t.Errorf("%s: verdict names one zone (%s) for a market of several", tc.name, v.Zone)
		}
	}
}

func TestQuietHoursUnknownZone(t *testing.T) {
	p, err := contact.Parse(contact.DemoJSON())
	if err != nil {
		t.Fatal(err)
	}
	zones := p.Zones("ZZ", "Not/AZone")
	if zones != nil {
		t.Fatalf("Zones(ZZ, Not/AZone) = %v, want none", zones)
	}
	r := &contact.Rules{Quiet: []contact.Quiet{{ID: "nights", From: 20 * 60, To: 8 * 60, Days: 0x7f}}}
	start := utc(2026, 3, 7, 0, 0)
	for d := time.Duration(0); d < 26*time.Hour; d += 11*time.Minute + 13*time.Second {
		var v contact.Verdict
		at := start.Add(d)
		if !r.CheckQuiet(email, at, zones, &v) {
			t.Fatalf("unknown zone, 12h of quiet hours: allowed at %s", at)
		}
		// Quiet somewhere on earth at every instant: it never clears.
		if !v.ClearsAt.IsZero() {
			t.Fatalf("unknown zone: at %s ClearsAt %s, but no time is allowed", at, v.ClearsAt)
		}
	}
	// Without quiet hours nothing is quiet, known zone or not.
	if (&contact.Rules{Caps: []contact.Cap{{ID: "c", Max: 1, Window: time.Hour}}}).CheckQuiet(email, start, nil, &contact.Verdict{}) {
		t.Error("no quiet rules, yet quiet")
	}
}

func TestCalendarDayCap(t *testing.T) {
	la := zone(t, "America/Los_Angeles")
	dayCap := contact.Cap{ID: "email-day", Filter: contact.Filter{Channels: 1 << arbiter.Email}, Max: 1, Period: contact.Day, Window: 25 * time.Hour}
	r := &contact.Rules{Caps: []contact.Cap{dayCap}}
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, la) }
	sent := func(ts ...time.Time) *contact.Ledger {
		l := &contact.Ledger{}
		for _, x := range ts {
			l.Touches = append(l.Touches, contact.Touch{At: x, Channel: arbiter.Email, Purpose: arbiter.Promotional, State: contact.Sent})
		}
		return l
	}
	zones := []*time.Location{la}
	// 23:30 PDT on the 10th is 06:30 UTC on the 11th.
	late := sent(at(2026, 6, 10, 23, 30))
	now := at(2026, 6, 10, 23, 31)
	check := func(name string, l *contact.Ledger, t0 time.Time, zones []*time.Location, want bool, clears time.Time) {
		t.Helper()
		var v contact.Verdict
		got := r.CheckCaps(email, t0, now, l, zones, &v)
		if got != want {
			t.Errorf("%s: blocked %v, want %v", name, got, want)
			return
		}
		if got && (!v.ClearsAt.Equal(clears) || v.Count != 1 || v.Max != 1 || v.Period != contact.Day || v.Truncated) {
			t.Errorf("%s: verdict %+v, want 1 touch counted, clearing at %s", name, v, clears)
		}
		full := false
		for _, lim := range r.Limits(email, t0, zones, nil) {
			full = full || lim.Full(l, now)
		}
		if full != want {
			t.Errorf("%s: Limits full %v, CheckCaps %v", name, full, want)
		}
	}
	check("same local day", late, at(2026, 6, 10, 23, 50), zones, true, utc(2026, 6, 11, 7, 0))
	check("next local day", late, at(2026, 6, 11, 0, 30), zones, false, time.Time{})
	check("next local day, a touch after midnight", sent(at(2026, 6, 10, 23, 30), at(2026, 6, 11, 0, 10)), at(2026, 6, 11, 0, 30), zones, true, utc(2026, 6, 12, 7, 0))
	check("next local day, counted in UTC", late, at(2026, 6, 11, 0, 30), []*time.Location{time.UTC}, true, utc(2026, 6, 12, 0, 0))
	// A market of several zones: in New York both are on the 11th, which
	// ends at 04:00 UTC on the 12th.
	us := []*time.Location{zone(t, "America/New_York"), la}
	check("next day in LA, same day in NY", late, at(2026, 6, 11, 0, 30), us, true, utc(2026, 6, 12, 4, 0))
	// 2026-11-01 is 25 hours long in Los Angeles.
	check("long local day", sent(at(2026, 11, 1, 0, 30)), utc(2026, 11, 2, 7, 30), zones, true, utc(2026, 11, 2, 8, 0))
	check("after the long local day", sent(at(2026, 11, 1, 0, 30)), utc(2026, 11, 2, 8, 0), zones, false, time.Time{})
	// Other channels are not counted.
	other := &contact.Ledger{Touches: []contact.Touch{{At: at(2026, 6, 10, 12, 0), Channel: arbiter.SMS, State: contact.Sent}}}
	check("sms touch", other, at(2026, 6, 10, 23, 50), zones, false, time.Time{})

	// Weeks run from Monday: 2026-06-14 is a Sunday.
	weekCap := dayCap
	weekCap.ID, weekCap.Period, weekCap.Window = "email-week", contact.Week, 169*time.Hour
	r = &contact.Rules{Caps: []contact.Cap{weekCap}}
	sunday := sent(at(2026, 6, 14, 23, 30))
	now = at(2026, 6, 14, 23, 31)
	var v contact.Verdict
	if !r.CheckCaps(email, at(2026, 6, 8, 0, 0), now, sunday, zones, &v) || !v.ClearsAt.Equal(utc(2026, 6, 15, 7, 0)) || v.Period != contact.Week {
		t.Errorf("monday 00:00 of the same week: %+v", v)
	}
	if r.CheckCaps(email, at(2026, 6, 15, 0, 0), now, sunday, zones, &v) {
		t.Errorf("monday after a sunday touch: blocked %+v", v)
	}
	if r.CheckCaps(email, at(2026, 6, 7, 23, 59), now, sunday, zones, &v) {
		t.Errorf("the sunday before: blocked %+v", v)
	}
}

func TestCriticalExempt(t *testing.T) {
	p, err := contact.Parse(contact.DemoJSON())
	if err != nil {
		t.Fatal(err)
	}
	r := p.For("US", arbiter.HCP)
	zones := p.Zones("US", "")
	t0 := utc(2026, 6, 11, 4, 0) // night in every US zone
	l := &contact.Ledger{Horizon: t0.Add(-time.Minute)}
	for i := range 20 {
		l.Touches = append(l.Touches, contact.Touch{At: t0.Add(-time.Duration(i) * time.Minute), Channel: arbiter.Email, Purpose: arbiter.Service, State: contact.Sent})
	}
	for _, s := range []contact.Send{
		{Channel: arbiter.Email, Purpose: arbiter.Service},
		{Channel: arbiter.RepVisit, Purpose: arbiter.Promotional},
	} {
		var v contact.Verdict
		// Not critical: every part blocks, so the exemption below means something.
		if !r.CheckCaps(s, t0, t0, l, zones, &v) || !r.CheckGaps(s, t0, t0, l, &v) || !r.CheckQuiet(s, t0, zones, &v) {
			t.Fatalf("%v: a non-critical send is not blocked by caps, gaps and quiet hours", s)
		}
		if len(r.Limits(s, t0, zones, nil)) == 0 {
			t.Fatalf("%v: no limits for a non-critical send", s)
		}
		s.Critical = true
		if r.CheckCaps(s, t0, t0, l, zones, &v) || r.CheckGaps(s, t0, t0, l, &v) || r.CheckQuiet(s, t0, zones, &v) {
			t.Errorf("%v: a critical send is blocked: %+v", s, v)
		}
		buf := make([]contact.Limit, 1, 4)
		if got := r.Limits(s, t0, zones, buf); len(got) != 1 {
			t.Errorf("%v: a critical send has limits %+v", s, got[1:])
		}
	}
}

func TestTruncatedLedger(t *testing.T) {
	t0 := utc(2026, 6, 10, 12, 0)
	rolling := &contact.Rules{Caps: []contact.Cap{{ID: "day", Max: 3, Window: 24 * time.Hour}}}
	cases := []struct {
		name    string
		horizon time.Time
		blocked bool
	}{
		{"horizon inside the window", t0.Add(-2 * time.Hour), true},
		{"horizon 1ms inside the window", t0.Add(-24*time.Hour + time.Millisecond), true},
		{"horizon at the open end of the window", t0.Add(-24 * time.Hour), false},
		{"horizon before the window", t0.Add(-48 * time.Hour), false},
		{"horizon after the send", t0.Add(time.Hour), true},
	}
	for _, tc := range cases {
		l := &contact.Ledger{Horizon: tc.horizon}
		var v contact.Verdict
		got := rolling.CheckCaps(email, t0, t0, l, nil, &v)
		if got != tc.blocked {
			t.Errorf("%s: blocked %v, want %v", tc.name, got, tc.blocked)
			continue
		}
		lims := rolling.Limits(email, t0, nil, nil)
		if len(lims) != 1 || lims[0].Full(l, t0) != tc.blocked {
			t.Errorf("%s: limits %+v full disagree with blocked %v", tc.name, lims, tc.blocked)
		}
		if !got {
			continue
		}
		if !v.Truncated || v.Count != 0 || v.RuleID != "day" || !v.ClearsAt.Equal(tc.horizon.Add(24*time.Hour)) {
			t.Errorf("%s: verdict %+v, want truncated, clearing at horizon + window %s", tc.name, v, tc.horizon.Add(24*time.Hour))
		}
	}

	// Touches over the cap and a horizon: the horizon decides when it clears.
	l := &contact.Ledger{Horizon: t0.Add(-time.Hour)}
	for i := range 5 {
		l.Touches = append(l.Touches, contact.Touch{At: t0.Add(-time.Duration(10+i) * time.Hour), Channel: arbiter.Email, State: contact.Sent})
	}
	var v contact.Verdict
	if !rolling.CheckCaps(email, t0, t0, l, nil, &v) || !v.Truncated || !v.ClearsAt.Equal(t0.Add(23*time.Hour)) {
		t.Errorf("over the cap and truncated: %+v", v)
	}

	// A calendar day reaching the horizon clears at the next local midnight.
	la := zone(t, "America/Los_Angeles")
	day := &contact.Rules{Caps: []contact.Cap{{ID: "d", Max: 3, Period: contact.Day, Window: 25 * time.Hour}}}
	send := time.Date(2026, 6, 10, 15, 0, 0, 0, la)
	for _, tc := range []struct {
		horizon time.Time
		blocked bool
	}{
		{time.Date(2026, 6, 10, 0, 0, 0, 0, la), true},
		{time.Date(2026, 6, 9, 23, 59, 59, 999e6, la), false},
	} {
		v = contact.Verdict{}
		got := day.CheckCaps(email, send, send, &contact.Ledger{Horizon: tc.horizon}, []*time.Location{la}, &v)
		if got != tc.blocked || got && (!v.Truncated || !v.ClearsAt.Equal(utc(2026, 6, 11, 7, 0))) {
			t.Errorf("day cap, horizon %s: blocked %v, verdict %+v", tc.horizon, got, v)
		}
	}

	// A gap reaching the horizon.
	gap := &contact.Rules{Gaps: []contact.Gap{{ID: "g", Min: 4 * time.Hour}}}
	h := t0.Add(-time.Hour)
	v = contact.Verdict{}
	if !gap.CheckGaps(email, t0, t0, &contact.Ledger{Horizon: h}, &v) || !v.Truncated || !v.ClearsAt.Equal(h.Add(4*time.Hour)) || v.Min != 4*time.Hour {
		t.Errorf("gap, truncated: %+v", v)
	}
	if gap.CheckGaps(email, t0, t0, &contact.Ledger{Horizon: t0.Add(-4 * time.Hour)}, &v) {
		t.Error("gap: blocked by a horizon at the open end of its window")
	}
}

func TestTouchCounts(t *testing.T) {
	now := utc(2026, 6, 10, 12, 0)
	for _, tc := range []struct {
		u    contact.Touch
		want bool
	}{
		{contact.Touch{State: contact.Sent}, true},
		{contact.Touch{State: contact.Reserved, ExpiresAt: now.Add(time.Millisecond)}, true},
		{contact.Touch{State: contact.Reserved, ExpiresAt: now}, false},
		{contact.Touch{State: contact.Released, ExpiresAt: now.Add(time.Hour)}, false},
	} {
		if got := tc.u.Counts(now); got != tc.want {
			t.Errorf("%+v counts %v, want %v", tc.u, got, tc.want)
		}
	}
}

// ---- The property tests ----

const propSeed = 20260610

var (
	propChannels = []arbiter.Channel{arbiter.Email, arbiter.SMS, arbiter.RepVisit}
	propPurposes = []arbiter.Purpose{arbiter.Promotional, arbiter.Medical, arbiter.Service}
	propZones    = []string{"America/Los_Angeles", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "America/New_York"}
	// Around clock changes of 2026 (and a quiet June day).
	propAnchors = []time.Time{
		utc(2026, 3, 8, 10, 0),   // US spring forward
		utc(2026, 3, 29, 1, 0),   // EU spring forward
		utc(2026, 4, 4, 15, 0),   // Lord Howe falls back 30 minutes
		utc(2026, 10, 3, 15, 30), // Lord Howe springs forward 30 minutes
		utc(2026, 10, 25, 1, 0),  // EU fall back
		utc(2026, 11, 1, 9, 0),   // US fall back
		utc(2026, 6, 15, 12, 0),
	}
	// naiveFallback: a recipient of no known zone lives at every offset
	// from -12:00 to +14:00, by quarter hours (+5:30, +5:45 exist).
	naiveFallback = func() []*time.Location {
		var out []*time.Location
		for q := -48; q <= 56; q++ {
			out = append(out, time.FixedZone("", q*15*60))
		}
		return out
	}()
)

func randMs(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64((hi-lo)/time.Millisecond)+1))*time.Millisecond
}

func randZones(t testing.TB, r *rand.Rand) []*time.Location {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []*time.Location{zone(t, propZones[r.IntN(len(propZones))])}
	default:
		var zs []*time.Location
		for _, i := range r.Perm(len(propZones))[:1+r.IntN(len(propZones))] {
			zs = append(zs, zone(t, propZones[i]))
		}
		return zs
	}
}

func zoneNames(zs []*time.Location) string {
	if zs == nil {
		return "none (every whole-hour offset)"
	}
	var s []string
	for _, z := range zs {
		s = append(s, z.String())
	}
	return strings.Join(s, ",")
}

func randFilter(r *rand.Rand) contact.Filter {
	var f contact.Filter
	if r.IntN(3) > 0 {
		for _, ch := range propChannels {
			if r.IntN(2) == 0 {
				f.Channels |= 1 << ch
			}
		}
	}
	if r.IntN(2) == 0 {
		for _, pu := range propPurposes {
			if r.IntN(2) == 0 {
				f.Purposes |= 1 << pu
			}
		}
	}
	return f
}

func randSpan(r *rand.Rand) time.Duration {
	switch r.IntN(4) {
	case 0:
		return time.Duration(1+r.IntN(120)) * time.Minute
	case 1:
		return time.Duration(1+r.IntN(48)) * time.Hour
	case 2:
		return time.Duration(1+r.IntN(10)) * 24 * time.Hour
	default:
		return randMs(r, time.Minute, 10*24*time.Hour)
	}
}

func naiveMatches(f contact.Filter, ch arbiter.Channel, pu arbiter.Purpose) bool {
	return (f.Channels == 0 || f.Channels>>ch&1 == 1) && (f.Purposes == 0 || f.Purposes>>pu&1 == 1)
}

func naiveCounts(u *contact.Touch, now time.Time) bool {
	switch u.State {
	case contact.Sent:
		return true
	case contact.Reserved:
		return u.ExpiresAt.After(now)
	}
	return false
}

func sameLocalDay(a, b time.Time, z *time.Location) bool {
	y1, m1, d1 := a.In(z).Date()
	y2, m2, d2 := b.In(z).Date()
	return y1 == y2 && m1 == m2 && d1 == d2
}

// sameLocalWeek: ISO weeks run from Monday, as the policy's do.
func sameLocalWeek(a, b time.Time, z *time.Location) bool {
	y1, w1 := a.In(z).ISOWeek()
	y2, w2 := b.In(z).ISOWeek()
	return y1 == y2 && w1 == w2
}

// capCase is one random check of caps and gaps.
type capCase struct {
	rules  contact.Rules
	zones  []*time.Location
	ledger contact.Ledger
	now, t time.Time
	send   contact.Send
}

func (c capCase) clone() capCase {
	c.rules.Caps = slices.Clone(c.rules.Caps)
	c.rules.Gaps = slices.Clone(c.rules.Gaps)
	c.ledger.Touches = slices.Clone(c.ledger.Touches)
	return c
}

func (c *capCase) String() string {
	rel := func(x time.Time) string {
		if d := x.Sub(c.t); d >= 0 {
			return "t+" + d.String()
		} else {
			return "t" + d.String()
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  t=%s now=%s send=%s/%s zones=%s\n", c.t.UTC().Format(time.RFC3339Nano), rel(c.now), c.send.Channel, c.send.Purpose, zoneNames(c.zones))
	for _, k := range c.rules.Caps {
		fmt.Fprintf(&b, "  cap %s: max %d period %d window %s filter %+v\n", k.ID, k.Max, k.Period, k.Window, k.Filter)
	}
	for _, g := range c.rules.Gaps {
		fmt.Fprintf(&b, "  gap %s: min %s filter %+v\n", g.ID, g.Min, g.Filter)
	}
	if !c.ledger.Horizon.IsZero() {
		fmt.Fprintf(&b, "  horizon %s\n", rel(c.ledger.Horizon))
	}
	for _, u := range c.ledger.Touches {
		fmt.Fprintf(&b, "  touch %s %s/%s state %d expires %s\n", rel(u.At), u.Channel, u.Purpose, u.State, rel(u.ExpiresAt))
	}
	return b.String()
}

func genCapCase(t testing.TB, r *rand.Rand) capCase {
	var c capCase
	anchor := propAnchors[r.IntN(len(propAnchors))]
	c.now = anchor.Add(randMs(r, -72*time.Hour, 72*time.Hour))
	c.t = c.now.Add(randMs(r, -48*time.Hour, 48*time.Hour))
	if r.IntN(4) == 0 {
		c.t = c.now.Add(randMs(r, -10*24*time.Hour, 10*24*time.Hour))
	}
	c.zones = randZones(t, r)
	c.send = contact.Send{Channel: append(propChannels, arbiter.Push)[r.IntN(len(propChannels)+1)], Purpose: propPurposes[r.IntN(len(propPurposes))]}
	c.send.Critical = r.IntN(20) == 0
	var spans []time.Duration
	for i := range r.IntN(5) {
		k := contact.Cap{ID: fmt.Sprintf("cap%d", i), Filter: randFilter(r), Max: 1 + r.IntN(4)}
		switch r.IntN(4) {
		case 0:
			k.Period, k.Window = contact.Day, 25*time.Hour
		case 1:
			k.Period, k.Window = contact.Week, 169*time.Hour
		default:
			k.Window = randSpan(r)
			spans = append(spans, k.Window)
		}
		c.rules.Caps = append(c.rules.Caps, k)
	}
	for i := range r.IntN(4) {
		g := contact.Gap{ID: fmt.Sprintf("gap%d", i), Filter: randFilter(r), Min: randSpan(r)}
		spans = append(spans, g.Min)
		c.rules.Gaps = append(c.rules.Gaps, g)
	}
	// A time near t, often right at the edge of some window: a rolling
	// one, or a local day or week.
	near := func() time.Time {
		if r.IntN(5) == 0 {
			zs := c.zones
			if zs == nil {
				zs = naiveFallback
			}
			y, m, d := c.t.In(zs[r.IntN(len(zs))]).Date()
			midnight := time.Date(y, m, d+r.IntN(9)-7, 0, 0, 0, 0, zs[r.IntN(len(zs))])
			return midnight.Add(time.Duration(r.IntN(3)-1) * time.Millisecond)
		}
		if len(spans) > 0 && r.IntN(3) == 0 {
			d := spans[r.IntN(len(spans))]
			if r.IntN(2) == 0 {
				d = -d
			}
			return c.t.Add(d + time.Duration(r.IntN(3)-1)*time.Millisecond)
		}
		return c.t.Add(randMs(r, -36*time.Hour, 36*time.Hour))
	}
	for range r.IntN(25) {
		u := contact.Touch{
			Channel: propChannels[r.IntN(len(propChannels))],
			Purpose: propPurposes[r.IntN(len(propPurposes))],
			State:   contact.TouchState(1 + r.IntN(3)),
		}
		if r.IntN(3) == 0 {
			u.At = c.now.Add(randMs(r, -20*24*time.Hour, 20*24*time.Hour))
		} else {
			u.At = near()
		}
		if u.State != contact.Sent || r.IntN(2) == 0 {
			u.ExpiresAt = c.now.Add(randMs(r, -2*time.Hour, 2*time.Hour))
			if r.IntN(8) == 0 {
				u.ExpiresAt = c.now
			}
		}
		c.ledger.Touches = append(c.ledger.Touches, u)
	}
	switch r.IntN(6) {
	case 0:
		c.ledger.Horizon = c.now.Add(randMs(r, -20*24*time.Hour, 20*24*time.Hour))
	case 1:
		c.ledger.Horizon = near()
	}
	return c
}

// naiveItem is the doc's verdict for one cap or gap that matches the send.
type naiveItem struct {
	id        string
	kind      contact.Kind
	max       int
	count     int
	truncated bool
	blocked   bool
}

// naive recounts, straight from the package doc, what each cap and gap
// that matches the send says at at.
func (c *capCase) naive(at time.Time) (caps, gaps []naiveItem) {
	l, now := &c.ledger, c.now
	hasHorizon := !l.Horizon.IsZero()
	zs := c.zones
	if len(zs) == 0 {
		zs = naiveFallback
	}
	for _, k := range c.rules.Caps {
		if !naiveMatches(k.Filter, c.send.Channel, c.send.Purpose) {
			continue
		}
		var in func(x time.Time) bool
		switch k.Period {
		case contact.Rolling:
			// The open interval (at-W, at+W).
			in = func(x time.Time) bool { return x.After(at.Add(-k.Window)) && x.Before(at.Add(k.Window)) }
		case contact.Day, contact.Week:
			same := sameLocalDay
			if k.Period == contact.Week {
				same = sameLocalWeek
			}
			// The union of the zones' periods holding at.
			in = func(x time.Time) bool {
				for _, z := range zs {
					if same(x, at, z) {
						return true
					}
				}
				return false
			}
		}
		it := naiveItem{id: k.ID, kind: contact.KindCap, max: k.Max}
		for i := range l.Touches {
			u := &l.Touches[i]
			if naiveCounts(u, now) && naiveMatches(k.Filter, u.Channel, u.Purpose) && in(u.At) {
				it.count++
			}
		}
		// The window reaches the horizon when it holds a time at or
		// before it: the windows are intervals holding at.
		it.truncated = hasHorizon && (!l.Horizon.Before(at) || in(l.Horizon))
		it.blocked = it.truncated || it.count >= k.Max
		caps = append(caps, it)
	}
	for _, g := range c.rules.Gaps {
		if !naiveMatches(g.Filter, c.send.Channel, c.send.Purpose) {
			continue
		}
		it := naiveItem{id: g.ID, kind: contact.KindGap, max: 1}
		in := func(x time.Time) bool { return x.After(at.Add(-g.Min)) && x.Before(at.Add(g.Min)) }
		for i := range l.Touches {
			u := &l.Touches[i]
			if naiveCounts(u, now) && naiveMatches(g.Filter, u.Channel, u.Purpose) && in(u.At) {
				it.count++
			}
		}
		it.truncated = hasHorizon && (!l.Horizon.Before(at) || in(l.Horizon))
		it.blocked = it.truncated || it.count > 0
		gaps = append(gaps, it)
	}
	return caps, gaps
}

func anyBlocked(items []naiveItem) bool {
	return slices.ContainsFunc(items, func(it naiveItem) bool { return it.blocked })
}

// samples returns times in [from, to) to check a ClearsAt against: the
// ends, random points, a grid, and both sides of every clock change of
// the zones.
func samples(r *rand.Rand, from, to time.Time, zones []*time.Location) []time.Time {
	out := []time.Time{from, to.Add(-time.Millisecond), to.Add(-time.Minute), to.Add(-time.Second)}
	span := to.Sub(from)
	for range 6 {
		out = append(out, from.Add(time.Duration(r.Int64N(int64(span)))))
	}
	step := max(10*time.Minute, span/60)
	for x := from.Add(time.Duration(r.Int64N(int64(step)))); x.Before(to); x = x.Add(step) {
		out = append(out, x)
	}
	for _, z := range zones {
		for x := from; ; {
			_, end := x.In(z).ZoneBounds()
			if end.IsZero() || !end.Before(to) {
				break
			}
			for _, d := range []time.Duration{-time.Millisecond, 0, time.Millisecond, 15 * time.Minute, 29 * time.Minute, 45 * time.Minute, 59 * time.Minute} {
				out = append(out, end.Add(d))
			}
			x = end
		}
	}
	return slices.DeleteFunc(out, func(x time.Time) bool { return x.Before(from) || !x.Before(to) })
}

// check returns what is wrong with the package's answers for c, or "".
func (c *capCase) check(seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 7))
	rules, l := &c.rules, &c.ledger
	var vc, vg contact.Verdict
	gotC := rules.CheckCaps(c.send, c.t, c.now, l, c.zones, &vc)
	gotG := rules.CheckGaps(c.send, c.t, c.now, l, &vg)
	lims := rules.Limits(c.send, c.t, c.zones, nil)
	if c.send.Critical {
		if gotC || gotG || len(lims) > 0 {
			return fmt.Sprintf("critical send: caps %v gaps %v limits %d", gotC, gotG, len(lims))
		}
		return ""
	}
	caps, gaps := c.naive(c.t)
	if gotC != anyBlocked(caps) {
		return fmt.Sprintf("CheckCaps = %v (%+v), naive %+v", gotC, vc, caps)
	}
	if gotG != anyBlocked(gaps) {
		return fmt.Sprintf("CheckGaps = %v (%+v), naive %+v", gotG, vg, gaps)
	}
	// Limits: one per matching cap and gap, each full as the naive count says.
	items := append(slices.Clone(caps), gaps...)
	if len(lims) != len(items) {
		return fmt.Sprintf("Limits: %d, want one per matching cap and gap (%d)", len(lims), len(items))
	}
	anyFull := false
	for i := range lims {
		lim := &lims[i]
		j := slices.IndexFunc(items, func(it naiveItem) bool { return it.id == lim.RuleID && it.kind == lim.Kind })
		if j < 0 {
			return fmt.Sprintf("Limit %+v matches no cap or gap", *lim)
		}
		if full := lim.Full(l, c.now); full != items[j].blocked {
			return fmt.Sprintf("Limit %+v: Full %v, naive %+v", *lim, full, items[j])
		}
		anyFull = anyFull || lim.Full(l, c.now)
		items[j].id = "" // each once
	}
	if anyFull != (gotC || gotG) {
		return fmt.Sprintf("Limits full %v, checks %v", anyFull, gotC || gotG)
	}
	for _, x := range []struct {
		what    string
		blocked bool
		v       *contact.Verdict
		kind    contact.Kind
		items   func(time.Time) []naiveItem
	}{
		{"CheckCaps", gotC, &vc, contact.KindCap, func(at time.Time) []naiveItem { caps, _ := c.naive(at); return caps }},
		{"CheckGaps", gotG, &vg, contact.KindGap, func(at time.Time) []naiveItem { _, gaps := c.naive(at); return gaps }},
	} {
		if !x.blocked {
			continue
		}
		v := x.v
		now := x.items(c.t)
		j := slices.IndexFunc(now, func(it naiveItem) bool { return it.id == v.RuleID })
		switch {
		case v.Kind != x.kind || j < 0 || !now[j].blocked:
			return fmt.Sprintf("%s: verdict %+v names no blocking rule of %+v", x.what, *v, now)
		case v.Truncated != now[j].truncated:
			return fmt.Sprintf("%s: verdict %+v, naive %+v", x.what, *v, now[j])
		case x.kind == contact.KindCap && !v.Truncated && (v.Count != now[j].count || v.Max != now[j].max):
			return fmt.Sprintf("%s: verdict counts %d of %d, naive %+v", x.what, v.Count, v.Max, now[j])
		case !v.ClearsAt.After(c.t):
			return fmt.Sprintf("%s: ClearsAt %s is not after t", x.what, v.ClearsAt)
		}
		// The verdict is the block that clears last: the latest ClearsAt
		// of the rules checked one at a time.
		var last contact.Verdict
		for _, it := range now {
			one := contact.Rules{}
			for _, k := range c.rules.Caps {
				if k.ID == it.id {
					one.Caps = append(one.Caps, k)
				}
			}
			for _, g := range c.rules.Gaps {
				if g.ID == it.id {
					one.Gaps = append(one.Gaps, g)
				}
			}
			var v1 contact.Verdict
			b := one.CheckCaps(c.send, c.t, c.now, l, c.zones, &v1) || one.CheckGaps(c.send, c.t, c.now, l, &v1)
			if b != it.blocked {
				return fmt.Sprintf("%s alone: blocked %v, naive %+v", it.id, b, it)
			}
			if b && v1.ClearsAt.After(last.ClearsAt) {
				last = v1
			}
		}
		if !v.ClearsAt.Equal(last.ClearsAt) {
			return fmt.Sprintf("%s: verdict %+v, but %s alone clears later, at %s", x.what, *v, last.RuleID, last.ClearsAt)
		}
		for _, at := range samples(r, c.t, v.ClearsAt, c.zones) {
			if !anyBlocked(x.items(at)) {
				return fmt.Sprintf("%s: ClearsAt t+%s (%+v) is late: the naive check allows t+%s", x.what, v.ClearsAt.Sub(c.t), *v, at.Sub(c.t))
			}
		}
	}
	return ""
}

func TestPropertyCapsAndGaps(t *testing.T) {
	const n = 2000
	blocked, truncated := 0, 0
	for i := range n {
		r := rand.New(rand.NewPCG(propSeed, uint64(i)))
		c := genCapCase(t, r)
		checkSeed := uint64(propSeed) ^ uint64(i)<<20
		if msg := c.check(checkSeed); msg != "" {
			c = shrinkCapCase(c, checkSeed)
			t.Fatalf("seed %d case %d: %s\nminimal case (still failing: %s):\n%s", propSeed, i, msg, c.check(checkSeed), &c)
		}
		var v contact.Verdict
		if c.rules.CheckCaps(c.send, c.t, c.now, &c.ledger, c.zones, &v) || c.rules.CheckGaps(c.send, c.t, c.now, &c.ledger, &v) {
			blocked++
		}
		if v.Truncated {
			truncated++
		}
	}
	// The generator must reach both answers often enough to mean something.
	if blocked < n/5 || blocked > n*4/5 {
		t.Errorf("%d of %d cases blocked: the generator is lopsided", blocked, n)
	}
	if truncated < n/50 {
		t.Errorf("only %d truncated verdicts in %d cases", truncated, n)
	}
	t.Logf("%d of %d cases blocked, %d by a truncated ledger", blocked, n, truncated)
}

// shrinkCapCase drops touches, caps, gaps and the horizon while c still
// fails, for a few seconds at most.
func shrinkCapCase(c capCase, seed uint64) capCase {
	deadline := time.Now().Add(5 * time.Second)
	for changed := true; changed && time.Now().Before(deadline); {
		changed = false
		try := func(edit func(d *capCase)) {
			if time.Now().After(deadline) {
				return
			}
			d := c.clone()
			edit(&d)
			if d.check(seed) != "" {
				c, changed = d, true
			}
		}
		for i := len(c.ledger.Touches) - 1; i >= 0; i-- {
			try(func(d *capCase) { d.ledger.Touches = slices.Delete(d.ledger.Touches, i, i+1) })
		}
		for i := len(c.rules.Caps) - 1; i >= 0; i-- {
			try(func(d *capCase) { d.rules.Caps = slices.Delete(d.rules.Caps, i, i+1) })
		}
		for i := len(c.rules.Gaps) - 1; i >= 0; i-- {
			try(func(d *capCase) { d.rules.Gaps = slices.Delete(d.rules.Gaps, i, i+1) })
		}
		if !c.ledger.Horizon.IsZero() {
			try(func(d *capCase) { d.ledger.Horizon = time.Time{} })
		}
		if len(c.zones) > 1 {
			for i := len(c.zones) - 1; i >= 0; i-- {
				try(func(d *capCase) { d.zones = slices.Delete(slices.Clone(d.zones), i, i+1) })
			}
		}
	}
	return c
}

// quietCase is one random check of quiet hours.
type quietCase struct {
	quiet []contact.Quiet
	zones []*time.Location
	t     time.Time
	ch    arbiter.Channel
}

func (c *quietCase) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  t=%s channel=%s zones=%s\n", c.t.UTC().Format(time.RFC3339Nano), c.ch, zoneNames(c.zones))
	for _, z := range c.zones {
		fmt.Fprintf(&b, "  t in %s: %s\n", z, c.t.In(z).Format("Mon 2006-01-02 15:04:05.000 MST"))
	}
	for _, q := range c.quiet {
		fmt.Fprintf(&b, "  quiet %s: %02d:%02d-%02d:%02d days %07b channels %b\n", q.ID, q.From/60, q.From%60, q.To/60, q.To%60, q.Days, q.Channels)
	}
	return b.String()
}

func genQuietCase(t testing.TB, r *rand.Rand) quietCase {
	var c quietCase
	c.t = propAnchors[r.IntN(len(propAnchors))].Add(time.Duration(r.Int64N(int64(72*time.Hour))) - 36*time.Hour)
	// A recipient of no known zone is quiet at nearly every time: keep
	// such cases few, so that most verdicts have a ClearsAt to test.
	if c.zones = randZones(t, r); c.zones == nil && r.IntN(4) > 0 {
		c.zones = []*time.Location{zone(t, propZones[r.IntN(len(propZones))])}
	}
	c.ch = propChannels[r.IntN(len(propChannels))]
	// Clock times around the clock changes (01:00-03:00 local), midnight
	// and the day's end, or any minute.
	special := []int{0, 30, 60, 90, 105, 120, 135, 150, 165, 180, 1380, 1440}
	clock := func() int {
		if r.IntN(3) == 0 {
			return special[r.IntN(len(special))]
		}
		return r.IntN(1441)
	}
	for i := range 1 + r.IntN(2) {
		q := contact.Quiet{ID: fmt.Sprintf("q%d", i), From: clock(), To: clock(), Days: 0x7f}
		if r.IntN(2) == 0 { // at most 10 hours
			q.To = (q.From + r.IntN(601)) % 1440
		}
		if r.IntN(3) == 0 {
			for _, ch := range propChannels {
				if r.IntN(2) == 0 {
					q.Channels |= 1 << ch
				}
			}
		}
		if r.IntN(4) == 0 { // a day or two off
			q.Days &^= 1<<r.IntN(7) | 1<<r.IntN(7)
		}
		c.quiet = append(c.quiet, q)
	}
	return c
}

// naiveQuiet reports which quiet rules hold for the channel at at, in
// any of the zones, straight from the doc.
func (c *quietCase) naiveQuiet(at time.Time) []string {
	zs := c.zones
	if len(zs) == 0 {
		zs = naiveFallback
	}
	var ids []string
	for _, q := range c.quiet {
		if q.Channels != 0 && q.Channels>>c.ch&1 == 0 {
			continue
		}
		for _, z := range zs {
			lt := at.In(z)
			m := lt.Hour()*60 + lt.Minute()
			quiet := q.Days>>lt.Weekday()&1 == 0 ||
				q.From < q.To && m >= q.From && m < q.To ||
				q.From > q.To && (m >= q.From || m < q.To)
			if quiet {
				ids = append(ids, q.ID)
				break
			}
		}
	}
	return ids
}

func (c *quietCase) check(seed uint64) (msg string, clearsKnown bool) {
	r := rand.New(rand.NewPCG(seed, 9))
	rules := &contact.Rules{Quiet: c.quiet}
	s := contact.Send{Channel: c.ch, Purpose: arbiter.Promotional}
	var v contact.Verdict
	got := rules.CheckQuiet(s, c.t, c.zones, &v)
	ids := c.naiveQuiet(c.t)
	if got != (len(ids) > 0) {
		return fmt.Sprintf("CheckQuiet = %v (%+v), naive quiet rules %v", got, v, ids), false
	}
	if s.Critical = true; rules.CheckQuiet(s, c.t, c.zones, &contact.Verdict{}) {
		return "a critical send is blocked by quiet hours", false
	}
	if !got {
		return "", false
	}
	if v.Kind != contact.KindQuiet || !slices.Contains(ids, v.RuleID) {
		return fmt.Sprintf("verdict %+v, naive quiet rules %v", v, ids), false
	}
	if v.ClearsAt.IsZero() {
		return "", false
	}
	c2 := v.ClearsAt
	if !c2.After(c.t) {
		return fmt.Sprintf("ClearsAt %s is not after t", c2), true
	}
	for _, at := range samples(r, c.t, c2, c.zones) {
		if len(c.naiveQuiet(at)) == 0 {
			return fmt.Sprintf("ClearsAt t+%s is late: not quiet at t+%s (%s UTC)", c2.Sub(c.t), at.Sub(c.t), at.UTC().Format(time.RFC3339)), true
		}
	}
	if ids := c.naiveQuiet(c2); len(ids) > 0 {
		return fmt.Sprintf("at ClearsAt t+%s quiet rules %v still hold", c2.Sub(c.t), ids), true
	}
	s.Critical = false
	if rules.CheckQuiet(s, c2, c.zones, &v) {
		return fmt.Sprintf("CheckQuiet still blocks at its ClearsAt t+%s: %+v", c2.Sub(c.t), v), true
	}
	return "", true
}

func TestPropertyQuiet(t *testing.T) {
	const n = 3000
	blocked, known := 0, 0
	for i := range n {
		r := rand.New(rand.NewPCG(propSeed+1, uint64(i)))
		c := genQuietCase(t, r)
		checkSeed := uint64(propSeed) ^ uint64(i)<<20
		msg, clearsKnown := c.check(checkSeed)
		if msg != "" {
			for changed := true; changed; { // shrink
				changed = false
				for j := len(c.quiet) - 1; j >= 0 && len(c.quiet) > 1; j-- {
					d := c
					d.quiet = slices.Delete(slices.Clone(c.quiet), j, j+1)
					if m, _ := d.check(checkSeed); m != "" {
						c, msg, changed = d, m, true
					}
				}
				for j := len(c.zones) - 1; j >= 0 && len(c.zones) > 1; j-- {
					d := c
					d.zones = slices.Delete(slices.Clone(c.zones), j, j+1)
					if m, _ := d.check(checkSeed); m != "" {
						c, msg, changed = d, m, true
					}
				}
			}
			t.Fatalf("seed %d case %d: %s\nminimal case:\n%s", propSeed+1, i, msg, &c)
		}
		if len(c.naiveQuiet(c.t)) > 0 {
			blocked++
		}
		if clearsKnown {
			known++
		}
	}
	if blocked < n/5 || blocked > n*9/10 || known < blocked/2 {
		t.Errorf("%d of %d cases quiet, %d with a known ClearsAt: the generator is lopsided", blocked, n, known)
	}
	t.Logf("%d of %d cases quiet, %d with a known ClearsAt", blocked, n, known)
}
