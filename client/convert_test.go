package client

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

var (
	t0 = time.Date(2026, 3, 14, 9, 30, 0, 123456789, time.UTC)
	t1 = t0.Add(90 * 24 * time.Hour)
)

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// checkEnum holds an arbiter enum and its proto twin together: every proto
// value but the unspecified one has an arbiter value with the same number
// and name, every valid arbiter value has a proto value, and numbers the
// client does not know convert to the zero value.
func checkEnum[E enum](t *testing.T, prefix string, pbNames map[int32]string) {
	t.Helper()
	for n, name := range pbNames {
		if n == 0 {
			continue
		}
		e := fromPB[E](n)
		if !e.Valid() {
			t.Errorf("fromPB(%s) = %d, not a valid value", name, e)
			continue
		}
		if int32(e) != n {
			t.Errorf("fromPB(%s) = %d, want %d", name, e, n)
		}
		if want := prefix + strings.ToUpper(e.String()); name != want {
			t.Errorf("arbiter value %d is %q, proto value is %s, want %s", n, e, name, want)
		}
	}
	for n := 1; n <= math.MaxUint8; n++ {
		if E(n).Valid() {
			if _, ok := pbNames[int32(n)]; !ok {
				t.Errorf("arbiter value %d (%v) has no proto value", n, E(n))
			}
		}
	}
	for _, n := range []int32{-1, int32(len(pbNames)), 257, math.MaxInt32} {
		if got := fromPB[E](n); got != 0 {
			t.Errorf("fromPB(%d) = %v, want the zero value", n, got)
		}
	}
}

func TestEnumNumbering(t *testing.T) {
	t.Run("channel", func(t *testing.T) { checkEnum[arbiter.Channel](t, "CHANNEL_", nbapb.Channel_name) })
	t.Run("purpose", func(t *testing.T) { checkEnum[arbiter.Purpose](t, "PURPOSE_", nbapb.Purpose_name) })
	t.Run("audience", func(t *testing.T) { checkEnum[arbiter.Audience](t, "AUDIENCE_", nbapb.Audience_name) })
	t.Run("caller kind", func(t *testing.T) { checkEnum[arbiter.CallerKind](t, "CALLER_KIND_", nbapb.CallerKind_name) })
	t.Run("event type", func(t *testing.T) { checkEnum[arbiter.EventType](t, "EVENT_TYPE_", nbapb.EventType_name) })
	t.Run("dismiss reason", func(t *testing.T) { checkEnum[arbiter.DismissReason](t, "DISMISS_REASON_", nbapb.DismissReason_name) })
}

func TestConsentStatusConversion(t *testing.T) {
	for n, name := range nbapb.ConsentStatus_name {
		pb := nbapb.ConsentStatus(n)
		s := consentStatusFromPB(pb)
		if n == 0 {
			if s != "" {
				t.Errorf("consentStatusFromPB(%s) = %q, want empty", name, s)
			}
			continue
		}
		if !s.Valid() {
			t.Errorf("consentStatusFromPB(%s) = %q, not a valid status", name, s)
		}
		if want := "CONSENT_STATUS_" + strings.ToUpper(string(s)); name != want {
			t.Errorf("status %q converts to %s, want %s", s, name, want)
		}
		if got := consentStatusToPB(s); got != pb {
			t.Errorf("consentStatusToPB(%q) = %v, want %v", s, got, pb)
		}
	}
	for _, s := range []ConsentStatus{"", "opt-in", "OPT_IN", "unspecified"} {
		if got := consentStatusToPB(s); got != nbapb.ConsentStatus_CONSENT_STATUS_UNSPECIFIED {
			t.Errorf("consentStatusToPB(%q) = %v, want unspecified", s, got)
		}
	}
	if got := consentStatusFromPB(42); got != "" {
		t.Errorf("consentStatusFromPB(42) = %q, want empty", got)
	}
}

