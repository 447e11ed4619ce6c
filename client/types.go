package client

import (
	"fmt"
	"time"

	"github.com/arbiter-nba/arbiter"
)

// DecideOptions narrows and shapes one decision. The zero value asks for the
// server's default number of recommendations among every action in the
// catalog, on every channel, at the server's clock.
type DecideOptions struct {
	// Limit is how many recommendations to return, 1 to 50; 0 means 3.
	Limit int
	// Candidates are the action ids to consider (at most 1000, no
	// duplicates). Empty: every action in the catalog.
	Candidates []string
	// CandidateSet names a candidate set defined in the server's catalog,
	// to consider instead of listing its ids (not with Candidates).
	CandidateSet string
	// Caller says who asks; the model weighs channels differently for a rep
	// planning a visit and a platform about to send email.
	Caller arbiter.CallerKind
	// At is when the action would happen; consent and MLR approval are
	// checked at this instant. Zero: the server's clock.
	At time.Time
	// Channels restricts recommendations to these channels. Empty: all.
	Channels []arbiter.Channel
	// Explain asks for feature contributions and a reason per
	// recommendation, and a detail per suppression.
	Explain bool
}

// Decision is the server's answer for one HCP.
type Decision struct {
	// ID identifies the decision; quote it in Event.DecisionID to tie outcomes
	// to it; the decision log keeps its receipt (Client.GetDecision).
	ID             string    `json:"id"`
	At             time.Time `json:"at,omitzero"`
	ModelVersion   string    `json:"model_version,omitempty"`
	CatalogVersion string    `json:"catalog_version,omitempty"`
	// DefinitionsVersion names the definitions set the decision used.
	DefinitionsVersion string `json:"definitions_version,omitempty"`
	// Persona is the recipient's dynamic persona at the decision time
	// (empty: none holds, the profile's segment stands).
	Persona string `json:"persona,omitempty"`
	// Recommendations are ranked best first.
	Recommendations []Recommendation `json:"recommendations"`
	// Suppressed lists the candidates that may not be sent, and why.
	Suppressed []Suppression `json:"suppressed"`
}

// Recommendation is one ranked action.
type Recommendation struct {
	Rank      int             `json:"rank"`
	ActionID  string          `json:"action_id"`
	Channel   arbiter.Channel `json:"channel"`
	ContentID string          `json:"content_id,omitempty"`
	Topic     string          `json:"topic,omitempty"`
	Purpose   arbiter.Purpose `json:"purpose"`
	// Score = Propensity x Value x ContextWeight.
	Score         float64 `json:"score"`
	Propensity    float64 `json:"propensity"`
	Value         float64 `json:"value"`
	ContextWeight float64 `json:"context_weight"`
	// Contributions are the features that moved the propensity most,
	// largest magnitude first (explain only).
	Contributions []Contribution `json:"contributions,omitempty"`
	// Reason is one sentence a rep understands (explain only).
	Reason string `json:"reason,omitempty"`
	// Rules are the ids of the behaviour rules that boosted or demoted it.
	Rules []string `json:"rules,omitempty"`
	// Journey is the journey step it is, when a journey preferred it.
	Journey *JourneyStep `json:"journey,omitempty"`
}

// JourneyStep names a step of a journey: Step is 1-based, 0 for an
// off-ramp's offer.
type JourneyStep struct {
	JourneyID   string `json:"journey_id"`
	JourneyName string `json:"journey_name"`
	StepID      string `json:"step_id,omitempty"`
	Step        int    `json:"step,omitempty"`
	// Description is the step in a rep's words.
	Description string `json:"description"`
	OffRampID   string `json:"off_ramp_id,omitempty"`
}

// Contribution is one feature's additive contribution to a propensity's
// log-odds.
type Contribution struct {
	Feature string  `json:"feature"`
	Weight  float64 `json:"weight"`
}

// Suppression is a candidate that was not recommended because it may not be
// sent.
type Suppression struct {
	ActionID string            `json:"action_id"`
	Reason   SuppressionReason `json:"reason"`
	// Detail says why in words (explain only). It never holds personal data.
	Detail string `json:"detail,omitempty"`
	// ClearsAt is when the block lifts by itself, where that is known
	// (content approved from a later date, a minimum contact gap); zero
	// otherwise.
	ClearsAt time.Time `json:"clears_at,omitzero"`
}

