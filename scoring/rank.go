package scoring

import (
	"math"
	"sort"

	"github.com/arbiter-nba/arbiter"
)

// Candidate is one eligible, consented action to score.
type Candidate struct {
	// Action identifies the action to the caller (an index into its catalog).
	Action  int32
	Channel arbiter.Channel
	Purpose arbiter.Purpose
	// TopicAffinity is the HCP's decayed engagement with the action's topic.
	TopicAffinity float64
	// SpecialtyMatch is 1 when the action targets the HCP's specialty.
	SpecialtyMatch float64
	// Value is the action's business value.
	Value float64
	// Adjust is this candidate's own score adjustment (a rule's boost or
	// demotion, one of the "levers"): the score is multiplied by 1+Adjust,
	// so the zero value changes nothing, 0.5 boosts by half and -0.5
	// demotes by half. It must be greater than -1.
	Adjust float64
}

// Scored is a ranked candidate.
type Scored struct {
	Action        int32
	Candidate     int32 // index into the candidates given to Rank
	Score         float64
	Propensity    float64
	Value         float64
	ContextWeight float64
}

// Ranker ranks candidates for one HCP. It holds the HCP's per-channel logit
// bases, so build one per decision with NewRanker (or Reset a pooled one).
type Ranker struct {
	m      *Model
	x      []float64
	caller arbiter.CallerKind
	// Per channel, for this HCP and caller: the HCP-only part of the
	// logit, the cross-feature weights and the context weight; med* are
	// the same for medical actions (equal to the main ones on a channel
	// without a medical block).
	base, topic, spec, context [arbiter.NumChannels]float64
	medBase, medTopic, medSpec [arbiter.NumChannels]float64
}

// Reset prepares r to rank for the HCP with feature vector x (from
// Vectorize) on behalf of a caller of the given kind. It does not allocate.
func (r *Ranker) Reset(m *Model, x []float64, caller arbiter.CallerKind) {
	r.m, r.x, r.caller = m, x, caller
	for c := range m.channels {
		cm := &m.channels[c]
		if !cm.enabled {
			continue
		}
		r.base[c] = cm.weights.logitBase(x)
		r.topic[c] = cm.topic
		r.spec[c] = cm.specialtyMatch
		r.context[c] = m.context[caller][c]
		if med := cm.medical; med != nil {
			r.medBase[c], r.medTopic[c], r.medSpec[c] = med.logitBase(x), med.topic, med.specialtyMatch
		} else {
			r.medBase[c], r.medTopic[c], r.medSpec[c] = r.base[c], r.topic[c], r.spec[c]
		}
	}
}

// logitBase is the HCP-only part of the logit: the bias and the weighted
// HCP features.
func (wt *weights) logitBase(x []float64) float64 {
	z := wt.bias
	for i, w := range wt.w {
		z += float64(w * x[i]) // rounded: never fused (logit)
	}
	return z
}

// Score scores one candidate.
func (r *Ranker) Score(c *Candidate) Scored {
	score, p, ctx := r.score(c)
	return Scored{Action: c.Action, Score: score, Propensity: p, Value: c.Value, ContextWeight: ctx}
}

func (r *Ranker) score(c *Candidate) (score, propensity, ctx float64) {
	propensity = 1 / (1 + Exp(-r.logit(c))) // the same bits on every CPU (exp.go)
	ctx = r.weight(c)
	return propensity * c.Value * ctx, propensity, ctx
}

// logit is c's log-odds of engaging.
func (r *Ranker) logit(c *Candidate) float64 {
	ch := c.Channel
	if c.Purpose == arbiter.Medical {
		return r.medBase[ch] + float64(r.medTopic[ch]*c.TopicAffinity) + float64(r.medSpec[ch]*c.SpecialtyMatch)
	}
	// Each product converted explicitly: the Go specification then rounds
	// it, so no compiler fuses a multiply and an add (arm64 and amd64 v3
	// would), and a replay gives the same bits on every CPU (exp.go).
	return r.base[ch] + float64(r.topic[ch]*c.TopicAffinity) + float64(r.spec[ch]*c.SpecialtyMatch)
}

// weight is c's context weight times its purpose lever.
func (r *Ranker) weight(c *Candidate) float64 {
	return r.context[c.Channel] * r.m.lever[c.Purpose] * (1 + c.Adjust)
}

