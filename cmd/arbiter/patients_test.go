package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

// addPatient creates a US patient in Chicago with condition cond, consent
// for the hospital's service messages on push, in-app, SMS and email, and
// the given profile dates (Unix seconds).
func addPatient(t *testing.T, c *client.Client, id, cond string, attrs map[string]float64) {
	t.Helper()
	ctx := context.Background()
	p := client.Profile{HCPID: id, Market: "US", Audience: arbiter.Patient, Specialty: cond, TimeZone: "America/Chicago",
		Attributes: attrs}
	if err := c.UpsertProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []arbiter.Channel{arbiter.Push, arbiter.InApp, arbiter.SMS, arbiter.Email} {
		r := optIn(ch, arbiter.Service)
		r.CapturedAt = time.Now().Add(-30 * 24 * time.Hour) // before every decision time below
		if _, err := c.SetConsent(ctx, id, r, true); err != nil {
			t.Fatal(err)
		}
	}
}

func unixAttr(t time.Time) float64 { return float64(t.Unix()) }

// The hospital scenario's reminders, end to end through the Go client on
// a real Redis, with the demo's rules, journeys and contact policy.
func TestPatientReminders(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-rules", "../../rules/demo_rules.json", "-contact-policy", "../../contact/demo_policy.json")
	c := ts.client
	ctx := context.Background()
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	// An appointment tomorrow at 15:00 in Chicago.
	day := time.Now().In(chicago).AddDate(0, 0, 1)
	appt := time.Date(day.Year(), day.Month(), day.Day(), 15, 0, 0, 0, chicago)
	reminders := []string{"push-appointment-reminder", "sms-appointment-reminder", "email-appointment-reminder"}

	t.Run("appointment reminder by push an hour before", func(t *testing.T) {
		const id = "PAT-E2E-APPT"
		addPatient(t, c, id, "diabetes", map[string]float64{"appointment_at": unixAttr(appt)})
		d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 3, Explain: true, Candidates: reminders,
			At: appt.Add(-5 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range d.Suppressed {
			if s.ActionID == "push-appointment-reminder" && (s.Reason != client.SuppressionJourneyWait || !s.ClearsAt.Equal(appt.Add(-time.Hour))) {
				t.Errorf("five hours before: the push reminder %+v, want JOURNEY_WAIT until an hour before", s)
			}
		}
		if len(d.Recommendations) > 0 && d.Recommendations[0].ActionID != "email-appointment-reminder" {
			t.Errorf("five hours before: %s first, want the journey's reminders held", d.Recommendations[0].ActionID)
		}
		// A sender finds them due, although nothing was sent yet: the
		// profile's appointment indexed them.
		due := map[string]client.Due{}
		if err := c.ListDue(ctx, "appointment-reminder", "", appt.Add(-50*time.Minute), func(d client.Due) error {
			due[d.RecipientID] = d
			return nil
		}); err != nil || !due[id].DueAt.Equal(appt.Add(-time.Hour)) {
			t.Errorf("ListDue 50 minutes before: %v, %v; want %s due an hour before", due, err, id)
		}
		d, err = c.Decide(ctx, id, client.DecideOptions{Limit: 3, Explain: true, Candidates: reminders, At: appt.Add(-50 * time.Minute)})
		if err != nil || len(d.Recommendations) == 0 {
			t.Fatalf("50 minutes before: %+v, %v", d, err)
		}
		r := d.Recommendations[0]
		if r.ActionID != "push-appointment-reminder" || r.Journey == nil || r.Journey.JourneyID != "appointment-reminder" {
			t.Fatalf("50 minutes before: first %s (journey %+v), want the push reminder as the journey's step", r.ActionID, r.Journey)
		}
		// Urgency chose the channel: within three hours, push and SMS.
		if len(r.Rules) != 1 || r.Rules[0] != "urgent-appointment-push-or-sms" || !strings.Contains(r.Reason, "within three hours") {
			t.Errorf("50 minutes before: rules %v, reason %q; want the urgency rule named", r.Rules, r.Reason)
		}
	})

	t.Run("results ready, in the app", func(t *testing.T) {
		const id = "PAT-E2E-RESULTS"
		addPatient(t, c, id, "asthma", map[string]float64{"results_ready_at": unixAttr(time.Now().Add(-time.Hour))})
		d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 2, Explain: true, Candidates: []string{"in_app-results-ready", "email-results-ready"}})
		if err != nil || len(d.Recommendations) == 0 {
			t.Fatalf("results: %+v, %v", d, err)
		}
		if r := d.Recommendations[0]; r.ActionID != "in_app-results-ready" || r.Journey == nil || r.Journey.JourneyID != "results-ready" {
			t.Errorf("results: first %s (journey %+v), want the in-app message as the journey's step", r.ActionID, r.Journey)
		}
	})

	t.Run("a last-minute change by SMS, critical, even at night", func(t *testing.T) {
		const id = "PAT-E2E-CHANGE"
		addPatient(t, c, id, "heart_failure", map[string]float64{"appointment_at": unixAttr(appt)})
		night := time.Date(day.Year(), day.Month(), day.Day(), 2, 30, 0, 0, chicago)
		v := checkSend(t, c, client.SendCheck{HCPID: id, ActionID: "sms-patient-appointment", PlannedAt: night})
		if !v.Allowed {
			t.Errorf("the critical change SMS at 02:30: %s", describe(v))
		}
		v = checkSend(t, c, client.SendCheck{HCPID: id, ActionID: "sms-medication-reminder", PlannedAt: night})
		if v.Allowed || !hasBlock(v, client.SuppressionQuietHours) {
			t.Errorf("a routine SMS at 02:30: %s; want it held for quiet hours", describe(v))
		}
	})

	t.Run("a seminar only for the patients it concerns", func(t *testing.T) {
		const id = "PAT-E2E-SEMINAR"
		addPatient(t, c, id, "diabetes", nil)
		d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 2, Explain: true, Candidates: []string{"email-seminar-diabetes", "email-seminar-heart"},
			At: appt.Add(-3 * time.Hour)}) // noon, outside quiet hours
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Recommendations) != 1 || d.Recommendations[0].ActionID != "email-seminar-diabetes" {
			t.Errorf("a diabetic patient: recommended %+v, want the diabetes seminar alone", d.Recommendations)
		}
		for _, s := range d.Suppressed {
			if s.ActionID == "email-seminar-heart" && s.Reason != client.SuppressionNotEligible {
				t.Errorf("the heart seminar for a diabetic patient: %+v, want NOT_ELIGIBLE", s)
			}
		}
	})

	t.Run("medication reminders, once a day", func(t *testing.T) {
		const id = "PAT-E2E-MEDS"
		addPatient(t, c, id, "hypertension", map[string]float64{"on_medication": 1})
		meds := []string{"push-medication-reminder", "sms-medication-reminder"}
		// Decisions are made now or ahead (the past is WhyNot's), and the
		// send is an event of the past: the patient lives where it is now
		// between ten and four, so that the day's reminder, two hours
		// later and the next morning are all outside quiet hours.
		zone := daytimeZone(t, time.Now(), 10, 15)
		p, _, err := c.GetProfile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		p.TimeZone = zone.String()
		if err := c.UpsertProfile(ctx, *p); err != nil {
			t.Fatal(err)
		}
		d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 2, Candidates: meds})
		if err != nil || len(d.Recommendations) == 0 || d.Recommendations[0].Journey == nil {
			t.Fatalf("medication reminder: %+v, %v; want it as the journey's step", d, err)
		}
		sent := ms(time.Now().Add(-time.Minute))
		recordTouch(t, c, client.Event{ID: id + "-sent", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Push,
			ActionID: "push-medication-reminder", OccurredAt: sent})
		d, err = c.Decide(ctx, id, client.DecideOptions{Limit: 2, Candidates: meds, At: sent.Add(2 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		// The push that went out is also within the catalog's minimum gap
		// for push; the SMS is held by the journey alone.
		if len(d.Recommendations) != 0 {
			t.Errorf("after the day's reminder: recommended %+v, want nothing", d.Recommendations)
		}
		for _, s := range d.Suppressed {
			if s.ActionID == "sms-medication-reminder" && (s.Reason != client.SuppressionJourney || !s.ClearsAt.Equal(sent.Add(20*time.Hour))) {
				t.Errorf("after the day's reminder, the SMS variant: %+v; want it held by the journey until the next run", s)
			}
		}
		// The next morning it is due again (by SMS: the push's 24 h gap
		// has not run).
		d, err = c.Decide(ctx, id, client.DecideOptions{Limit: 2, Candidates: meds, At: sent.Add(22 * time.Hour)})
		if err != nil || len(d.Recommendations) == 0 || d.Recommendations[0].Journey == nil ||
			d.Recommendations[0].Journey.JourneyID != "medication-reminders" {
			t.Errorf("the next morning: %+v, %v; want the reminder due again", d, err)
		}
	})
}

func hasBlock(v *client.SendVerdict, r client.SuppressionReason) bool {
	for _, b := range v.Blocks {
		if b.Reason == r {
			return true
		}
	}
	return false
}

// daytimeZone is a time zone where at is between from and to o'clock.
func daytimeZone(t *testing.T, at time.Time, from, to int) *time.Location {
	t.Helper()
	for _, name := range []string{"Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver", "America/Chicago",
		"America/New_York", "America/Sao_Paulo", "Atlantic/Azores", "Europe/London", "Europe/Berlin", "Europe/Athens", "Europe/Moscow",
		"Asia/Dubai", "Asia/Karachi", "Asia/Dhaka", "Asia/Bangkok", "Asia/Singapore", "Asia/Tokyo", "Australia/Brisbane",
		"Pacific/Noumea", "Pacific/Auckland", "Pacific/Kiritimati"} {
		loc := mustZone(name)
		if h := at.In(loc).Hour(); h >= from && h <= to {
			return loc
		}
	}
	t.Fatalf("no zone where %v is between %d and %d o'clock", at, from, to)
	return nil
}
