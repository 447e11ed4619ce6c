package decision

import (
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/contact"
)

const (
	// FrequencyCap: a cap of the contact policy is reached for the
	// action's channel or purpose (or the touch ledger cannot prove it is
	// not: a truncated ledger fails closed).
	FrequencyCap Reason = "frequency_cap"
	// MinGap: too soon after (or before) another touch: the catalog's
	// per-channel minimum gap, or one of the contact policy's.
	MinGap Reason = "min_gap"
	// QuietHours: the recipient's local time is in quiet hours, or on a
	// day the channel is not used.
	QuietHours Reason = "quiet_hours"
)

// The contact policy's gates: caps, gaps and quiet hours (package contact
// holds their logic). Their answers depend on the candidate only through
// its channel, purpose and criticality, so a decision asks the policy once
// per such combination and keeps the answer in the GateInput's memo.

type capGate struct{ policy *contact.Policy }
type policyGapGate struct{ policy *contact.Policy }
type quietGate struct{ policy *contact.Policy }

func (capGate) Reasons() []Reason       { return []Reason{FrequencyCap} }
func (policyGapGate) Reasons() []Reason { return []Reason{MinGap} }
func (quietGate) Reasons() []Reason     { return []Reason{QuietHours} }

func (g capGate) Check(in *GateInput, b *Block) bool {
	return contactCheck(g.policy, in, b, memoCap, FrequencyCap, func(r *contact.Rules, s contact.Send, v *contact.Verdict) bool {
		return in.contact.memo.Caps(r, s, in.At, in.Now, &in.State.Touches, in.contact.zones, v)
	})
}

func (g policyGapGate) Check(in *GateInput, b *Block) bool {
	return contactCheck(g.policy, in, b, memoGap, MinGap, func(r *contact.Rules, s contact.Send, v *contact.Verdict) bool {
		return in.contact.memo.Gaps(r, s, in.At, in.Now, &in.State.Touches, v)
	})
}

func (g quietGate) Check(in *GateInput, b *Block) bool {
	return contactCheck(g.policy, in, b, memoQuiet, QuietHours, func(r *contact.Rules, s contact.Send, v *contact.Verdict) bool {
		return in.contact.memo.Quiet(r, s, in.At, in.contact.zones, v)
	})
}

const (
	memoCap = iota
	memoGap
	memoQuiet
	numMemo
)

// contactMemo is what a decision knows of its recipient's contact policy:
// the rules and zones (looked up at the first candidate), and each
// contact gate's answer per channel, purpose and criticality so far.
type contactMemo struct {
	ready bool
	rules *contact.Rules
	zones []*time.Location
	// seen[g][k] is 0 while gate g has not answered for combination k, 1
	// when it allowed, and 2+i when it blocked with blocks[i].
	seen   [numMemo][arbiter.NumChannels * arbiter.NumPurposes * 2]uint8
	blocks []Block
	// v is the verdict being asked for: here rather than a local, which
	// would escape to the heap through the check function on every call.
	v contact.Verdict
	// memo is the contact policy's own: each cap's count, each gap's
	// latest touch, each channel's quiet hours, worked out once.
	memo contact.Memo
}

func (m *contactMemo) reset() {
	blocks := m.blocks[:0]
	clear(m.blocks)
	memo := m.memo
	memo.Reset()
	*m = contactMemo{blocks: blocks, memo: memo}
}

func contactCheck(p *contact.Policy, in *GateInput, b *Block, gate int, reason Reason,
	check func(*contact.Rules, contact.Send, *contact.Verdict) bool) bool {
	m := in.contact
	if m == nil {
		in.contact = &contactMemo{}
		m = in.contact
	}
	if !m.ready {
		prof := &in.State.Profile
		m.rules, m.zones, m.ready = p.For(prof.Market, prof.Audience), p.Zones(prof.Market, prof.TimeZone), true
	}
	if m.rules.Empty() {
		return false
	}
	a := in.Action
	s := contact.Send{Channel: a.Channel, Purpose: a.Purpose, Critical: a.Critical}
	k := (int(a.Channel)*arbiter.NumPurposes+int(a.Purpose))*2 + b2i(a.Critical)
	switch x := m.seen[gate][k]; {
	case x == 1:
		return false
	case x >= 2:
		*b = m.blocks[x-2]
		return true
	}
	v := &m.v
	*v = contact.Verdict{}
	if !check(m.rules, s, v) {
		m.seen[gate][k] = 1
		return false
	}
	*b = Block{Reason: reason, ClearsAt: v.ClearsAt, Detail: detail(in, func() string { return v.Describe(a.Channel, a.Purpose) })}
	if len(m.blocks) < 250 {
		m.blocks = append(m.blocks, *b)
		m.seen[gate][k] = uint8(len(m.blocks) + 1)
	}
	return true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
