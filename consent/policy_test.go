package consent

import (
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
)

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name, json string
		want       string // a substring of the error
	}{
		{"not json", `{"markets": `, "consent: parse policy: unexpected EOF"},
		{"unknown top-level field", `{"market": {"US": {"email": "opt_out"}}}`, `unknown field "market"`},
		{"trailing data", `{"markets": {}} {}`, "unexpected data after the policy object"},
		{"empty market", `{"markets": {"": {"email": "opt_out"}}}`, "empty market code"},
		{"market with spaces", `{"markets": {"US ": {"email": "opt_out"}}}`, `market "US ": code has surrounding spaces`},
		{"unknown channel", `{"markets": {"US": {"emial": "opt_out"}}}`, `market "US": unknown channel "emial"`},
		{"unspecified channel", `{"markets": {"US": {"unspecified": "opt_out"}}}`, `market "US": unknown channel "unspecified"`},
		{"unknown default", `{"markets": {"EU": {"sms": "optout"}}}`,
			`market "EU": channel "sms": unknown default "optout" (want "opt_in" or "opt_out")`},
		{"default not a string", `{"markets": {"EU": {"sms": true}}}`, "cannot unmarshal bool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.json))
			if err == nil {
				t.Fatalf("ParsePolicy() = %v, nil; want an error containing %q", p, tt.want)
			}
			if got := err.Error(); !strings.Contains(got, tt.want) {
				t.Errorf("ParsePolicy() error = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"markets": {"US": {"email": "opt_out", "sms": "opt_in"}, "JP": {}}}`))
	if err != nil {
		t.Fatalf("ParsePolicy() error = %v", err)
	}
	tests := []struct {
		market string
		ch     arbiter.Channel
		want   Default
	}{
		{"US", arbiter.Email, OptOutDefault},
		{"US", arbiter.SMS, OptInRequired},
		{"US", arbiter.Push, OptInRequired},  // not configured
		{"us", arbiter.Email, OptInRequired}, // market codes compare exactly
		{"JP", arbiter.Email, OptInRequired},
		{"FR", arbiter.Email, OptInRequired},
		{"US", arbiter.ChannelUnspecified, OptInRequired},
	}
	for _, tt := range tests {
		if got := p.defaultFor(tt.market, tt.ch); got != tt.want {
			t.Errorf("default for %s %s = %s, want %s", tt.market, tt.ch, got, tt.want)
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	optOut := map[string][]arbiter.Channel{
		"US": {arbiter.Email, arbiter.RepVisit, arbiter.RemoteVisit, arbiter.MSLMeeting, arbiter.Webinar, arbiter.Portal, arbiter.DirectMail, arbiter.Chatbot},
		"EU": {arbiter.RepVisit, arbiter.RemoteVisit, arbiter.MSLMeeting, arbiter.DirectMail},
		"JP": nil,
	}
	for market, chans := range optOut {
		for _, c := range arbiter.Channels() {
			want := OptInRequired
			for _, o := range chans {
				if c == o {
					want = OptOutDefault
				}
			}
			if got := p.defaultFor(market, c); got != want {
				t.Errorf("DefaultPolicy: %s %s = %s, want %s", market, c, got, want)
			}
		}
	}
}

// Of two records of a scope captured together with the same status, the
// one expiring first stands, in either order; no expiry is the latest.
func TestSupersedesAtEqualCaptureAndStatus(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	never := Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: OptIn, CapturedAt: at}
	soon, later := never, never
	soon.ExpiresAt, later.ExpiresAt = at.AddDate(0, 1, 0), at.AddDate(0, 2, 0)
	for _, tt := range []struct {
		name   string
		r, cur Record
		want   bool
	}{
		{"expiring over never", soon, never, true},
		{"never over expiring", never, soon, false},
		{"sooner over later", soon, later, true},
		{"later over sooner", later, soon, false},
		{"the same again", soon, soon, false},
	} {
		if got := Supersedes(&tt.r, &tt.cur); got != tt.want {
			t.Errorf("%s: Supersedes = %v, want %v", tt.name, got, tt.want)
		}
	}
}
