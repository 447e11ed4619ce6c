package decision

import (
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
		return in.contactMemo().Caps(r, s, in.At, in.Now, &in.State.Touches, in.contactZones, v)
	})
}

func (g policyGapGate) Check(in *GateInput, b *Block) bool {
	return contactCheck(g.policy, in, b, memoGap, MinGap, func(r *contact.Rules, s contact.Send, v *contact.Verdict) bool {
		return in.contactMemo().Gaps(r, s, in.At, in.Now, &in.State.Touches, v)
	})
}

func (g quietGate) Check(in *GateInput, b *Block) bool {
	return contactCheck(g.policy, in, b, memoQuiet, QuietHours, func(r *contact.Rules, s contact.Send, v *contact.Verdict) bool {
		return in.contactMemo().Quiet(r, s, in.At, in.contactZones, v)
	})
}

const (
	memoCap = iota
	memoGap
	memoQuiet
	numMemo
)

// contactMemo is a decision's memo of the contact gates' answers: each
// gate's per channel, purpose and criticality, and the policy's own
// (contact.Memo). Decide keeps one in its scratch; a check of one
// candidate (CheckAll, CheckSend) has none and asks the policy directly.
type contactMemo struct {
	// seen[g][k] is 0 while gate g has not answered for combination k, 1
	// when it allowed, and 2+i when it blocked with blocks[i].
	seen   [numMemo][arbiter.NumChannels * arbiter.NumPurposes * 2]uint8
	blocks []Block
	memo   contact.Memo
}

// reset forgets the decision's answers in place: copying the memo out
// and back costs write barriers while the collector runs.
func (m *contactMemo) reset() {
	clear(m.blocks)
	m.blocks = m.blocks[:0]
	m.seen = [numMemo][arbiter.NumChannels * arbiter.NumPurposes * 2]uint8{}
	m.memo.Reset()
}

// contactMemo returns the policy's memo, nil without one.
func (in *GateInput) contactMemo() *contact.Memo {
	if in.contact == nil {
		return nil
	}
	return &in.contact.memo
}

func contactCheck(p *contact.Policy, in *GateInput, b *Block, gate int, reason Reason,
	check func(*contact.Rules, contact.Send, *contact.Verdict) bool) bool {
	if in.contactRules == nil {
		prof := &in.State.Profile
		in.contactRules, in.contactZones = p.For(prof.Market, prof.Audience), p.Zones(prof.Market, prof.TimeZone)
	}
	if in.contactRules.Empty() {
		return false
	}
	a := in.Action
	s := contact.Send{Channel: a.Channel, Purpose: a.Purpose, Critical: a.Critical}
	m := in.contact
	k := (int(a.Channel)*arbiter.NumPurposes+int(a.Purpose))*2 + b2i(a.Critical)
	if m != nil {
		switch x := m.seen[gate][k]; {
		case x == 1:
			return false
		case x >= 2:
			*b = m.blocks[x-2]
			return true
		}
	}
	v := &in.verdict
	*v = contact.Verdict{}
	if !check(in.contactRules, s, v) {
		if m != nil {
			m.seen[gate][k] = 1
		}
		return false
	}
	*b = Block{Reason: reason, ClearsAt: v.ClearsAt, Detail: detail(in, func() string { return v.Describe(a.Channel, a.Purpose) })}
	if m != nil && len(m.blocks) < 250 {
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
