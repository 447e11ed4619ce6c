// Package demo generates Arbiter's deterministic demo population: HCPs with
// ids HCP-000001 upwards, specialties, markets EU and US, personas, address
// references, mixed consent (opt-ins, opt-outs, expired and pending
// opt-ins, barred channels, consent for an old address, and a few HCPs
// whose consent was never loaded) and engagement history.
//
// The same n and now always give the same population, so demos, tests and
// benchmarks can name HCPs and know what to expect of them.
package demo

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
)

// Size is the default demo population size.
const Size = 10000

// Source is the consent source system named in demo records.
const Source = "demo-crm"

// Territory is the sales territory of the i-th demo HCP: "T01" to "T20",
// round robin.
func Territory(i int) string { return fmt.Sprintf("T%02d", (i-1)%20+1) }

// HCPID returns the id of the i-th demo HCP (1-based): "HCP-000042".
func HCPID(i int) string { return fmt.Sprintf("HCP-%06d", i) }

type weighted[T any] struct {
	v T
	w int
}

func pick[T any](r *rand.Rand, choices []weighted[T]) T {
	total := 0
	for _, c := range choices {
		total += c.w
	}
	n := r.IntN(total)
	for _, c := range choices {
		if n < c.w {
			return c.v
		}
		n -= c.w
	}
	return choices[len(choices)-1].v
}

var (
	specialties = []weighted[string]{
		{"general_practice", 35}, {"cardiology", 20}, {"oncology", 15},
		{"endocrinology", 15}, {"pulmonology", 15},
	}
	segments = []weighted[string]{
		{"digital_savvy", 30}, {"traditional", 30}, {"scientific_first", 25}, {"low_engagement", 15},
	}
	euZones = []string{"Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Europe/Rome", "Europe/Amsterdam"}
	usZones = []string{"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"}
	brands  = map[string]string{
		"cardiology": "cardiolex", "oncology": "oncovia", "endocrinology": "glucanor",
		"general_practice": "glucanor", "pulmonology": "respiral",
	}
	// How much each persona engages per channel (mean of the decayed count).
	affinity = map[string]map[arbiter.Channel]float64{
		"digital_savvy":    {arbiter.Email: 3, arbiter.Portal: 2.5, arbiter.Webinar: 1.5, arbiter.RemoteVisit: 1.5, arbiter.Push: 1, arbiter.SMS: 1},
		"traditional":      {arbiter.RepVisit: 3, arbiter.DirectMail: 1, arbiter.Email: 0.5},
		"scientific_first": {arbiter.Webinar: 2.5, arbiter.MSLMeeting: 2, arbiter.Email: 1.5, arbiter.Portal: 1.5},
		"low_engagement":   {arbiter.Email: 0.2},
	}
)

// Population returns n demo HCPs as import items, with times relative to now.
func Population(n int, now time.Time) []recipient.ImportItem {
	items := make([]recipient.ImportItem, n)
	for i := range items {
		items[i] = HCP(i+1, now)
	}
	return items
}

// HCP returns the i-th demo HCP (1-based).
func HCP(i int, now time.Time) recipient.ImportItem {
	r := rand.New(rand.NewPCG(uint64(i), 0x4172626974657221))
	id := HCPID(i)
	market := "US"
	if r.IntN(10) < 4 {
		market = "EU"
	}
	zone := usZones[r.IntN(len(usZones))]
	if market == "EU" {
		zone = euZones[r.IntN(len(euZones))]
	}
	p := recipient.Profile{
		HCPID: id, Specialty: pick(r, specialties), Market: market, Audience: arbiter.HCP,
		Segment: pick(r, segments), TimeZone: zone,
		Attributes:  map[string]float64{"decile": float64(1 + r.IntN(10))},
		UpdatedAt:   now,
		Territories: []string{Territory(i)},
	}
	p.Addresses[arbiter.Email] = fmt.Sprintf("em-%06d-1", i)
	if r.IntN(2) == 0 {
		p.Addresses[arbiter.SMS] = fmt.Sprintf("ph-%06d-1", i)
	}

	c := &recipient.Counters{Topics: map[string]float64{}}
	for ch, mean := range affinity[p.Segment] {
		c.Engagement[ch] = round1(mean * 2 * r.Float64())
	}
	for _, ch := range []arbiter.Channel{arbiter.Email, arbiter.RepVisit, arbiter.Webinar, arbiter.SMS} {
		if r.IntN(3) > 0 {
			c.Sent[ch] = float64(r.IntN(4))
			if c.Sent[ch] > 0 {
				c.LastContact[ch] = now.Add(-time.Duration(1+r.IntN(60*24)) * time.Hour)
			}
		}
	}
	if p.Segment != "low_engagement" {
		c.LastEngagement = now.Add(-time.Duration(1+r.IntN(90*24)) * time.Hour)
		brand := brands[p.Specialty]
		for _, kind := range []string{"efficacy", "safety", "trial_summary", "dosing"} {
			if r.IntN(3) == 0 {
				c.Topics[brand+"_"+kind] = round1(3 * r.Float64())
			}
		}
	}

	return recipient.ImportItem{
		Profile: p, Counters: c, Consent: consents(r, i, p, now), Touches: touches(i, p, now),
		// One HCP in fifty has no completeness marker: consent never
		// loaded from the CRM, so nothing may be sent to them.
		ConsentComplete: i%50 != 0,
		CapturedBy:      "demo-seed",
	}
}

