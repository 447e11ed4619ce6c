package server

import (
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
	for r := decision.Reason(1); int(r) < len(reasonCodes); r++ {
		if got, want := reasonCodes[r].String(), "SUPPRESSION_REASON_"+name(r.String()); got != want {
			t.Errorf("reason %d: proto %s, domain %s", r, got, want)
		}
	}
	if n := len(nbapb.SuppressionReason_name); n != len(reasonCodes) {
		t.Errorf("proto has %d suppression reasons, the mapping %d", n, len(reasonCodes))
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