// SuppressionReason is why a candidate was suppressed. Its values are the
// API's names without their prefix; a reason added to the API after this
// client was built comes through as its name or number, never as one of the
// constants below.
type SuppressionReason string

const (
	// SuppressionNoConsent: no opt-in where one is required, or an opt-out.
	SuppressionNoConsent SuppressionReason = "NO_CONSENT"
	// SuppressionConsentExpired: the opt-in expired before the decision time.
	SuppressionConsentExpired SuppressionReason = "CONSENT_EXPIRED"
	// SuppressionConsentPending: a double opt-in not yet confirmed.
	SuppressionConsentPending SuppressionReason = "CONSENT_PENDING"
	// SuppressionConsentUnknown: consent data missing, incomplete or
	// unreadable. Unknown means deny.
	SuppressionConsentUnknown SuppressionReason = "CONSENT_UNKNOWN"
	// SuppressionChannelBarred: the channel is barred outright for the HCP.
	SuppressionChannelBarred SuppressionReason = "CHANNEL_BARRED"
	// SuppressionContentNotApproved: MLR approval missing, withdrawn, or not
	// for the HCP's market.
	SuppressionContentNotApproved SuppressionReason = "CONTENT_NOT_APPROVED"
	// SuppressionContentExpired: MLR approval expired or not yet valid at the
	// decision time.
	SuppressionContentExpired SuppressionReason = "CONTENT_EXPIRED"
	// SuppressionNotEligible: audience, specialty or market mismatch.
	SuppressionNotEligible SuppressionReason = "NOT_ELIGIBLE"
	// SuppressionChannelNotRequested: outside DecideOptions.Channels.
	SuppressionChannelNotRequested SuppressionReason = "CHANNEL_NOT_REQUESTED"
	// SuppressionFrequencyCap: a contact policy cap is reached in its window.
	SuppressionFrequencyCap SuppressionReason = "FREQUENCY_CAP"
	// SuppressionMinGap: too soon after (or before) another touch.
	SuppressionMinGap SuppressionReason = "MIN_GAP"
	// SuppressionQuietHours: quiet hours, or a day without contact on the
	// channel, in the recipient's time zone.
	SuppressionQuietHours SuppressionReason = "QUIET_HOURS"
	// SuppressionRule: a behaviour rule holds it back; the detail names it.
	SuppressionRule SuppressionReason = "RULE"
	// SuppressionJourneyWait: a journey step that is not due yet (ClearsAt
	// says when, where known).
	SuppressionJourneyWait SuppressionReason = "JOURNEY_WAIT"
	// SuppressionJourney: the recipient left the journey (an off-ramp, an
	// operator): its steps are held back.
	SuppressionJourney SuppressionReason = "JOURNEY"
	// SuppressionDismissed: a rep dismissed a suggestion of the action as
	// not relevant to the recipient (Client.SuggestionFeedback): held
	// back for 30 days from then.
	SuppressionDismissed SuppressionReason = "DISMISSED"
)