func consents(r *rand.Rand, i int, p recipient.Profile, now time.Time) []consent.Record {
	var out []consent.Record
	captured := now.AddDate(0, 0, -30-r.IntN(700)).Truncate(time.Second)
	add := func(ch arbiter.Channel, purpose arbiter.Purpose, st consent.Status, addr string) *consent.Record {
		out = append(out, consent.Record{Channel: ch, Purpose: purpose, Status: st, Address: addr,
			CapturedAt: captured, Source: Source, CapturedBy: "demo-seed"})
		return &out[len(out)-1]
	}
	email := p.Addresses[arbiter.Email]
	switch p.Market {
	case "EU":
		// EU email needs an opt-in, given for an address.
		switch n := r.IntN(100); {
		case n < 55:
			add(arbiter.Email, arbiter.Promotional, consent.OptIn, email)
		case n < 60:
			rec := add(arbiter.Email, arbiter.Promotional, consent.OptIn, email)
			rec.ExpiresAt = now.AddDate(0, 0, -1-r.IntN(60)) // lapsed
			rec.CapturedAt = rec.ExpiresAt.AddDate(-1, 0, 0)
		case n < 63:
			add(arbiter.Email, arbiter.Promotional, consent.Pending, email) // double opt-in unconfirmed
		case n < 66:
			add(arbiter.Email, arbiter.Promotional, consent.OptIn, fmt.Sprintf("em-%06d-0", i)) // old address
		}
		if r.IntN(100) < 70 {
			add(arbiter.Email, arbiter.Medical, consent.OptIn, email)
		}
		if r.IntN(2) == 0 {
			add(arbiter.Webinar, arbiter.Promotional, consent.OptIn, "")
			add(arbiter.Webinar, arbiter.Medical, consent.OptIn, "")
		}
		if r.IntN(2) == 0 {
			add(arbiter.Portal, arbiter.Promotional, consent.OptIn, "")
			add(arbiter.Portal, arbiter.Medical, consent.OptIn, "")
		}
	case "US":
		// US email is opt-out by default; some opted out, a few barred it.
		switch n := r.IntN(100); {
		case n < 10:
			add(arbiter.Email, arbiter.Promotional, consent.OptOut, "")
		case n < 12:
			add(arbiter.Email, arbiter.PurposeUnspecified, consent.Barred, "")
		}
	}
	if sms := p.Addresses[arbiter.SMS]; sms != "" && r.IntN(100) < 40 {
		add(arbiter.SMS, arbiter.Service, consent.OptIn, sms)
		add(arbiter.SMS, arbiter.Promotional, consent.OptIn, sms)
	}
	if r.IntN(100) < 5 {
		add(arbiter.RepVisit, arbiter.Promotional, consent.OptOut, "")
	}
	return out
}

func round1(v float64) float64 { return float64(int(v*10+0.5)) / 10 }

// touchMix is, per persona, how many touches the last four weeks held and
// on which channels and purposes.
var touchMix = map[string]struct {
	min, max int
	kinds    []weighted[touchKind]
}{
	"digital_savvy": {6, 14, []weighted[touchKind]{
		{touchKind{arbiter.Email, arbiter.Promotional}, 50}, {touchKind{arbiter.Email, arbiter.Medical}, 15},
		{touchKind{arbiter.Push, arbiter.Promotional}, 10}, {touchKind{arbiter.RemoteVisit, arbiter.Promotional}, 10},
		{touchKind{arbiter.SMS, arbiter.Service}, 5}, {touchKind{arbiter.Webinar, arbiter.Medical}, 10}}},
	"traditional": {2, 7, []weighted[touchKind]{
		{touchKind{arbiter.RepVisit, arbiter.Promotional}, 60}, {touchKind{arbiter.Email, arbiter.Promotional}, 25},
		{touchKind{arbiter.DirectMail, arbiter.Promotional}, 15}}},
	"scientific_first": {4, 10, []weighted[touchKind]{
		{touchKind{arbiter.Webinar, arbiter.Medical}, 30}, {touchKind{arbiter.MSLMeeting, arbiter.Medical}, 20},
		{touchKind{arbiter.Email, arbiter.Medical}, 30}, {touchKind{arbiter.Email, arbiter.Promotional}, 20}}},
	"low_engagement": {1, 4, []weighted[touchKind]{{touchKind{arbiter.Email, arbiter.Promotional}, 100}}},
}

