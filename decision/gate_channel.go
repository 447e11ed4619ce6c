package decision

import "slices"

// ChannelNotRequested: the caller asked about other channels.
const ChannelNotRequested Reason = "channel_not_requested"

// channelGate holds back the channels the request did not ask about.
type channelGate struct{}

func (channelGate) Reasons() []Reason { return []Reason{ChannelNotRequested} }

func (channelGate) Check(in *GateInput, b *Block) bool {
	ch := in.Request.Channels
	if len(ch) == 0 || slices.Contains(ch, in.Action.Channel) {
		return false
	}
	*b = Block{Reason: ChannelNotRequested, NotApplicable: true,
		Detail: detail(in, func() string { return "caller asked about other channels" })}
	return true
}
