package client

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/arbiter-nba/arbiter"
)

func TestImportItemJSON(t *testing.T) {
	item := ImportItem{
		Profile: Profile{
			HCPID:      "HCP-000042",
			Specialty:  "cardiology",
			Market:     "US",
			Audience:   arbiter.HCP,
			TimeZone:   "America/Chicago",
			Addresses:  map[arbiter.Channel]string{arbiter.Email: "addr-e", arbiter.RepVisit: "addr-v"},
			Attributes: map[string]float64{"decile": 9},
			UpdatedAt:  t0,
		},
		Consents: []ConsentRecord{
			{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: ConsentOptIn, CapturedAt: t0, ExpiresAt: t1, Source: "veeva"},
			{Channel: arbiter.SMS, Status: ConsentBarred, CapturedAt: t0, Source: "veeva"},
		},
		ConsentComplete: true,
		CapturedBy:      "feed-nightly",
	}
	b, err := json.Marshal(item)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	const want = `{"profile":{"hcp_id":"HCP-000042","specialty":"cardiology","market":"US",` +
		`"time_zone":"America/Chicago","attributes":{"decile":9},"updated_at":"2026-03-14T09:30:00.123456789Z",` +
		`"audience":"hcp","addresses":{"email":"addr-e","rep_visit":"addr-v"}},` +
		`"consents":[{"status":"opt_in","captured_at":"2026-03-14T09:30:00.123456789Z",` +
		`"expires_at":"2026-06-12T09:30:00.123456789Z","source":"veeva","channel":"email","purpose":"promotional"},` +
		`{"status":"barred","captured_at":"2026-03-14T09:30:00.123456789Z","source":"veeva","channel":"sms"}],` +
		`"consent_complete":true,"captured_by":"feed-nightly"}`
	if string(b) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", b, want)
	}
	var got ImportItem
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(got, item) {
		t.Errorf("round trip =\n%+v\nwant\n%+v", got, item)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   any
		out  any // a pointer to a zero value of in's type
	}{
		{
			name: "decision",
			in: &Decision{
				ID: "d-1", At: t0, ModelVersion: "m", CatalogVersion: "c",
				Recommendations: []Recommendation{{
					Rank: 1, ActionID: "webinar", Channel: arbiter.Webinar, Purpose: arbiter.Medical,
					Score: 0.3, Propensity: 0.5, Value: 1, ContextWeight: 0.6,
					Contributions: []Contribution{{Feature: "engagement.webinar", Weight: 0.4}},
					Reason:        "Attended the last two webinars.",
				}},
				Suppressed: []Suppression{{ActionID: "sms", Reason: SuppressionConsentUnknown, Detail: "no marker"}},
			},
			out: &Decision{},
		},
		{
			name: "event",
			in: &Event{
				ID: "E1", HCPID: "HCP-1", Type: arbiter.EventUnsubscribed, Channel: arbiter.Email,
				ActionID: "a", Topic: "t", DecisionID: "d", OccurredAt: t0,
			},
			out: &Event{},
		},
		{
			name: "counters",
			in: &Counters{
				Channels: map[arbiter.Channel]ChannelCounters{
					arbiter.Email:  {Engagement: 1.5, Sent: 2, LastContact: t0},
					arbiter.Portal: {Engagement: 0.5},
				},
				Topics:         map[string]float64{"safety": 2},
				LastEngagement: t0,
			},
			out: &Counters{},
		},
		{name: "empty counters", in: &Counters{}, out: &Counters{}},
		{name: "empty profile", in: &Profile{HCPID: "HCP-1"}, out: &Profile{}},
		{
			name: "ledger entry",
			in: &LedgerEntry{
				Seq:        3,
				Record:     ConsentRecord{Channel: arbiter.Push, Purpose: arbiter.Service, Status: ConsentPending, CapturedAt: t0},
				RecordedAt: t1, Applied: true,
			},
			out: &LedgerEntry{},
		},
		{
			name: "consent state",
			in: &ConsentState{
				Complete: true, CompleteAt: t0,
				Records: []ConsentRecord{{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: ConsentOptOut}},
			},
			out: &ConsentState{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if err := json.Unmarshal(b, tt.out); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if !reflect.DeepEqual(tt.out, tt.in) {
				t.Errorf("round trip through %s =\n%+v\nwant\n%+v", b, tt.out, tt.in)
			}
		})
	}
}

func TestJSONEnumNames(t *testing.T) {
	b, err := json.Marshal(Event{ID: "E1", Type: arbiter.EventRepVisit, Channel: arbiter.RemoteVisit})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	for _, want := range []string{`"type":"rep_visit"`, `"channel":"remote_visit"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Marshal = %s, want it to contain %s", b, want)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		out     any
		wantErr string
	}{
		{"unknown channel", `{"channel":"fax","status":"opt_in"}`, &ConsentRecord{}, `unknown channel "fax"`},
		{"unknown purpose", `{"channel":"email","purpose":"marketing"}`, &ConsentRecord{}, `unknown purpose "marketing"`},
		{"unknown status", `{"channel":"email","status":"opt-in"}`, &ConsentRecord{}, `unknown consent status "opt-in"`},
		{"unknown audience", `{"hcp_id":"H","audience":"nurse"}`, &Profile{}, `unknown audience "nurse"`},
		{"unknown address channel", `{"hcp_id":"H","addresses":{"telex":"x"}}`, &Profile{}, `unknown channel "telex"`},
		{"unknown event type", `{"id":"E","type":"liked"}`, &Event{}, `unknown event type "liked"`},
		{"number for a channel", `{"channel":1}`, &ConsentRecord{}, "cannot unmarshal number"},
		{"bad time", `{"hcp_id":"H","updated_at":"yesterday"}`, &Profile{}, "cannot parse"},
		{"nested in an import item", `{"profile":{"hcp_id":"H"},"consents":[{"channel":"pager"}]}`, &ImportItem{}, `unknown channel "pager"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := json.Unmarshal([]byte(tt.json), tt.out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Unmarshal(%s) error = %v, want one containing %q", tt.json, err, tt.wantErr)
			}
		})
	}
}

func TestJSONMarshalInvalidEnum(t *testing.T) {
	_, err := json.Marshal(ConsentRecord{Channel: arbiter.Channel(200)})
	if err == nil || !strings.Contains(err.Error(), "invalid channel 200") {
		t.Errorf("Marshal of channel 200: error = %v, want invalid channel", err)
	}
}

func TestConsentStatusValid(t *testing.T) {
	for _, s := range []ConsentStatus{ConsentOptIn, ConsentOptOut, ConsentPending, ConsentBarred} {
		if !s.Valid() {
			t.Errorf("%q.Valid() = false, want true", s)
		}
	}
	for _, s := range []ConsentStatus{"", "unspecified", "OPT_IN", "opt-out"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true, want false", s)
		}
	}
}