type touchKind struct {
	ch arbiter.Channel
	pu arbiter.Purpose
}

// touches is the i-th demo HCP's contact history over the last four weeks:
// sends, visits and meetings in the HCP's working hours, as a CRM export
// would hold them. It draws from a random stream of its own, so that the
// rest of the demo data is as it was before touches existed.
func touches(i int, p recipient.Profile, now time.Time) []contact.Touch {
	r := rand.New(rand.NewPCG(uint64(i), 0x546f756368657321))
	mix := touchMix[p.Segment]
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	n := mix.min + r.IntN(mix.max-mix.min+1)
	out := make([]contact.Touch, 0, n)
	brand := brands[p.Specialty]
	for k := range n {
		kind := pick(r, mix.kinds)
		day := now.In(loc).AddDate(0, 0, -1-r.IntN(28))
		at := time.Date(day.Year(), day.Month(), day.Day(), 9+r.IntN(8), r.IntN(60), 0, 0, loc).UTC()
		t := contact.Touch{At: at, Channel: kind.ch, Purpose: kind.pu, Topic: brand, State: contact.Sent}
		if kind.ch == arbiter.Email || kind.ch == arbiter.SMS || kind.ch == arbiter.Push {
			t.MessageID = fmt.Sprintf("msg-%06d-%02d", i, k)
		}
		out = append(out, t)
	}
	return out
}

// JourneyEvents is the i-th demo HCP's history in the demo journey
// "Glucanor launch" (rules/demo_rules.json), as a data feed would have
// reported it: a third of the endocrinologists and general practitioners
// were invited to the webinar in the last three weeks; after that some
// attended (and some of those were sent the video, and the follow-up),
// some did not show, a few reached the goal or unsubscribed. None for the
// others. It draws from a random stream of its own.
func JourneyEvents(i int, now time.Time) []recipient.Event {
	p := HCP(i, now).Profile
	if brands[p.Specialty] != "glucanor" {
		return nil
	}
	r := rand.New(rand.NewPCG(uint64(i), 0x4a6f75726e657921))
	if r.IntN(3) != 0 {
		return nil
	}
	id := HCPID(i)
	at := now.Add(-time.Duration(2+r.IntN(20*24)) * time.Hour).Truncate(time.Second)
	ev := func(typ arbiter.EventType, ch arbiter.Channel, action string, after time.Duration) recipient.Event {
		at = at.Add(after)
		return recipient.Event{ID: fmt.Sprintf("demo-journey-%06d-%s-%s", i, typ, action), HCPID: id, Type: typ, Channel: ch,
			ActionID: action, OccurredAt: at}
	}
	out := []recipient.Event{ev(arbiter.EventSent, arbiter.Webinar, "webinar-glucanor-efficacy", 0)}
	step := func(typ arbiter.EventType, ch arbiter.Channel, action string, after time.Duration) bool {
		e := ev(typ, ch, action, after)
		if e.OccurredAt.After(now) {
			return false
		}
		out = append(out, e)
		return true
	}
	switch n := r.IntN(10); {
	case n < 5: // attended; the video a day later; the follow-up two days after that
		if step(arbiter.EventAttended, arbiter.Webinar, "webinar-glucanor-efficacy", 48*time.Hour) &&
			r.IntN(2) == 0 && step(arbiter.EventSent, arbiter.Portal, "portal-glucanor-video", 26*time.Hour) &&
			r.IntN(2) == 0 {
			step(arbiter.EventSent, arbiter.Email, "email-glucanor-launch-followup", 50*time.Hour)
		}
	case n < 8: // did not show
		step(arbiter.EventNoShow, arbiter.Webinar, "webinar-glucanor-efficacy", 48*time.Hour)
	case n < 9: // the goal
		step(arbiter.EventGoal, arbiter.Email, "", 72*time.Hour)
	default: // unsubscribed
		step(arbiter.EventUnsubscribed, arbiter.Email, "", 24*time.Hour)
	}
	return out
}

