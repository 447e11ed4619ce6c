package recipient

import (
	"math"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
)

// Profile is the slowly changing description of an HCP, as fed by the CRM.
type Profile struct {
	HCPID     string
	Specialty string // e.g. "oncology", "cardiology", "general_practice"
	Market    string // e.g. "US", "EU"
	Audience  arbiter.Audience
	Segment   string // persona, e.g. "scientific_first", "digital_savvy", "traditional"
	TimeZone  string // IANA name, e.g. "Europe/Berlin"
	// Addresses holds, per channel, an opaque reference to the recipient's
	// current address on it (a CRM address id or a hash), used to match
	// address-level consent. Empty: none known.
	Addresses [arbiter.NumChannels]string
	// Territories are the sales territories the recipient belongs to
	// ("DE-SOUTH"): a rep tool decides only for recipients of its own.
	Territories []string
	// Attributes are static numeric features (e.g. "decile": 7).
	Attributes map[string]float64
	UpdatedAt  time.Time
	// UpdatedBy is who the server knows last wrote the profile: the
	// authenticated caller's subject (empty without authentication). The
	// storage adapter sets it; a caller cannot.
	UpdatedBy string
}

// Counters are the recipient's engagement and contact history. The decayed
// values (Engagement, Sent, Topics) are as of AsOf; DecayTo moves them to a
// later time. The half-life is the storage adapter's setting: the one its
// writes decay with.
type Counters struct {
	// AsOf is the time the decayed values are as of (zero: no counters).
	AsOf time.Time
	// Engagement is the decayed sum of engagement weights of outcome events
	// per channel (arbiter.EventType.Engagement).
	Engagement [arbiter.NumChannels]float64
	// Sent is the decayed count of contacts (sends, visits, meetings) per channel.
	Sent [arbiter.NumChannels]float64
	// LastContact is the time of the last contact per channel (zero: never).
	LastContact [arbiter.NumChannels]time.Time
	// LastEngagement is the time of the last positive engagement on any channel.
	LastEngagement time.Time
	// Topics is the decayed engagement per content topic.
	Topics map[string]float64
}

// State is everything a decision needs about one HCP, read in one round trip.
type State struct {
	Profile  Profile
	Counters Counters
	// Consent is the recipient's consent state. When it could not be
	// decoded, Consent.Complete is false and ConsentErr says why: the
	// decision then treats consent as unknown, which means deny.
	Consent    consent.State
	ConsentErr error
	// Touches is the recipient's touch ledger: every contact and
	// reservation, from every caller, within the contact policy's
	// retention.
	Touches contact.Ledger
	// Recent are the recipient's latest events, newest first (at most the
	// storage adapter's bound), for rules that react to what happened.
	Recent []RecentEvent
	// JourneyOverrides are operators' moves of the recipient in journeys
	// (one per journey at most: the latest).
	JourneyOverrides []JourneyOverride
	// Dismissals are reps' dismissals of suggestions as not relevant
	// (one per action at most: the latest), sorted by action id: each
	// holds the action back for a while (the decision package's
	// dismissal gate).
	Dismissals []Dismissal
}

// Dismissal is a rep's dismissal of a suggested action as not relevant
// to the recipient (an EventDismissed with DismissNotRelevant).
type Dismissal struct {
	ActionID string
	At       time.Time
	// Principal is who the server knows reported it ("" without
	// authentication).
	Principal string
}

// JourneyOverride is an operator's move of a recipient in a journey: to a
// step (its id; that step is then due at once, from At) or out of the
// journey (Step ""). Progress counts what happened after At from there. A
// step the journey no longer has (its definitions changed) moves nothing.
type JourneyOverride struct {
	Journey   string
	Step      string
	At        time.Time
	Principal string
}

// RecentEvent is one event of State.Recent: what happened, when, on which
// channel, about which action and topic.
type RecentEvent struct {
	At       time.Time
	Type     arbiter.EventType
	Channel  arbiter.Channel
	ActionID string
	Topic    string
	// Purpose is the event's own, when its sender said (unspecified
	// otherwise: the action's then stands).
	Purpose arbiter.Purpose
}

// Event is an outcome reported back by a data feed.
type Event struct {
	ID         string // idempotency key, unique per source
	HCPID      string
	Type       arbiter.EventType
	Channel    arbiter.Channel
	ActionID   string // optional
	Topic      string // optional: content topic, feeds topic engagement
	DecisionID string // optional: the decision this outcome follows
	OccurredAt time.Time
	// Purpose is why the recipient was contacted (optional). A touch of
	// unknown purpose counts against every purpose's caps.
	Purpose arbiter.Purpose
	// MessageID is the sender's id of the message (optional): a sent and a
	// delivered event with the same one are one touch.
	MessageID string
	// ReservationID quotes the CheckSend reservation the send used
	// (optional): the reservation becomes the sent touch.
	ReservationID string
	// Dismissal is why a rep dismissed the suggestion: required with
	// EventDismissed, and only with it. A dismissal as not relevant holds
	// the action back for the recipient for a while.
	Dismissal arbiter.DismissReason
	// Note is a rep's words on a suggestion's feedback (EventDismissed
	// and EventCompleted only; optional): kept with the event in the
	// recipient's history, erased with them.
	Note string
}

// EventOutcome is what became of one event of a batch applied together
// (a store's ApplyEvents): Err when it was not applied (invalid, no such
// recipient, stored state that cannot be read), else Duplicate when its
// id had been applied before, else it was applied.
type EventOutcome struct {
	Duplicate bool
	Err       error
}

// ImportItem is one HCP in a bulk CRM feed: the profile, optional initial
// counters (migration from another system, demo data), and the consent
// records known for the HCP.
type ImportItem struct {
	Profile  Profile
	Counters *Counters
	Consent  []consent.Record
	// ConsentComplete asserts that Consent is the HCP's full consent data
	// from the source system: the completeness marker is written.
	ConsentComplete bool
	CapturedBy      string
	// Touches are past contacts from the source system (sent touches: the
	// CRM's calls and sends), added to the recipient's touch ledger. A
	// touch already in the ledger is not added again, so re-running an
	// import adds nothing.
	Touches []contact.Touch
}

// DecayFactor is how much a decayed value as of from has kept at to:
// 2^(-(to-from)/halfLife), at millisecond precision. It is 1 when to is not
// after from: decay never increases a value.
func DecayFactor(from, to time.Time, halfLife time.Duration) float64 {
	f, t := from.UnixMilli(), to.UnixMilli()
	if t <= f {
		return 1
	}
	return math.Exp2(-float64(t-f) / (float64(halfLife) / float64(time.Millisecond)))
}

// DecayTo returns c with its decayed values moved to at (see DecayFactor);
// c itself, whose Topics map may be shared, is not modified.
func (c Counters) DecayTo(at time.Time, halfLife time.Duration) Counters {
	f := DecayFactor(c.AsOf, at, halfLife)
	if f == 1 {
		return c
	}
	c.AsOf = at
	for i := range c.Engagement {
		c.Engagement[i] *= f
		c.Sent[i] *= f
	}
	if len(c.Topics) > 0 {
		topics := make(map[string]float64, len(c.Topics))
		for k, v := range c.Topics {
			topics[k] = v * f
		}
		c.Topics = topics
	}
	return c
}
