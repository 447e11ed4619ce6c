package decision

import (
	"time"

	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
)

// A Gate is one check a candidate must pass before it may be recommended:
// the channel the caller asked about, the model's coverage, eligibility and
// MLR approval, consent, the contact policy. Gates are pure: given the
// candidate, the recipient's state, the request and the decision time they
// answer allowed, or blocked with a Block, and never depend on another
// gate's answer or order. The engine owns the list (New builds it; see
// defaultGates); Decide stops at a candidate's first block, CheckAll asks
// every gate.
//
// A new gate is one file: its type, its Check, and the Reason it blocks
// with (a constant of its own). The gRPC boundary maps reasons to the
// proto's SuppressionReason by name, so the proto needs one enum line.
type Gate interface {
	// Check reports whether the gate blocks the candidate, and if so fills
	// b (which the caller zeroes). The Block goes out through b rather
	// than as a result because gates run for every candidate of every
	// decision and nearly always allow: returning a Block by value copied
	// its 64 zero bytes through every call, which made the gates 2.5x the
	// cost of the chain of ifs they replaced (BenchmarkDecide).
	Check(in *GateInput, b *Block) bool
	// Reasons lists every Reason Check can block with.
	Reasons() []Reason
}

// GateInput is what a gate sees of one candidate. Gates must not modify its
// exported fields; a gate may memoize per-decision values in the unexported
// ones (the consent gate's market defaults).
type GateInput struct {
	Action    *catalog.Action
	State     *recipient.State
	Recipient catalog.Recipient
	Request   *Request
	// At is the time the action would happen: the decision time, or a
	// planned send time.
	At time.Time
	// Now is the engine's clock when the state was read: reservations in
	// the touch ledger count until they expire, by this clock.
	Now time.Time

	// send is the action of a pre-send check (CheckSend), whose rules
	// are evaluated only where they can change its answer (rules.Input's
	// Send); nil for a decision.
	send *catalog.Action
	// marketDefaults is the consent policy's defaults for the recipient's
	// market, looked up by the consent gate at its first candidate and
	// kept for the decision's others (nil until then).
	marketDefaults *consent.MarketDefaults
	// contact is the contact policy gates' memo for this decision (Decide
	// only; nil for checks of one candidate).
	contact *contactMemo
	// contactRules and contactZones are the recipient's contact rules and
	// zones, looked up by the first contact gate (nil until then).
	contactRules *contact.Rules
	contactZones []*time.Location
	// verdict is the contact gates' answer being worked out: here rather
	// than a local, which would escape to the heap through the check.
	verdict contact.Verdict
	// applied are the behaviour rules that hold for this decision
	// (evaluated once, before the gates).
	applied []rules.Applied
	// journeys is the recipient's progress in each journey of the rules
	// (indexed like rules.Set.Journeys), and steps the journey steps each
	// catalog action makes (rules.Set.ActionSteps; nil: no journeys).
	journeys []rules.Progress
	steps    [][]rules.StepRef
	// paused is the journeys operators paused (nil: none), as the
	// decision saw them.
	paused map[string]bool
}

// Block is why a gate holds a candidate back.
type Block struct {
	// Reason is why the candidate is held back; empty: allowed.
	Reason Reason
	// NotApplicable says the action does not apply to the recipient at all
	// (audience, specialty, market, a channel the caller did not ask
	// about), as opposed to applying but being forbidden now (consent,
	// MLR, contact policy). Decide lists not-applicable candidates only
	// when asked to explain: they answer "why not" for a rep, not "what
	// must not be sent" for a sender, and a catalog-wide decision has many.
	NotApplicable bool
	// Detail says why in words a rep understands; set only when the
	// request asks to explain. Never personal data.
	Detail string
	// ClearsAt is when the block lifts by itself, where the gate can know
	// it (content approved from a later date, a contact gap); zero when it
	// cannot, or never will (an opt-out, a withdrawal).
	ClearsAt time.Time
}

// Blocked reports whether b holds the candidate back.
func (b Block) Blocked() bool { return b.Reason != ReasonUnspecified }

// detail returns f() when the request asks to explain, else "": details
// cost a string each, and most callers do not read them.
func detail(in *GateInput, f func() string) string {
	if !in.Request.Explain {
		return ""
	}
	return f()
}