func TestSuppressionReasonFromPB(t *testing.T) {
	constants := map[SuppressionReason]bool{
		SuppressionNoConsent: true, SuppressionConsentExpired: true,
		SuppressionConsentPending: true, SuppressionConsentUnknown: true,
		SuppressionChannelBarred: true, SuppressionContentNotApproved: true,
		SuppressionContentExpired: true, SuppressionNotEligible: true,
		SuppressionChannelNotRequested: true, SuppressionFrequencyCap: true,
		SuppressionMinGap: true, SuppressionQuietHours: true, SuppressionRule: true,
		SuppressionJourneyWait: true, SuppressionJourney: true, SuppressionDismissed: true,
	}
	seen := make(map[SuppressionReason]bool)
	for n, name := range nbapb.SuppressionReason_name {
		if n == 0 {
			continue
		}
		got := suppressionReasonFromPB(nbapb.SuppressionReason(n))
		if want := SuppressionReason(strings.TrimPrefix(name, "SUPPRESSION_REASON_")); got != want {
			t.Errorf("suppressionReasonFromPB(%s) = %q, want %q", name, got, want)
		}
		if !constants[got] {
			t.Errorf("suppressionReasonFromPB(%s) = %q, which is no exported constant", name, got)
		}
		seen[got] = true
	}
	for c := range constants {
		if !seen[c] {
			t.Errorf("constant %q matches no proto value", c)
		}
	}
	for _, tt := range []struct {
		in   nbapb.SuppressionReason
		want SuppressionReason
	}{
		{nbapb.SuppressionReason_SUPPRESSION_REASON_UNSPECIFIED, "UNSPECIFIED"},
		{99, "99"},
		{-1, "-1"},
	} {
		if got := suppressionReasonFromPB(tt.in); got != tt.want {
			t.Errorf("suppressionReasonFromPB(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecideRequestToPB(t *testing.T) {
	tests := []struct {
		name  string
		hcpID string
		opts  DecideOptions
		want  *nbapb.DecideRequest
	}{
		{
			name:  "defaults",
			hcpID: "HCP-000042",
			want: &nbapb.DecideRequest{
				HcpId:   "HCP-000042",
				Context: &nbapb.DecisionContext{},
			},
		},
		{
			name:  "every option",
			hcpID: "HCP-000042",
			opts: DecideOptions{
				Limit:      5,
				Candidates: []string{"email-efficacy", "rep-visit"},
				Caller:     arbiter.CallerMarketingPlatform,
				At:         t0,
				Channels:   []arbiter.Channel{arbiter.Email, arbiter.SMS},
				Explain:    true,
			},
			want: &nbapb.DecideRequest{
				HcpId:      "HCP-000042",
				Limit:      5,
				Candidates: []string{"email-efficacy", "rep-visit"},
				Context: &nbapb.DecisionContext{
					Caller:       nbapb.CallerKind_CALLER_KIND_MARKETING_PLATFORM,
					DecisionTime: ts(t0),
					Channels:     []nbapb.Channel{nbapb.Channel_CHANNEL_EMAIL, nbapb.Channel_CHANNEL_SMS},
				},
				Explain: true,
			},
		},
		{
			name:  "limit beyond int32 saturates",
			hcpID: "HCP-1",
			opts:  DecideOptions{Limit: math.MaxInt32 + 4},
			want: &nbapb.DecideRequest{
				HcpId:   "HCP-1",
				Limit:   math.MaxInt32,
				Context: &nbapb.DecisionContext{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideRequestToPB(tt.hcpID, tt.opts)
			if !proto.Equal(got, tt.want) {
				t.Errorf("decideRequestToPB() =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestDecisionFromPB(t *testing.T) {
	tests := []struct {
		name string
		in   *nbapb.DecideResponse
		want *Decision
	}{
		{
			name: "empty",
			in:   &nbapb.DecideResponse{DecisionId: "d-1"},
			want: &Decision{ID: "d-1"},
		},
		{
			name: "explained",
			in: &nbapb.DecideResponse{
				DecisionId:     "d-2",
				DecisionTime:   ts(t0),
				ModelVersion:   "m-7",
				CatalogVersion: "c-3",
				Recommendations: []*nbapb.Recommendation{{
					Rank:          1,
					ActionId:      "email-efficacy",
					Channel:       nbapb.Channel_CHANNEL_EMAIL,
					ContentId:     "CNT-9",
					Topic:         "efficacy",
					Purpose:       nbapb.Purpose_PURPOSE_PROMOTIONAL,
					Score:         0.42,
					Propensity:    0.6,
					Value:         1,
					ContextWeight: 0.7,
					Contributions: []*nbapb.Contribution{
						{Feature: "engagement.email", Weight: 0.8},
						{Feature: "topic_affinity", Weight: -0.1},
					},
					Reason: "Opens most efficacy emails.",
				}, {
					Rank:     2,
					ActionId: "msl-meeting",
					Channel:  nbapb.Channel_CHANNEL_MSL_MEETING,
					Purpose:  nbapb.Purpose_PURPOSE_MEDICAL,
					Score:    0.2,
				}},
				Suppressed: []*nbapb.Suppression{
					{ActionId: "sms-reminder", Reason: nbapb.SuppressionReason_SUPPRESSION_REASON_NO_CONSENT, Detail: "no sms opt-in"},
					{ActionId: "webinar", Reason: nbapb.SuppressionReason_SUPPRESSION_REASON_FREQUENCY_CAP},
				},
			},
			want: &Decision{
				ID:             "d-2",
				At:             t0,
				ModelVersion:   "m-7",
				CatalogVersion: "c-3",
				Recommendations: []Recommendation{{
					Rank:          1,
					ActionID:      "email-efficacy",
					Channel:       arbiter.Email,
					ContentID:     "CNT-9",
					Topic:         "efficacy",
					Purpose:       arbiter.Promotional,
					Score:         0.42,
					Propensity:    0.6,
					Value:         1,
					ContextWeight: 0.7,
					Contributions: []Contribution{
						{Feature: "engagement.email", Weight: 0.8},
						{Feature: "topic_affinity", Weight: -0.1},
					},
					Reason: "Opens most efficacy emails.",
				}, {
					Rank:     2,
					ActionID: "msl-meeting",
					Channel:  arbiter.MSLMeeting,
					Purpose:  arbiter.Medical,
					Score:    0.2,
				}},
				Suppressed: []Suppression{
					{ActionID: "sms-reminder", Reason: SuppressionNoConsent, Detail: "no sms opt-in"},
					{ActionID: "webinar", Reason: SuppressionFrequencyCap},
				},
			},
		},
		{
			name: "channel and purpose from a newer server",
			in: &nbapb.DecideResponse{Recommendations: []*nbapb.Recommendation{
				{ActionId: "hologram", Channel: 77, Purpose: 9},
			}},
			want: &Decision{Recommendations: []Recommendation{{ActionID: "hologram"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decisionFromPB(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decisionFromPB() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestEventToPB(t *testing.T) {
	tests := []struct {
		name string
		in   Event
		want *nbapb.Event
	}{
		{
			name: "minimal",
			in:   Event{ID: "E1", HCPID: "HCP-1", Type: arbiter.EventSent, Channel: arbiter.Email},
			want: &nbapb.Event{
				EventId: "E1", HcpId: "HCP-1",
				Type: nbapb.EventType_EVENT_TYPE_SENT, Channel: nbapb.Channel_CHANNEL_EMAIL,
			},
		},
		{
			name: "full",
			in: Event{
				ID: "E2", HCPID: "HCP-1", Type: arbiter.EventMSLMeeting, Channel: arbiter.MSLMeeting,
				ActionID: "msl-meeting", Topic: "safety", DecisionID: "d-2", OccurredAt: t0,
			},
			want: &nbapb.Event{
				EventId: "E2", HcpId: "HCP-1",
				Type: nbapb.EventType_EVENT_TYPE_MSL_MEETING, Channel: nbapb.Channel_CHANNEL_MSL_MEETING,
				ActionId: "msl-meeting", Topic: "safety", DecisionId: "d-2", OccurredAt: ts(t0),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := eventToPB(tt.in); !proto.Equal(got, tt.want) {
				t.Errorf("eventToPB() =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestProfileRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		in     Profile
		wantPB *nbapb.Profile
	}{
		{
			name:   "minimal",
			in:     Profile{HCPID: "HCP-1"},
			wantPB: &nbapb.Profile{HcpId: "HCP-1"},
		},
		{
			name: "full",
			in: Profile{
				HCPID:     "HCP-000042",
				Specialty: "oncology",
				Market:    "EU",
				Audience:  arbiter.HCP,
				Segment:   "scientific_first",
				TimeZone:  "Europe/Berlin",
				Addresses: map[arbiter.Channel]string{
					arbiter.SMS:        "addr-sms-1",
					arbiter.Email:      "addr-email-1",
					arbiter.DirectMail: "addr-post-1",
				},
				Attributes: map[string]float64{"decile": 7, "kol": 1},
				UpdatedAt:  t0,
			},
			wantPB: &nbapb.Profile{
				HcpId:     "HCP-000042",
				Specialty: "oncology",
				Market:    "EU",
				Audience:  nbapb.Audience_AUDIENCE_HCP,
				Segment:   "scientific_first",
				TimeZone:  "Europe/Berlin",
				Addresses: []*nbapb.ChannelAddress{ // in channel order
					{Channel: nbapb.Channel_CHANNEL_EMAIL, AddressRef: "addr-email-1"},
					{Channel: nbapb.Channel_CHANNEL_SMS, AddressRef: "addr-sms-1"},
					{Channel: nbapb.Channel_CHANNEL_DIRECT_MAIL, AddressRef: "addr-post-1"},
				},
				Attributes: map[string]float64{"decile": 7, "kol": 1},
				UpdatedAt:  ts(t0),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := profileToPB(tt.in)
			if !proto.Equal(pb, tt.wantPB) {
				t.Errorf("profileToPB() =\n%v\nwant\n%v", pb, tt.wantPB)
			}
			if got := profileFromPB(pb); !reflect.DeepEqual(*got, tt.in) {
				t.Errorf("profileFromPB(profileToPB(p)) =\n%+v\nwant\n%+v", *got, tt.in)
			}
		})
	}
}

func TestProfileFromPBDropsUnknownChannels(t *testing.T) {
	got := profileFromPB(&nbapb.Profile{
		HcpId: "HCP-1",
		Addresses: []*nbapb.ChannelAddress{
			{Channel: nbapb.Channel_CHANNEL_UNSPECIFIED, AddressRef: "a"},
			{Channel: 99, AddressRef: "b"},
			{Channel: nbapb.Channel_CHANNEL_PUSH, AddressRef: "c"},
		},
	})
	want := map[arbiter.Channel]string{arbiter.Push: "c"}
	if !reflect.DeepEqual(got.Addresses, want) {
		t.Errorf("Addresses = %v, want %v", got.Addresses, want)
	}
}

func TestCountersFromPB(t *testing.T) {
	tests := []struct {
		name string
		in   *nbapb.Counters
		want *Counters
	}{
		{name: "absent", in: nil, want: &Counters{}},
		{name: "empty", in: &nbapb.Counters{}, want: &Counters{}},
		{
			name: "full",
			in: &nbapb.Counters{
				Channels: []*nbapb.ChannelCounters{
					{Channel: nbapb.Channel_CHANNEL_EMAIL, Engagement: 2.5, Sent: 4, LastContact: ts(t0)},
					{Channel: nbapb.Channel_CHANNEL_REP_VISIT, Engagement: 3},
					{Channel: 99, Engagement: 1},
				},
				Topics:         map[string]float64{"efficacy": 1.5},
				LastEngagement: ts(t1),
			},
			want: &Counters{
				Channels: map[arbiter.Channel]ChannelCounters{
					arbiter.Email:    {Engagement: 2.5, Sent: 4, LastContact: t0},
					arbiter.RepVisit: {Engagement: 3},
				},
				Topics:         map[string]float64{"efficacy": 1.5},
				LastEngagement: t1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := countersFromPB(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("countersFromPB() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestConsentRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		in     ConsentRecord
		wantPB *nbapb.ConsentRecord
	}{
		{
			name: "address-level opt-in with expiry",
			in: ConsentRecord{
				Channel:    arbiter.Email,
				Purpose:    arbiter.Promotional,
				Topic:      "oncology-brand-x",
				AddressRef: "addr-email-1",
				Status:     ConsentOptIn,
				CapturedAt: t0,
				ExpiresAt:  t1,
				Source:     "veeva",
				CapturedBy: "rep-118",
			},
			wantPB: &nbapb.ConsentRecord{
				Channel:    nbapb.Channel_CHANNEL_EMAIL,
				Purpose:    nbapb.Purpose_PURPOSE_PROMOTIONAL,
				Topic:      "oncology-brand-x",
				AddressRef: "addr-email-1",
				Status:     nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN,
				CapturedAt: ts(t0),
				ExpiresAt:  ts(t1),
				Source:     "veeva",
				CapturedBy: "rep-118",
			},
		},
		{
			name: "channel barred",
			in:   ConsentRecord{Channel: arbiter.SMS, Status: ConsentBarred, CapturedAt: t0, Source: "crm"},
			wantPB: &nbapb.ConsentRecord{
				Channel:    nbapb.Channel_CHANNEL_SMS,
				Status:     nbapb.ConsentStatus_CONSENT_STATUS_BARRED,
				CapturedAt: ts(t0),
				Source:     "crm",
			},
		},
		{
			name:   "empty",
			in:     ConsentRecord{},
			wantPB: &nbapb.ConsentRecord{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := consentRecordToPB(tt.in)
			if !proto.Equal(pb, tt.wantPB) {
				t.Errorf("consentRecordToPB() =\n%v\nwant\n%v", pb, tt.wantPB)
			}
			if got := consentRecordFromPB(pb); got != tt.in {
				t.Errorf("consentRecordFromPB(consentRecordToPB(r)) =\n%+v\nwant\n%+v", got, tt.in)
			}
		})
	}
}

func TestSetConsentRequestToPB(t *testing.T) {
	r := ConsentRecord{Channel: arbiter.Email, Purpose: arbiter.Medical, Status: ConsentOptOut, CapturedAt: t0, Source: "crm"}
	got := setConsentRequestToPB("HCP-1", r, true)
	want := &nbapb.SetConsentRequest{
		HcpId: "HCP-1",
		Record: &nbapb.ConsentRecord{
			Channel: nbapb.Channel_CHANNEL_EMAIL, Purpose: nbapb.Purpose_PURPOSE_MEDICAL,
			Status: nbapb.ConsentStatus_CONSENT_STATUS_OPT_OUT, CapturedAt: ts(t0), Source: "crm",
		},
		MarkComplete: true,
	}
	if !proto.Equal(got, want) {
		t.Errorf("setConsentRequestToPB() =\n%v\nwant\n%v", got, want)
	}
}

func TestLedgerEntriesFromPB(t *testing.T) {
	tests := []struct {
		name string
		in   []*nbapb.LedgerEntry
		want []LedgerEntry
	}{
		{name: "none", in: nil, want: nil},
		{
			name: "two",
			in: []*nbapb.LedgerEntry{
				{
					Seq: 1,
					Record: &nbapb.ConsentRecord{
						Channel: nbapb.Channel_CHANNEL_EMAIL, Purpose: nbapb.Purpose_PURPOSE_PROMOTIONAL,
						Status: nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN, CapturedAt: ts(t0),
					},
					RecordedAt: ts(t0.Add(time.Second)), Applied: true, MarkedComplete: true,
				},
				{Seq: 2, RecordedAt: ts(t1)},
			},
			want: []LedgerEntry{
				{
					Seq: 1,
					Record: ConsentRecord{
						Channel: arbiter.Email, Purpose: arbiter.Promotional,
						Status: ConsentOptIn, CapturedAt: t0,
					},
					RecordedAt: t0.Add(time.Second), Applied: true, MarkedComplete: true,
				},
				{Seq: 2, RecordedAt: t1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ledgerEntriesFromPB(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ledgerEntriesFromPB() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestConsentStateFromPB(t *testing.T) {
	tests := []struct {
		name string
		in   *nbapb.GetConsentResponse
		want *ConsentState
	}{
		{name: "unknown HCP", in: &nbapb.GetConsentResponse{}, want: &ConsentState{}},
		{
			name: "complete",
			in: &nbapb.GetConsentResponse{
				Complete:   true,
				CompleteAt: ts(t0),
				Records: []*nbapb.ConsentRecord{
					{Channel: nbapb.Channel_CHANNEL_SMS, Status: nbapb.ConsentStatus_CONSENT_STATUS_BARRED},
				},
			},
			want: &ConsentState{
				Complete:   true,
				CompleteAt: t0,
				Records:    []ConsentRecord{{Channel: arbiter.SMS, Status: ConsentBarred}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := consentStateFromPB(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("consentStateFromPB() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestImportItemToPB(t *testing.T) {
	tests := []struct {
		name string
		in   ImportItem
		want *nbapb.ImportProfilesRequest
	}{
		{
			name: "profile only",
			in:   ImportItem{Profile: Profile{HCPID: "HCP-1"}},
			want: &nbapb.ImportProfilesRequest{Profile: &nbapb.Profile{HcpId: "HCP-1"}},
		},
		{
			name: "with complete consent",
			in: ImportItem{
				Profile: Profile{HCPID: "HCP-2", Market: "US", Audience: arbiter.HCP},
				Consents: []ConsentRecord{
					{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: ConsentOptIn, CapturedAt: t0, Source: "veeva"},
					{Channel: arbiter.SMS, Status: ConsentBarred, CapturedAt: t0, Source: "veeva"},
				},
				ConsentComplete: true,
				CapturedBy:      "feed-nightly",
			},
			want: &nbapb.ImportProfilesRequest{
				Profile: &nbapb.Profile{HcpId: "HCP-2", Market: "US", Audience: nbapb.Audience_AUDIENCE_HCP},
				Consents: []*nbapb.ConsentRecord{
					{
						Channel: nbapb.Channel_CHANNEL_EMAIL, Purpose: nbapb.Purpose_PURPOSE_PROMOTIONAL,
						Status: nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN, CapturedAt: ts(t0), Source: "veeva",
					},
					{
						Channel: nbapb.Channel_CHANNEL_SMS,
						Status:  nbapb.ConsentStatus_CONSENT_STATUS_BARRED, CapturedAt: ts(t0), Source: "veeva",
					},
				},
				ConsentComplete: true,
				CapturedBy:      "feed-nightly",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := importItemToPB(tt.in); !proto.Equal(got, tt.want) {
				t.Errorf("importItemToPB() =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestTimeConversion(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		in   time.Time
		want time.Time // after the round trip
	}{
		{name: "zero", in: time.Time{}, want: time.Time{}},
		{name: "utc", in: t0, want: t0},
		{name: "other zone comes back in UTC", in: t0.In(berlin), want: t0},
		{name: "unix epoch is not zero", in: time.Unix(0, 0), want: time.Unix(0, 0).UTC()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := timeToPB(tt.in)
			if (pb == nil) != tt.in.IsZero() {
				t.Errorf("timeToPB(%v) = %v, want nil exactly for the zero time", tt.in, pb)
			}
			if got := timeFromPB(pb); got != tt.want {
				t.Errorf("timeFromPB(timeToPB(%v)) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestInt32Of(t *testing.T) {
	tests := []struct {
		in   int
		want int32
	}{
		{0, 0},
		{50, 50},
		{-1, -1},
		{math.MaxInt32, math.MaxInt32},
		{math.MaxInt32 + 1, math.MaxInt32},
		{1<<32 + 3, math.MaxInt32},
		{math.MinInt32 - 1, math.MinInt32},
	}
	for _, tt := range tests {
		if got := int32Of(tt.in); got != tt.want {
			t.Errorf("int32Of(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
