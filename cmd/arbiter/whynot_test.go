package main

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

// WhyNot names every gate that blocks an action, not only the first, with
// when each clears; where every block clears by itself, the action is
// allowed at that time; it agrees with the decision's own suppression.
func TestWhyNot(t *testing.T) {
	ts := start(t, singleRedis(t), 1)
	c := ts.client
	ctx := context.Background()
	const action = "email-cardiolex-efficacy"
	sent := ms(time.Now().Add(-time.Hour))
	emailed := func(id string) {
		recordTouch(t, c, client.Event{ID: id + "-sent", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Email,
			ActionID: "email-cardiolex-dosing", MessageID: id + "-msg", OccurredAt: sent})
	}

	// Opted out, and emailed an hour ago: two blocks, one for good.
	optOut := optIn(arbiter.Email, arbiter.Promotional)
	optOut.Status = client.ConsentOptOut
	addRecipient(t, c, "WHYNOT-1", "America/New_York", arbiter.HCP, optOut)
	emailed("WHYNOT-1")
	a, err := c.WhyNot(ctx, "WHYNOT-1", action, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[client.SuppressionReason]client.Suppression{}
	for _, b := range a.Blocks {
		reasons[b.Reason] = b
	}
	if a.Allowed || len(reasons) != 2 || reasons[client.SuppressionNoConsent].Detail == "" ||
		!reasons[client.SuppressionNoConsent].ClearsAt.IsZero() || !reasons[client.SuppressionMinGap].ClearsAt.Equal(sent.Add(48*time.Hour)) {
		t.Fatalf("opted out and emailed: %+v; want NO_CONSENT (not by itself) and MIN_GAP (sent + 48h)", a)
	}
	if !a.ClearsAt.IsZero() {
		t.Errorf("clears at %v, want none: the opt-out does not clear by itself", a.ClearsAt)
	}
	d, err := c.Decide(ctx, "WHYNOT-1", client.DecideOptions{Limit: 1, Candidates: []string{action}})
	if err != nil || len(d.Suppressed) != 1 || d.Suppressed[0].Reason != a.Blocks[0].Reason {
		t.Errorf("Decide's suppression %+v, %v; want WhyNot's first block, %s", d.Suppressed, err, a.Blocks[0].Reason)
	}

	// Only emailed: the block clears, and at that time the action is allowed.
	addRecipient(t, c, "WHYNOT-2", "America/New_York", arbiter.HCP)
	emailed("WHYNOT-2")
	a, err = c.WhyNot(ctx, "WHYNOT-2", action, time.Time{})
	if err != nil || a.Allowed || !a.ClearsAt.Equal(sent.Add(48*time.Hour)) {
		t.Fatalf("emailed: %+v, %v; want blocked until sent + 48h", a, err)
	}
	if a, err = c.WhyNot(ctx, "WHYNOT-2", action, a.ClearsAt); err != nil || !a.Allowed {
		t.Errorf("at the clear time: %+v, %v; want allowed", a, err)
	}

	// The caller's mistakes.
	for _, tt := range []struct {
		name, id, action string
		at               time.Time
		field            string
	}{
		{"before 1970", "WHYNOT-2", action, time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), "at"},
		{"an unknown action", "WHYNOT-2", "no-such-action", time.Time{}, "action_id"},
		{"no action", "WHYNOT-2", "", time.Time{}, "action_id"},
	} {
		_, err := c.WhyNot(ctx, tt.id, tt.action, tt.at)
		if status.Code(err) != codes.InvalidArgument || client.FieldViolations(err)[tt.field] == "" {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tt.name, err, tt.field)
		}
	}
	if _, err := c.WhyNot(ctx, "WHYNOT-NOBODY", action, time.Time{}); status.Code(err) != codes.NotFound {
		t.Errorf("an unknown recipient: %v, want NotFound", err)
	}
	if _, err := c.WhyNot(ctx, "WHYNOT-2", action, time.Now().Add(-time.Hour)); status.Code(err) != codes.NotFound {
		t.Errorf("a past time before any logged decision: %v, want NotFound", err)
	}
}

// WhyNot as of a past time answers with what the server knew then: the
// recipient's state from their last logged decision before it, and their
// consent as the ledger stood at that time, not as it stands now.
func TestWhyNotAsOfAPastTime(t *testing.T) {
	// The server's clock runs ten minutes ahead, so that what happens in
	// the test is, for the server, already in the past.
	ahead := func() time.Time { return time.Now().Add(10 * time.Minute) }
	ts := startWith(t, singleRedis(t), 1, io.Discard, func(m *Main) { m.clock = ahead }, "-receipts", "sync")
	c := ts.client
	ctx := context.Background()
	const id, action = "ASOF-1", "email-cardiolex-efficacy"
	consented := optIn(arbiter.Email, arbiter.Promotional)
	consented.CapturedAt = ms(time.Now().Add(-48 * time.Hour))
	addRecipient(t, c, id, "America/New_York", arbiter.HCP, consented)
	d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 1, Candidates: []string{action}})
	if err != nil || len(d.Recommendations) != 1 {
		t.Fatalf("decide: %+v, %v; want %s recommended", d, err, action)
	}
	for !ms(time.Now()).After(ms(d.At)) { // the opt-out is recorded a millisecond or more after the decision
		runtime.Gosched()
	}
	out, err := c.Unsubscribe(ctx, id, client.ChannelChange{Channel: arbiter.Email, CapturedAt: ms(time.Now()), Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if !out.RecordedAt.After(ms(d.At)) {
		t.Fatalf("the opt-out was recorded at %v, not after the decision (%v)", out.RecordedAt, d.At)
	}
	if now, err := c.WhyNot(ctx, id, action, time.Time{}); err != nil || now.Allowed {
		t.Fatalf("now, after the opt-out: %+v, %v; want blocked", now, err)
	}
	then, err := c.WhyNot(ctx, id, action, d.At)
	if err != nil || !then.Allowed || then.AsOfDecisionID != d.ID {
		t.Fatalf("as of the decision, before the opt-out was known: %+v, %v; want allowed, from receipt %s", then, err, d.ID)
	}
	after, err := c.WhyNot(ctx, id, action, out.RecordedAt)
	if err != nil || after.Allowed || len(after.Blocks) == 0 || after.Blocks[0].Reason != client.SuppressionNoConsent || after.AsOfDecisionID != d.ID {
		t.Fatalf("as of the opt-out's recording: %+v, %v; want NO_CONSENT, from receipt %s", after, err, d.ID)
	}
	if _, err := c.WhyNot(ctx, id, action, d.At.Add(-time.Second)); status.Code(err) != codes.NotFound {
		t.Errorf("before the first logged decision: %v, want NOT_FOUND", err)
	}
}
