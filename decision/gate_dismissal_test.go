package decision

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/recipient"
)

// A rep's dismissal of an action as not relevant holds that action back
// for that recipient for DismissalPeriod from the dismissal, with its
// reason and clear time, in Decide and in CheckAll; other actions and
// older dismissals are not affected; and a replay from the receipt's
// inputs is the same decision.
func TestDismissalGate(t *testing.T) {
	ctx := context.Background()
	dismissedAt := now.Add(-10 * 24 * time.Hour)
	fresh := usCardiologist()
	fresh.Dismissals = []recipient.Dismissal{{ActionID: "rep-visit", At: dismissedAt, Principal: "rep-1"}}
	old := usCardiologist()
	old.Dismissals = []recipient.Dismissal{{ActionID: "rep-visit", At: now.Add(-DismissalPeriod)}}
	e := newEngine(t, map[string]*recipient.State{"fresh": fresh, "old": old, "none": usCardiologist()})

	req := Request{HCPID: "fresh", Limit: 5, Caller: arbiter.CallerRepTool, Explain: true}
	res, err := e.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(recommended(res), "rep-visit") {
		t.Errorf("recommended %v, want rep-visit held back", recommended(res))
	}
	var got *Suppression
	for i := range res.Suppressed {
		if res.Suppressed[i].ActionID == "rep-visit" {
			got = &res.Suppressed[i]
		}
	}
	switch {
	case got == nil:
		t.Fatalf("rep-visit is not among the suppressions %v", suppressedAs(res))
	case got.Reason != Dismissed:
		t.Errorf("rep-visit suppressed as %s, want %s", got.Reason, Dismissed)
	case !got.ClearsAt.Equal(dismissedAt.Add(DismissalPeriod)):
		t.Errorf("clears at %v, want %v", got.ClearsAt, dismissedAt.Add(DismissalPeriod))
	case !strings.Contains(got.Detail, "not relevant"):
		t.Errorf("detail %q, want it to say why", got.Detail)
	}
	// Other actions are decided as without the dismissal.
	base, err := e.Decide(ctx, Request{HCPID: "none", Limit: 5, Caller: arbiter.CallerRepTool})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(recommended(base), func(id string) bool { return id == "rep-visit" })
	if !slices.Contains(recommended(base), "rep-visit") {
		t.Fatalf("without a dismissal, rep-visit is not recommended (%v): the test proves nothing", recommended(base))
	}
	if g := recommended(res); !slices.Equal(g[:len(want)], want) {
		t.Errorf("recommended %v, want %v first", g, want)
	}
	// A dismissal DismissalPeriod old has cleared.
	if res, err := e.Decide(ctx, Request{HCPID: "old", Limit: 5, Caller: arbiter.CallerRepTool}); err != nil ||
		!slices.Contains(recommended(res), "rep-visit") {
		t.Errorf("a dismissal %s old: recommended %v (%v), want rep-visit again", DismissalPeriod, recommended(res), err)
	}
	// Every check says so too, and the block clears by itself.
	checks, err := e.CheckAll(ctx, Request{HCPID: "fresh", Candidates: []string{"rep-visit", "email-ok"}, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if b := checks[0].Blocks; len(b) != 1 || b[0].Reason != Dismissed || b[0].ClearsAt.IsZero() {
		t.Errorf("CheckAll(rep-visit) blocks = %+v, want one dismissal that clears", b)
	}
	if slices.ContainsFunc(checks[1].Blocks, func(b Block) bool { return b.Reason == Dismissed }) {
		t.Errorf("email-ok blocked as dismissed: %+v", checks[1].Blocks)
	}
	// At a time after it clears, the action is allowed again.
	later, err := e.CheckAll(ctx, Request{HCPID: "fresh", Candidates: []string{"rep-visit"}, At: dismissedAt.Add(DismissalPeriod)})
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(later[0].Blocks, func(b Block) bool { return b.Reason == Dismissed }) {
		t.Errorf("at its clear time, rep-visit still blocked: %+v", later[0].Blocks)
	}
	// The dismissals are part of the receipt's inputs: a replay makes the
	// same decision.
	again, _, err := e.Replay(ctx, &Receipt{Kind: KindDecide, Request: req, Result: res})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Suppressed, res.Suppressed) || !reflect.DeepEqual(recommended(again), recommended(res)) {
		t.Errorf("replay: %v / %v, want %v / %v", recommended(again), suppressedAs(again), recommended(res), suppressedAs(res))
	}
	if !slices.Contains(e.Reasons(), Dismissed) {
		t.Errorf("Reasons() = %v, want it to hold %s", e.Reasons(), Dismissed)
	}
}

// A critical service message is not held back by a dismissal, as it is
// not by the contact policy.
func TestDismissalGateCritical(t *testing.T) {
	st := usCardiologist()
	st.Dismissals = []recipient.Dismissal{{ActionID: "sms-critical", At: now.Add(-time.Hour)}}
	in := &GateInput{State: st, Request: &Request{}, At: now,
		Action: &catalog.Action{ID: "sms-critical", Channel: arbiter.SMS, Purpose: arbiter.Service, Critical: true}}
	var b Block
	if (dismissalGate{}).Check(in, &b) {
		t.Errorf("a critical message was held back: %+v", b)
	}
	in.Action.Critical = false
	if !(dismissalGate{}).Check(in, &b) || b.Reason != Dismissed {
		t.Errorf("the same message, not critical: %+v, want it held back", b)
	}
}

func TestTitle(t *testing.T) {
	for _, tt := range []struct {
		a    catalog.Action
		want string
	}{
		{catalog.Action{Channel: arbiter.Email, Topic: "cardiolex_efficacy"}, "Email: Cardiolex efficacy"},
		{catalog.Action{Channel: arbiter.RepVisit, Topic: "glucanor"}, "Rep visit: Glucanor"},
		{catalog.Action{Channel: arbiter.RepVisit}, "Rep visit"},
		{catalog.Action{Channel: arbiter.Email, Topic: "x", Title: "Cardiolex: the 5-year data"}, "Cardiolex: the 5-year data"},
	} {
		if got := Title(&tt.a); got != tt.want {
			t.Errorf("Title(%+v) = %q, want %q", tt.a, got, tt.want)
		}
	}
}
