package decision

import (
	"slices"
	"testing"

	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/scoring"
)

// topicAffinity gives, per catalog topic, the HCP's engagement with it,
// whether it looks up the HCP's topics (fewer than the catalog's) or the
// catalog's; topics the catalog does not have are ignored.
func TestTopicAffinity(t *testing.T) {
	cat := catalog.Demo()
	e, err := New(&snapshots{}, scoring.Demo(), cat, consent.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	naive := func(topics map[string]float64) []float64 {
		out := make([]float64, len(cat.Topics))
		for i, topic := range cat.Topics {
			out[i] = topics[topic]
		}
		return out
	}
	few := map[string]float64{cat.Topics[0]: 2, cat.Topics[len(cat.Topics)-1]: 0.5, "not-in-the-catalog": 7}
	all := map[string]float64{"not-in-the-catalog": 7}
	for i, topic := range cat.Topics {
		all[topic] = float64(i + 1)
	}
	buf := []float64{9, 9, 9} // a pooled buffer's leftovers
	for _, topics := range []map[string]float64{nil, few, all, few} {
		st := &recipient.State{Counters: recipient.Counters{Topics: topics}}
		buf = e.topicAffinity(st, buf)
		if want := naive(topics); !slices.Equal(buf, want) {
			t.Fatalf("topicAffinity(%v) = %v, want %v", topics, buf, want)
		}
	}
}

// BenchmarkTopicAffinity: an HCP who engaged with four topics, against
// the demo catalog's.
func BenchmarkTopicAffinity(b *testing.B) {
	cat := catalog.Demo()
	e, err := New(&snapshots{}, scoring.Demo(), cat, consent.DefaultPolicy())
	if err != nil {
		b.Fatal(err)
	}
	st := &recipient.State{Counters: recipient.Counters{Topics: map[string]float64{}}}
	for _, topic := range cat.Topics[:4] {
		st.Counters.Topics[topic] = 1.5
	}
	var buf []float64
	b.ReportAllocs()
	for b.Loop() {
		buf = e.topicAffinity(st, buf)
	}
}
