package decision

import "github.com/arbiter-nba/arbiter/consent"

const (
	// NoConsent: no opt-in where one is needed, or an opt-out.
	NoConsent Reason = "no_consent"
	// ConsentExpired: the opt-in has expired.
	ConsentExpired Reason = "consent_expired"
	// ConsentPending: the opt-in awaits its double opt-in confirmation.
	ConsentPending Reason = "consent_pending"
	// ConsentUnknown: the recipient's consent could not be read or is not
	// known to be complete: unknown means deny.
	ConsentUnknown Reason = "consent_unknown"
	// ChannelBarred: the channel is barred outright for the recipient.
	ChannelBarred Reason = "channel_barred"
)

// consentGate allows only what the recipient's consent allows, for the
// action's channel, purpose, topic and the recipient's address on the
// channel, at the decision time. None of its blocks clears by itself: each
// takes a new consent record.
type consentGate struct{ policy *consent.Policy }

func (consentGate) Reasons() []Reason {
	return []Reason{NoConsent, ConsentExpired, ConsentPending, ConsentUnknown, ChannelBarred}
}

func (g consentGate) Check(in *GateInput, b *Block) bool {
	a, st := in.Action, in.State
	if in.marketDefaults == nil {
		in.marketDefaults = g.policy.Market(in.Recipient.Market)
	}
	q := consent.Query{Channel: a.Channel, Purpose: a.Purpose, Topic: a.Topic,
		Address: st.Profile.Addresses[a.Channel], Market: in.Recipient.Market, Defaults: in.marketDefaults, At: in.At}
	v := g.policy.Evaluate(&st.Consent, q)
	if v.Allowed() {
		return false
	}
	b.Reason, b.Detail = NoConsent, detail(in, func() string { return v.Explain(&st.Consent, q) })
	switch v.Outcome {
	case consent.DeniedUnknown:
		b.Reason = ConsentUnknown
	case consent.DeniedBarred:
		b.Reason = ChannelBarred
	case consent.DeniedExpired:
		b.Reason = ConsentExpired
	case consent.DeniedPending:
		b.Reason = ConsentPending
	}
	return true
}
