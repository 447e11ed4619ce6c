package decision

import (
	"fmt"
	"time"

	"github.com/arbiter-nba/arbiter"
)

// gapGate applies the catalog's minimum gap between two contacts on one
// channel. The block clears when the gap has passed.
type gapGate struct {
	minGap *[arbiter.NumChannels]time.Duration
}

func (gapGate) Reasons() []Reason { return []Reason{MinGap} }

func (g gapGate) Check(in *GateInput, b *Block) bool {
	if in.Action.Critical {
		return false // a critical message bypasses the contact policy
	}
	ch := in.Action.Channel
	gap := g.minGap[ch]
	if gap <= 0 {
		return false
	}
	last, at := in.State.Counters.LastContact[ch], in.At
	if last.IsZero() || at.Sub(last) >= gap || at.Before(last) {
		return false
	}
	*b = Block{Reason: MinGap, ClearsAt: last.Add(gap).UTC(), Detail: detail(in, func() string {
		return fmt.Sprintf("last %s contact %s ago; minimum gap is %s",
			label(ch), roundDuration(at.Sub(last)), roundDuration(gap))
	})}
	return true
}
