package server

import (
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/scoring"
	"strings"
	"testing"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// The conversions cast enums; this test pins the shared numbering.
func TestEnumNumberingMatchesDomain(t *testing.T) {
	name := func(s string) string { return strings.ToUpper(s) }
	for c := arbiter.Channel(1); int(c) < arbiter.NumChannels; c++ {
		if got, want := nbapb.Channel(c).String(), "CHANNEL_"+name(c.String()); got != want {
			t.Errorf("channel %d: proto %s, domain %s", c, got, want)
		}
	}
	for p := arbiter.Purpose(1); int(p) < arbiter.NumPurposes; p++ {
		if got, want := nbapb.Purpose(p).String(), "PURPOSE_"+name(p.String()); got != want {
			t.Errorf("purpose %d: proto %s, domain %s", p, got, want)
		}
	}
	for k := arbiter.CallerKind(1); int(k) < arbiter.NumCallerKinds; k++ {
		if got, want := nbapb.CallerKind(k).String(), "CALLER_KIND_"+name(k.String()); got != want {
			t.Errorf("caller %d: proto %s, domain %s", k, got, want)
		}
	}
	for e := arbiter.EventType(1); e.Valid(); e++ {
		if got, want := nbapb.EventType(e).String(), "EVENT_TYPE_"+name(e.String()); got != want {
			t.Errorf("event %d: proto %s, domain %s", e, got, want)
		}
	}
	for a := arbiter.Audience(1); a.Valid(); a++ {
		if got, want := nbapb.Audience(a).String(), "AUDIENCE_"+name(a.String()); got != want {
			t.Errorf("audience %d: proto %s, domain %s", a, got, want)
		}
	}
	for s := consent.Status(1); s.Valid(); s++ {
		if got, want := nbapb.ConsentStatus(s).String(), "CONSENT_STATUS_"+name(s.String()); got != want {
			t.Errorf("consent status %d: proto %s, domain %s", s, got, want)
		}
	}
}

// TestEveryReasonHasACode: every reason the engine's gates can block with
// has its SuppressionReason, by name. A gate with a new reason fails here
// until the proto has its enum line.
func TestEveryReasonHasACode(t *testing.T) {
	e, err := decision.New(oneHCP{}, scoring.Demo(), catalog.Demo(), consent.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	reasons := e.Reasons()
	if len(reasons) < 10 {
		t.Fatalf("the engine lists %d reasons, want the built-in gates' ten at least", len(reasons))
	}
	for _, r := range reasons {
		code := reasonCode(r)
		if code == nbapb.SuppressionReason_SUPPRESSION_REASON_UNSPECIFIED {
			t.Errorf("reason %s has no SuppressionReason: add SUPPRESSION_REASON_%s to nba.proto", r, strings.ToUpper(r.String()))
			continue
		}
		if got := reasonOf(code.String()); got != r {
			t.Errorf("reason %s maps to %s, which maps back to %s", r, code, got)
		}
	}
	if got := reasonCode("no_such_reason"); got != nbapb.SuppressionReason_SUPPRESSION_REASON_UNSPECIFIED {
		t.Errorf("an unknown reason maps to %s, want UNSPECIFIED", got)
	}
}

func TestOutOfRangeEnumsAreUnspecified(t *testing.T) {
	if got := fromChannel(99); got.Valid() {
		t.Errorf("fromChannel(99) = %v, want unspecified", got)
	}
	if got := fromChannel(-1); got.Valid() {
		t.Errorf("fromChannel(-1) = %v, want unspecified", got)
	}
	if got := fromPurpose(42); got.Valid() {
		t.Errorf("fromPurpose(42) = %v, want unspecified", got)
	}
	if got := fromStatus(42); got.Valid() {
		t.Errorf("fromStatus(42) = %v, want unspecified", got)
	}
	if got := fromEventType(42); got.Valid() {
		t.Errorf("fromEventType(42) = %v, want unspecified", got)
	}
}
