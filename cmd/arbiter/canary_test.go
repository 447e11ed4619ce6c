package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

// The canary: personal values planted in valid and invalid requests of
// every kind never come back out in the server's logs (access log on, debug
// level), its metrics, or the error messages callers get.
func TestPersonalDataCanary(t *testing.T) {
	canaries := []string{"jane.doe@example.com", "+1-555-0100", "Jane Q. Doe", "12 Elm Street"}
	var logs lockedBuffer
	ts := startLogging(t, embedded, 10, &logs, "-access-log", "-log-level", "debug", "-metrics-addr", "127.0.0.1:0")
	ctx := context.Background()
	c := ts.client
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	now := time.Now()
	// Valid writes that carry the values.
	keep(c.UpsertProfile(ctx, client.Profile{HCPID: "HCP-000001", Specialty: "cardiology", Market: "US",
		Audience: arbiter.HCP, Addresses: map[arbiter.Channel]string{arbiter.Email: canaries[0], arbiter.SMS: canaries[1]}}))
	_, err := c.SetConsent(ctx, "HCP-000001", client.ConsentRecord{Channel: arbiter.Email, Purpose: arbiter.Medical,
		AddressRef: canaries[0], Status: client.ConsentOptIn, CapturedAt: now, Source: "web", CapturedBy: canaries[2]}, false)
	keep(err)
	// Invalid ones that carry them where the value is the mistake.
	keep(c.UpsertProfile(ctx, client.Profile{HCPID: canaries[2], Market: canaries[3], Audience: arbiter.HCP,
		Addresses: map[arbiter.Channel]string{arbiter.Email: canaries[0] + "|x"}}))
	_, err = c.SetConsent(ctx, canaries[2], client.ConsentRecord{Channel: arbiter.Email, Purpose: arbiter.Medical,
		AddressRef: strings.Repeat(canaries[0], 10), Status: client.ConsentOptIn, CapturedAt: now, Source: canaries[3]}, false)
	keep(err)
	_, err = c.Decide(ctx, canaries[2], client.DecideOptions{Candidates: []string{canaries[3]}})
	keep(err)
	_, err = c.Decide(ctx, "HCP-000001", client.DecideOptions{Candidates: []string{canaries[0]}, Explain: true})
	keep(err)
	_, err = c.RecordEvent(ctx, client.Event{ID: canaries[0], HCPID: canaries[2], Type: arbiter.EventOpened,
		Channel: arbiter.Email, Topic: canaries[3], OccurredAt: now})
	keep(err)
	_, _, err = c.GetProfile(ctx, canaries[2])
	keep(err)
	_, _, err = c.ConsentHistory(ctx, canaries[1], 0, 10)
	keep(err)
	if len(errs) < 6 {
		t.Fatalf("only %d of the invalid calls failed: the canary needs their errors", len(errs))
	}
	// A decision that explains itself, for an HCP with the values stored.
	if _, err := c.Decide(ctx, "HCP-000001", client.DecideOptions{Explain: true, Limit: 50}); err != nil {
		t.Fatal(err)
	}

	metrics := scrape(t, "http://"+ts.MetricsAddr()+"/metrics")
	out := map[string]string{"logs": logs.String(), "metrics": metrics}
	for i, err := range errs {
		out["error "+string(rune('a'+i))] = status.Convert(err).Message() + " " + err.Error()
	}
	if !strings.Contains(out["logs"], "grpc.method") && !strings.Contains(out["logs"], "method") {
		t.Fatalf("the access log is empty: the canary would see nothing\n%s", out["logs"])
	}
	for where, text := range out {
		for _, c := range canaries {
			if strings.Contains(text, c) {
				t.Errorf("%s contains the planted value %q", where, c)
			}
		}
	}
}