// Event is an outcome reported back by a data feed.
type Event struct {
	// ID is the idempotency key, unique per source system: a repeat is
	// acknowledged as a duplicate and changes nothing.
	ID      string            `json:"id"`
	HCPID   string            `json:"hcp_id"`
	Type    arbiter.EventType `json:"type"`
	Channel arbiter.Channel   `json:"channel"`
	// ActionID, Topic and DecisionID are optional. Topic feeds topic
	// engagement; DecisionID ties the outcome to a Decision.ID.
	ActionID   string    `json:"action_id,omitempty"`
	Topic      string    `json:"topic,omitempty"`
	DecisionID string    `json:"decision_id,omitempty"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
	// Purpose, MessageID and ReservationID are optional. A SENT and a
	// DELIVERED with the same MessageID are one touch; ReservationID turns
	// a CheckSend reservation into the sent touch.
	Purpose       arbiter.Purpose `json:"purpose,omitempty"`
	MessageID     string          `json:"message_id,omitempty"`
	ReservationID string          `json:"reservation_id,omitempty"`
}

// SendCheck asks whether one action may be sent (Client.CheckSend).
type SendCheck struct {
	HCPID string `json:"hcp_id"`
	// ActionID names the catalog action; or else Channel and ContentID.
	ActionID  string          `json:"action_id,omitempty"`
	Channel   arbiter.Channel `json:"channel,omitempty"`
	ContentID string          `json:"content_id,omitempty"`
	// PlannedAt is the planned send time; zero: now.
	PlannedAt time.Time `json:"planned_at,omitzero"`
	// Reserve books the touch when allowed; IdempotencyKey makes the
	// booking safe to retry.
	Reserve        bool               `json:"reserve,omitempty"`
	IdempotencyKey string             `json:"idempotency_key,omitempty"`
	Caller         arbiter.CallerKind `json:"caller,omitempty"`
}

// SendVerdict is a pre-send check's answer.
type SendVerdict struct {
	Allowed bool `json:"allowed"`
	// Blocks are every reason the send is not allowed, each with its
	// detail and, where known, when it clears.
	Blocks []Suppression `json:"blocks,omitempty"`
	// EarliestAllowedAt is the first time the send would be allowed;
	// zero when a block never clears by itself.
	EarliestAllowedAt time.Time `json:"earliest_allowed_at,omitzero"`
	// The reservation, when one was asked for and the send is allowed.
	ReservationID        string    `json:"reservation_id,omitempty"`
	ReservationExpiresAt time.Time `json:"reservation_expires_at,omitzero"`
	// ReservationExisting: the idempotency key's reservation was booked
	// before; ReservationState ("RESERVED", "SENT", "RELEASED") says what
	// became of it.
	ReservationExisting bool      `json:"reservation_existing,omitempty"`
	ReservationState    string    `json:"reservation_state,omitempty"`
	DecisionID          string    `json:"decision_id"`
	DefinitionsVersion  string    `json:"definitions_version"`
	PlannedAt           time.Time `json:"planned_at"`
	ActionID            string    `json:"action_id"`
}

// Profile is the slowly changing description of an HCP, as fed by the CRM.
type Profile struct {
	HCPID     string           `json:"hcp_id"`
	Specialty string           `json:"specialty,omitempty"` // e.g. "oncology"
	Market    string           `json:"market,omitempty"`    // e.g. "US", "EU"
	Audience  arbiter.Audience `json:"audience"`
	Segment   string           `json:"segment,omitempty"`   // persona, e.g. "scientific_first"
	TimeZone  string           `json:"time_zone,omitempty"` // IANA name, e.g. "Europe/Berlin"
	// Addresses holds, per channel, an opaque reference to the HCP's current
	// address on it (a CRM address id or a hash), matched against
	// address-level consent. Never the address itself.
	Addresses map[arbiter.Channel]string `json:"addresses,omitempty"`
	// Attributes are static numeric features (e.g. "decile": 7).
	Attributes map[string]float64 `json:"attributes,omitempty"`
	// Territories are the sales territories the HCP belongs to.
	Territories []string `json:"territories,omitempty"`
	// UpdatedBy is who the server knows last wrote the profile (read
	// only: the authenticated caller's subject).
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Persona is the HCP's dynamic persona now (read only, from
	// GetProfile; empty when none holds).
	Persona string `json:"persona,omitempty"`
}

// Counters are an HCP's engagement and contact history, decayed to the time
// they were read.
type Counters struct {
	Channels map[arbiter.Channel]ChannelCounters `json:"channels,omitempty"`
	// Topics is the decayed engagement per content topic.
	Topics         map[string]float64 `json:"topics,omitempty"`
	LastEngagement time.Time          `json:"last_engagement,omitzero"`
}

// ChannelCounters are the counters of one channel.
type ChannelCounters struct {
	// Engagement is the decayed sum of outcome weights (opens, clicks,
	// attendance; unsubscribes and bounces count against it).
	Engagement float64 `json:"engagement"`
	// Sent is the decayed count of contacts (sends, visits, meetings).
	Sent        float64   `json:"sent"`
	LastContact time.Time `json:"last_contact,omitzero"`
}

// ConsentStatus is what a consent record says.
type ConsentStatus string

const (
	// ConsentOptIn: the HCP agreed to be contacted on the record's scope.
	ConsentOptIn ConsentStatus = "opt_in"
	// ConsentOptOut: the HCP refused or withdrew.
	ConsentOptOut ConsentStatus = "opt_out"
	// ConsentPending: an opt-in awaiting double opt-in confirmation; it does
	// not allow contact yet.
	ConsentPending ConsentStatus = "pending"
	// ConsentBarred: the channel is barred outright ("never email"); the
	// record has no purpose, topic or address.
	ConsentBarred ConsentStatus = "barred"
	// ConsentCleared lifts a bar on the channel; it allows nothing by itself.
	ConsentCleared ConsentStatus = "cleared"
)

// Valid reports whether s is one of the statuses above.
func (s ConsentStatus) Valid() bool {
	switch s {
	case ConsentOptIn, ConsentOptOut, ConsentPending, ConsentBarred, ConsentCleared:
		return true
	}
	return false
}

// UnmarshalText accepts the statuses above and the empty string (no status,
// which the server rejects), so that a typo in a JSON feed fails where it is
// read.
func (s *ConsentStatus) UnmarshalText(b []byte) error {
	v := ConsentStatus(b)
	if v != "" && !v.Valid() {
		return fmt.Errorf("unknown consent status %q", b)
	}
	*s = v
	return nil
}

// ConsentRecord is one consent statement about one HCP. Its scope is
// (Channel, Purpose, Topic, AddressRef); Topic and AddressRef are optional
// and make it more specific.
type ConsentRecord struct {
	Channel    arbiter.Channel `json:"channel"`
	Purpose    arbiter.Purpose `json:"purpose"`
	Topic      string          `json:"topic,omitempty"`
	AddressRef string          `json:"address_ref,omitempty"`
	Status     ConsentStatus   `json:"status"`
	// CapturedAt is when the HCP gave or withdrew consent; the most recent
	// record for a scope wins.
	CapturedAt time.Time `json:"captured_at,omitzero"`
	// ExpiresAt, when not zero, is the first instant an opt-in no longer counts.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Source is the system the record came from ("veeva", "preference-centre").
	Source string `json:"source,omitempty"`
	// CapturedBy is who recorded it: a user or system id, never a name.
	CapturedBy string `json:"captured_by,omitempty"`
	// NoticeVersion names the notice or terms the recipient agreed to
	// (e.g. "privacy-2026-03"); decision receipts carry it.
	NoticeVersion string `json:"notice_version,omitempty"`
}

// LedgerEntry is one consent change as appended to the HCP's ledger, which
// is never rewritten.
type LedgerEntry struct {
	Seq        int64         `json:"seq"`
	Record     ConsentRecord `json:"record"`
	RecordedAt time.Time     `json:"recorded_at,omitzero"`
	// Applied is false when a more recent record for the same scope was
	// already current: the change is kept as proof but took no effect.
	Applied bool `json:"applied"`
	// MarkedComplete is true when the change also wrote the completeness marker.
	MarkedComplete bool `json:"marked_complete"`
	// Principal is who the server knows made the change (the
	// authenticated caller); Record.CapturedBy is what the caller said.
	Principal string `json:"principal,omitempty"`
}

// ConsentState is an HCP's current consent: the most recent record per scope
// and the completeness marker. Without the marker nothing is allowed.
type ConsentState struct {
	Complete   bool            `json:"complete"`
	CompleteAt time.Time       `json:"complete_at,omitzero"`
	Records    []ConsentRecord `json:"records"`
}

// ImportItem is one HCP in a bulk CRM feed. Its JSON form is one line of the
// JSON Lines files that arbiterctl import reads.
type ImportItem struct {
	Profile Profile `json:"profile"`
	// Consents are the consent records known for the HCP; merged (the most
	// recent per scope wins) and appended to the ledger.
	Consents []ConsentRecord `json:"consents,omitempty"`
	// ConsentComplete asserts that Consents is the HCP's complete consent
	// data in the source system: the completeness marker is written.
	ConsentComplete bool `json:"consent_complete,omitempty"`
	// CapturedBy is who ran the feed (a system id).
	CapturedBy string `json:"captured_by,omitempty"`
}