// Rank scores every candidate and returns the k best, best first, in
// top[:0] (which should have capacity k to avoid allocating). Ties are
// broken by the lower candidate index, so the result is deterministic.
// It keeps a bounded min-heap of the k best seen: O(n log k), no full sort.
// Candidates on channels the model does not score must be filtered out by
// the caller (Model.Scores).
func (r *Ranker) Rank(cands []Candidate, k int, top []Scored) []Scored {
	top = top[:0]
	if k <= 0 {
		return top
	}
	for i := range cands {
		c := &cands[i]
		// Once the heap is full, most candidates cannot beat its minimum.
		// A cheap upper bound on the score rejects them without calling
		// exp; see boundedOut.
		if len(top) == k && r.boundedOut(c, top[0].Score) {
			continue
		}
		score, p, ctx := r.score(c)
		// Candidates come in index order, so on a tie the newcomer (higher
		// index) ranks below the heap's minimum: only a strictly higher
		// score gets in.
		if len(top) == k && score <= top[0].Score {
			continue
		}
		s := Scored{Action: c.Action, Candidate: int32(i), Score: score, Propensity: p, Value: c.Value, ContextWeight: ctx}
		if len(top) < k {
			top = append(top, s)
			siftUp(top, len(top)-1)
			continue
		}
		top[0] = s
		siftDown(top, 0)
	}
	// Heap to best-first order: repeatedly move the worst to the end.
	for n := len(top) - 1; n > 0; n-- {
		top[0], top[n] = top[n], top[0]
		siftDown(top[:n], 0)
	}
	return top
}

// boundedOut reports whether c's score is certainly <= min, using a bound
// that needs no exp. The score is v/(1+e^-z) with v = value x context x
// lever. For y >= -16, (1+y/16)^16 <= e^y (the sequence rises to e^y), so
// with y = -z, v/(1+(1+y/16)^16) >= score: if even that bound is <= min, so
// is the score. For y < -16 (z > 16) the bound is just v. Exact in the
// sense that it never rejects a candidate that would have got in.
func (r *Ranker) boundedOut(c *Candidate, min float64) bool {
	v := c.Value * r.weight(c)
	u := 1 - r.logit(c)/16
	if u <= 0 {
		return v <= min*(1-1e-9)
	}
	u *= u // ^2
	u *= u // ^4
	u *= u // ^8
	u *= u // ^16
	// The 1e-9 margin keeps rounding from ever rejecting a candidate that
	// scores a hair above min.
	return v <= min*(1+u)*(1-1e-9)
}

// worse reports whether a ranks below b.
func worse(a, b *Scored) bool {
	if a.Score != b.Score {
		return a.Score < b.Score
	}
	return a.Candidate > b.Candidate
}

func siftUp(h []Scored, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !worse(&h[i], &h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func siftDown(h []Scored, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && worse(&h[r], &h[l]) {
			m = r
		}
		if !worse(&h[m], &h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// Contribution is one feature's additive part of a candidate's log-odds.
type Contribution struct {
	Feature string
	Weight  float64
}

// Explain returns the n largest contributions (by magnitude) to c's
// log-odds, largest first. Zero contributions are left out. It allocates;
// call it only for the recommendations returned.
func (r *Ranker) Explain(c *Candidate, n int) []Contribution {
	cm := &r.m.channels[c.Channel].weights
	if med := r.m.channels[c.Channel].medical; med != nil && c.Purpose == arbiter.Medical {
		cm = med
	}
	all := make([]Contribution, 0, len(cm.w)+2)
	for i, w := range cm.w {
		if v := w * r.x[i]; v != 0 {
			all = append(all, Contribution{r.m.features[i].name, v})
		}
	}
	if v := cm.topic * c.TopicAffinity; v != 0 {
		all = append(all, Contribution{FeatureTopicAffinity, v})
	}
	if v := cm.specialtyMatch * c.SpecialtyMatch; v != 0 {
		all = append(all, Contribution{FeatureSpecialtyMatch, v})
	}
	sort.SliceStable(all, func(i, j int) bool { return math.Abs(all[i].Weight) > math.Abs(all[j].Weight) })
	if len(all) > n {
		all = all[:n]
	}
	return all
}
