package contact_test

import (
	"math/rand/v2"
	"testing"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/contact"
)

// A Memo answers, for every send of one decision, what the checks answer
// without one: it only remembers what does not depend on the send.
func TestMemoMatchesChecks(t *testing.T) {
	r := rand.New(rand.NewPCG(20261126, 1))
	for n := range 500 {
		c := genCapCase(t, r)
		var m contact.Memo
		for ch := arbiter.Channel(1); int(ch) < arbiter.NumChannels; ch++ {
			for pu := arbiter.Purpose(0); int(pu) < arbiter.NumPurposes; pu++ {
				s := contact.Send{Channel: ch, Purpose: pu, Critical: r.IntN(10) == 0}
				var want, got contact.Verdict
				wb := c.rules.CheckCaps(s, c.t, c.now, &c.ledger, c.zones, &want)
				gb := m.Caps(&c.rules, s, c.t, c.now, &c.ledger, c.zones, &got)
				if wb != gb || want != got {
					t.Fatalf("case %d, caps, send %+v: memo %v %+v, without %v %+v\n%s", n, s, gb, got, wb, want, c.String())
				}
				want, got = contact.Verdict{}, contact.Verdict{}
				wb = c.rules.CheckGaps(s, c.t, c.now, &c.ledger, &want)
				gb = m.Gaps(&c.rules, s, c.t, c.now, &c.ledger, &got)
				if wb != gb || want != got {
					t.Fatalf("case %d, gaps, send %+v: memo %v %+v, without %v %+v\n%s", n, s, gb, got, wb, want, c.String())
				}
			}
		}
		m.Reset()
	}
	for n := range 500 {
		c := genQuietCase(t, r)
		rules := contact.Rules{Quiet: c.quiet}
		var m contact.Memo
		for range 2 { // the second time from the memo
			for _, crit := range []bool{false, true} {
				s := contact.Send{Channel: c.ch, Purpose: arbiter.Promotional, Critical: crit}
				var want, got contact.Verdict
				wb := rules.CheckQuiet(s, c.t, c.zones, &want)
				gb := m.Quiet(&rules, s, c.t, c.zones, &got)
				if wb != gb || want != got {
					t.Fatalf("case %d, quiet, send %+v: memo %v %+v, without %v %+v\n%s", n, s, gb, got, wb, want, c.String())
				}
			}
		}
	}
}