// PatientID returns the id of the i-th demo patient (1-based):
// "PAT-000042". Patients are recipients of the same engine as HCPs: the
// API's recipient (hcp_id) field takes their ids.
func PatientID(i int) string { return fmt.Sprintf("PAT-%06d", i) }

// Patients returns n demo patients as import items.
func Patients(n int, now time.Time) []recipient.ImportItem {
	items := make([]recipient.ImportItem, n)
	for i := range items {
		items[i] = Patient(i+1, now)
	}
	return items
}

// conditions are the demo hospital's: a patient's is their profile's
// specialty (the catalog's specialties target it: a seminar only for the
// patients whose condition it concerns).
var conditions = []weighted[string]{{"diabetes", 35}, {"hypertension", 30}, {"asthma", 20}, {"heart_failure", 15}}

// Patient returns the i-th demo patient (1-based): a condition, a market
// and time zone, consent for the hospital's channels, and the dates the
// hospital's journeys follow, as Unix seconds in attributes:
// appointment_at (half of them, from an hour to a week ahead, a tenth of
// those within three hours), results_ready_at (a fifth, in the last five
// days), last_visit_at (two fifths, in the last two weeks),
// last_checkup_at, and on_medication (1 for half).
func Patient(i int, now time.Time) recipient.ImportItem {
	r := rand.New(rand.NewPCG(uint64(i), 0x50617469656e7421))
	market, zone := "US", usZones[r.IntN(len(usZones))]
	if r.IntN(10) < 4 {
		market, zone = "EU", euZones[r.IntN(len(euZones))]
	}
	unix := func(t time.Time) float64 { return float64(t.Truncate(time.Minute).Unix()) }
	attrs := map[string]float64{"last_checkup_at": unix(now.AddDate(0, 0, -200-r.IntN(300)))}
	if r.IntN(2) == 0 {
		ahead := time.Duration(1+r.IntN(7*24)) * time.Hour
		if r.IntN(10) == 0 {
			ahead = time.Duration(30+r.IntN(150)) * time.Minute
		}
		attrs["appointment_at"] = unix(now.Add(ahead))
	}
	if r.IntN(5) == 0 {
		attrs["results_ready_at"] = unix(now.Add(-time.Duration(r.IntN(5*24)) * time.Hour))
	}
	if r.IntN(5) < 2 {
		attrs["last_visit_at"] = unix(now.Add(-time.Duration(r.IntN(14*24)) * time.Hour))
	}
	if r.IntN(2) == 0 {
		attrs["on_medication"] = 1
	}
	p := recipient.Profile{
		HCPID: PatientID(i), Specialty: pick(r, conditions), Market: market, Audience: arbiter.Patient,
		TimeZone: zone, Attributes: attrs, UpdatedAt: now,
	}
	p.Addresses[arbiter.Email] = fmt.Sprintf("pem-%06d-1", i)
	p.Addresses[arbiter.SMS] = fmt.Sprintf("pph-%06d-1", i)
	captured := now.AddDate(0, 0, -10-r.IntN(500)).Truncate(time.Second)
	var recs []consent.Record
	add := func(ch arbiter.Channel, pu arbiter.Purpose, addr string) {
		recs = append(recs, consent.Record{Channel: ch, Purpose: pu, Status: consent.OptIn, Address: addr,
			CapturedAt: captured, Source: "demo-hospital", CapturedBy: "demo-seed"})
	}
	// The patient app: push and in-app for most; SMS and email for many.
	if r.IntN(10) < 7 {
		add(arbiter.Push, arbiter.Service, "")
		add(arbiter.InApp, arbiter.Service, "")
	}
	if r.IntN(10) < 8 {
		add(arbiter.SMS, arbiter.Service, p.Addresses[arbiter.SMS])
	}
	if r.IntN(10) < 9 {
		add(arbiter.Email, arbiter.Service, p.Addresses[arbiter.Email])
		add(arbiter.Email, arbiter.Medical, p.Addresses[arbiter.Email])
	}
	c := &recipient.Counters{Topics: map[string]float64{}}
	c.Engagement[arbiter.InApp] = round1(2 * r.Float64())
	c.Engagement[arbiter.Push] = round1(1.5 * r.Float64())
	c.Engagement[arbiter.Email] = round1(r.Float64())
	return recipient.ImportItem{Profile: p, Counters: c, Consent: recs, ConsentComplete: true, CapturedBy: "demo-seed"}
}
