package decision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
	"github.com/arbiter-nba/arbiter/scoring"
)

// Loader loads everything a decision needs about one recipient in one round
// trip, with the counters decayed to at (a zero at: as stored). The storage
// adapter (redisstore.Store) and the cache in front of it (hcpcache.Cache)
// implement it.
type Loader interface {
	Load(ctx context.Context, hcpID string, at time.Time) (*recipient.State, error)
}

// Request asks for a decision.
type Request struct {
	HCPID string
	// Limit is how many recommendations to return (> 0).
	Limit int
	// Candidates are action ids; empty means the whole catalog, or the
	// candidate set when one is named.
	Candidates []string
	// CandidateSet names a catalog candidate set to use instead of
	// Candidates (giving both is invalid).
	CandidateSet string
	Caller       arbiter.CallerKind
	// At is the decision time; zero means the engine's clock.
	At time.Time
	// Channels restricts recommendations to these channels; empty: all.
	Channels []arbiter.Channel
	// Explain asks for contributions, reasons and suppression details.
	Explain bool
	// Territories, when not nil, restricts the decision to recipients of
	// one of them (a rep tool's): any other recipient is answered as an
	// unknown one is, arbiter.ErrNotFound, after the same load, so that
	// the answer does not tell that it exists.
	Territories []string
}

// Result is a decision. Suppressed lists every candidate that applies to
// the HCP but must not be sent now, with its reason; candidates that do not
// apply to the HCP at all (Block.NotApplicable) are listed only when the
// request asked to explain.
type Result struct {
	ID             string
	At             time.Time
	ModelVersion   string
	CatalogVersion string
	// DefinitionsVersion names the definitions set the engine was built
	// from (WithDefinitionsVersion); empty when it was not named.
	DefinitionsVersion string
	// Persona is the recipient's dynamic persona at the decision time
	// (the rules' personas); empty when none holds, and the profile's
	// segment stands.
	Persona         string
	Recommendations []Recommendation
	Suppressed      []Suppression

	// What the decision was made from, for its receipt (Receipt): the
	// recipient's state as loaded (shared with the loader: read only), the
	// server's clock when it was made, and the journeys operators had
	// paused (nil: none).
	Inputs *recipient.State
	Now    time.Time
	Paused map[string]bool
	// Catalog is the catalog the decision used (read only), and
	// CandidateIndexes the request's candidates as indexes in it (nil when
	// the request named none).
	Catalog          *catalog.Catalog
	CandidateIndexes []int32
}

// Recommendation is one ranked action.
type Recommendation struct {
	Rank          int
	Action        *catalog.Action
	Score         float64
	Propensity    float64
	Value         float64
	ContextWeight float64
	// Contributions and Reason are set when the request asked to explain.
	Contributions []scoring.Contribution
	Reason        string
	// Rules are the ids of the behaviour rules that boosted or demoted it.
	Rules []string
	// Journey is the journey step it is, when a journey preferred it
	// (nil: none).
	Journey *JourneyStep
}

// Suppression is a candidate that may not be recommended: the first gate
// that blocked it.
type Suppression struct {
	ActionID string
	Reason   Reason
	// Detail is set when the request asked to explain.
	Detail string
	// ClearsAt is when the block lifts by itself, where known (Block).
	ClearsAt time.Time
	// Index is the action's index in the engine's catalog (Result.Catalog).
	Index int32
}

// Engine makes decisions. It is safe for concurrent use.
type Engine struct {
	loader Loader
	// gates are checked in this order; Decide stops at the first block.
	gates   []Gate
	model   *scoring.Model
	catalog *catalog.Catalog
	policy  *consent.Policy
	clock   func() time.Time
	ids     *idSource
	scratch sync.Pool
	// allActions lists every catalog index: the candidates of a request
	// that names none. Read only.
	allActions []int32
	// topicIndex maps each catalog topic to its index in
	// catalog.Topics (topicAffinity). Read only.
	topicIndex  map[string]int32
	extraGates  []Gate
	defsVersion string
	contact     *contact.Policy
	booker      Booker
	rules       *rules.Set
	receiptEnc  func(*Receipt) ([]byte, error)
	// paused names the journeys operators paused (SetPausedJourneys).
	paused atomic.Pointer[map[string]bool]
	// observer is told of each decision's phases (WithObserver; nil:
	// none, and nothing is called).
	observer Observer
}

// defaultGates are the built-in gates, cheapest first: which gate blocks
// first decides only which reason a candidate blocked by several is shown
// with (CheckAll shows them all).
func (e *Engine) defaultGates() []Gate {
	return []Gate{
		channelGate{},
		coverageGate{e.model},
		eligibilityGate{},
		consentGate{e.policy},
		gapGate{&e.catalog.MinGap},
		capGate{e.contact},
		policyGapGate{e.contact},
		quietGate{e.contact},
		dismissalGate{},
		ruleGate{},
		journeyGate{},
	}
}

// SetPausedJourneys sets the journeys operators paused, by id: no step of
// theirs is due until they are resumed (nil: none). Safe to call while
// deciding.
func (e *Engine) SetPausedJourneys(ids map[string]bool) {
	if len(ids) == 0 {
		e.paused.Store(nil)
		return
	}
	e.paused.Store(&ids)
}

// pausedNow is the journeys operators paused (nil: none).
func (e *Engine) pausedNow() map[string]bool {
	if p := e.paused.Load(); p != nil {
		return *p
	}
	return nil
}

// WithRules sets the behaviour rules (nil: none).
func WithRules(r *rules.Set) Option { return func(e *Engine) { e.rules = r } }

// evaluate works out what the behaviour rules say of a decision about
// in.State at in.At: the rules that hold (into in.applied, reusing it),
// the recipient's progress in each journey (into in.journeys, reusing it,
// with jb as scratch), and the recipient's persona ("" for none).
func (e *Engine) evaluate(in *GateInput, jb *rules.Buffer, paused map[string]bool) string {
	in.applied, in.journeys = in.applied[:0], in.journeys[:0]
	if e.rules.Empty() {
		return ""
	}
	st := in.State
	var zone *time.Location
	if zs := e.contact.Zones(st.Profile.Market, st.Profile.TimeZone); len(zs) == 1 {
		zone = zs[0]
	}
	var persona string
	var entry uint64
	in.applied, persona, entry = e.rules.EvaluateAll(&rules.Input{State: st, Catalog: e.catalog, At: in.At, Now: in.Now,
		Caller: in.Request.Caller, Zone: zone, Send: in.send}, in.applied)
	if len(e.rules.Journeys) > 0 {
		in.steps = e.rules.ActionSteps
		for i, j := range e.rules.Journeys {
			p := j.Progress(st, e.catalog, in.At, entry&(1<<i) != 0, persona, jb)
			p.Paused = paused[j.ID]
			in.journeys = append(in.journeys, p)
		}
	}
	return persona
}

// WithContactPolicy sets the contact policy: caps, gaps and quiet hours
// (nil: none, only the catalog's minimum gaps).
func WithContactPolicy(p *contact.Policy) Option { return func(e *Engine) { e.contact = p } }

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock used when a request has no decision time.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.clock = now } }

// WithDefinitionsVersion names the definitions set (catalog, model and
// policy) the engine is built from; every Result carries it.
func WithDefinitionsVersion(v string) Option { return func(e *Engine) { e.defsVersion = v } }

// WithGates adds gates after the built-in ones (defaultGates).
func WithGates(g ...Gate) Option {
	return func(e *Engine) { e.extraGates = append(e.extraGates, g...) }
}

// New returns an engine. All dependencies are required; a missing one, or
// a nil clock, is an error.
func New(loader Loader, model *scoring.Model, cat *catalog.Catalog, policy *consent.Policy, opts ...Option) (*Engine, error) {
	e := &Engine{loader: loader, model: model, catalog: cat, policy: policy, clock: time.Now, ids: newIDSource()}
	for _, o := range opts {
		o(e)
	}
	switch {
	case loader == nil:
		return nil, errors.New("decision: nil loader")
	case model == nil || cat == nil || policy == nil:
		return nil, errors.New("decision: the model, catalog and consent policy are required")
	case e.clock == nil:
		return nil, errors.New("decision: nil clock")
	}
	e.gates = append(e.defaultGates(), e.extraGates...)
	for _, g := range e.gates {
		if g == nil {
			return nil, errors.New("decision: nil gate")
		}
	}
	e.scratch.New = func() any { return new(scratch) }
	e.allActions = make([]int32, len(cat.Actions))
	for i := range e.allActions {
		e.allActions[i] = int32(i)
	}
	e.topicIndex = make(map[string]int32, len(cat.Topics))
	for i, t := range cat.Topics {
		e.topicIndex[t] = int32(i)
	}
	return e, nil
}

// Catalog returns the engine's catalog.
func (e *Engine) Catalog() *catalog.Catalog { return e.catalog }

// DefinitionsVersion names the definitions set the engine was built from
// (WithDefinitionsVersion).
func (e *Engine) DefinitionsVersion() string { return e.defsVersion }

// ModelVersion returns the version of the engine's model.
func (e *Engine) ModelVersion() string { return e.model.Version }

// scratch holds per-decision buffers, reused across decisions.
type scratch struct {
	x       []float64
	actions []int32
	cands   []scoring.Candidate
	sups    []Suppression
	top     []scoring.Scored
	topics  []float64
	ranker  scoring.Ranker
	profile scoring.Profile
	// seen[i] == stamp marks catalog action i as named in this request.
	seen  []uint32
	stamp uint32
	// req, in and blk are the gates' input and answer (Decide), contact
	// the contact gates' memo, and applied the rules that hold.
	req      Request
	in       GateInput
	blk      Block
	contact  contactMemo
	applied  []rules.Applied
	journeys []rules.Progress
	jbuf     rules.Buffer
}

// forget drops what the gates' input points to, so that the pooled
// scratch keeps no recipient state or request alive.
func (s *scratch) forget() {
	s.req, s.in, s.blk = Request{}, GateInput{}, Block{}
	s.contact.reset()
	clear(s.applied)
	s.applied = s.applied[:0]
	clear(s.journeys)
	s.journeys = s.journeys[:0]
}

// Decide makes one decision. Unknown or repeated candidate ids are an
// *arbiter.InvalidError; storage errors are returned wrapped
// (arbiter.ErrNotFound, arbiter.ErrUnavailable).
func (e *Engine) Decide(ctx context.Context, req Request) (*Result, error) {
	return e.decide(ctx, req, nil)
}

// given is what a replay fixes instead of loading it and reading clocks.
type given struct {
	id      string
	at, now time.Time
	state   *recipient.State
	paused  map[string]bool
}

func (e *Engine) decide(ctx context.Context, req Request, g *given) (*Result, error) {
	s := e.scratch.Get().(*scratch)
	defer e.scratch.Put(s)

	var (
		actions []int32
		at, now time.Time
		snap    *recipient.State
		err     error
		paused  map[string]bool
		id      string
	)
	if g == nil {
		actions, at, now, snap, err = e.load(ctx, &req, s)
		if p := e.paused.Load(); p != nil {
			paused = *p
		}
	} else {
		actions, err = e.resolve(&req, s)
		at, now, snap, paused, id = g.at, g.now, g.state, g.paused, g.id
	}
	if err != nil {
		return nil, fmt.Errorf("decide: %w", err)
	}
	if id == "" {
		id = e.ids.next(now, req.HCPID)
	}
	res := &Result{
		ID: id, At: at,
		ModelVersion: e.model.Version, CatalogVersion: e.catalog.Version, DefinitionsVersion: e.defsVersion,
		Inputs: snap, Now: now, Paused: paused, Catalog: e.catalog,
	}
	if len(req.Candidates) > 0 {
		res.CandidateIndexes = slices.Clone(actions)
	}

	prof := &snap.Profile
	// The gates' input and answer live in the pooled scratch: passed to an
	// interface, locals would be moved to the heap on every decision.
	s.req = req
	in, b := &s.in, &s.blk
	*in = GateInput{State: snap, Request: &s.req, At: at, Now: now, contact: &s.contact, applied: s.applied, journeys: s.journeys,
		Recipient: catalog.Recipient{Market: prof.Market, Specialty: prof.Specialty, Audience: prof.Audience}}
	defer s.forget()
	// The phases are observed only with an observer: without one, nothing
	// is called and nothing escapes (BenchmarkDecide's allocations).
	var pctx context.Context
	if e.observer != nil {
		pctx = e.observer.StartPhase(ctx, PhaseGates)
	}
	persona := e.evaluate(in, &s.jbuf, paused)
	s.applied, s.journeys = in.applied, in.journeys
	res.Persona = persona
	s.topics = e.topicAffinity(snap, s.topics)
	cands, sups := s.cands[:0], s.sups[:0]
	for _, ai := range actions {
		a := &e.catalog.Actions[ai]
		in.Action = a
		if e.check(in, b) {
			if req.Explain || !b.NotApplicable {
				sups = append(sups, Suppression{ActionID: a.ID, Reason: b.Reason, Detail: b.Detail, ClearsAt: b.ClearsAt, Index: ai})
			}
			*b = Block{}
			continue
		}
		c := scoring.Candidate{Action: ai, Channel: a.Channel, Purpose: a.Purpose, Value: a.Value}
		if len(in.applied)+len(in.journeys) > 0 {
			f := ruleFactor(in.applied, in)
			if len(in.journeys) > 0 {
				f *= journeyFactor(in)
			}
			c.Adjust = f - 1
		}
		if a.TopicIndex >= 0 {
			c.TopicAffinity = s.topics[a.TopicIndex]
		}
		if len(a.Specialties) > 0 && slices.Contains(a.Specialties, prof.Specialty) {
			c.SpecialtyMatch = 1
		}
		cands = append(cands, c)
	}
	s.cands = cands
	// The result gets its suppressions in one allocation of the right size,
	// rather than the log2(n) of growing its own slice (BenchmarkDecide).
	if len(sups) > 0 {
		res.Suppressed = slices.Clone(sups)
	}
	clear(sups) // the pooled buffer keeps no details alive
	s.sups = sups[:0]
	if e.observer != nil {
		e.observer.EndPhase(pctx, PhaseGates, PhaseEnd{Candidates: len(actions), Suppressed: len(res.Suppressed), Persona: persona})
		pctx = e.observer.StartPhase(ctx, PhaseScoring)
	}

	fillProfile(&s.profile, snap, at)
	if persona != "" {
		// The dynamic persona takes the place of the CRM's segment: it
		// selects the model's segment weights.
		s.profile.Segment = persona
	}
	s.x = e.model.Vectorize(&s.profile, s.x)
	s.ranker.Reset(e.model, s.x, req.Caller)
	if cap(s.top) < req.Limit {
		s.top = make([]scoring.Scored, 0, req.Limit)
	}
	s.top = s.ranker.Rank(cands, req.Limit, s.top)

	res.Recommendations = make([]Recommendation, len(s.top))
	for i, t := range s.top {
		a := &e.catalog.Actions[t.Action]
		r := Recommendation{Rank: i + 1, Action: a, Score: t.Score, Propensity: t.Propensity,
			Value: t.Value, ContextWeight: t.ContextWeight}
		for j := range s.applied {
			ap := &s.applied[j]
			if (ap.Rule.Effect == rules.Boost || ap.Rule.Effect == rules.Demote) && ap.Matches(a) {
				r.Rules = append(r.Rules, ap.Rule.ID)
			}
		}
		if len(in.journeys) > 0 {
			in.Action = a
			r.Journey = journeyStepOf(in)
		}
		if req.Explain {
			r.Contributions = s.ranker.Explain(&cands[t.Candidate], 3)
			r.Reason = sentence(a, r.Contributions, snap, at, e.catalog) + ruleSentence(s.applied, a) + journeySentence(r.Journey) + firewallSentence(a)
		}
		res.Recommendations[i] = r
	}
	if e.observer != nil {
		e.observer.EndPhase(pctx, PhaseScoring, PhaseEnd{Candidates: len(cands), Recommendations: len(res.Recommendations)})
	}
	return res, nil
}

// load resolves req's candidates, fixes the decision time (the engine's
// clock, now, when req has none) and loads the recipient's state, in one
// round trip. An invalid request is an *arbiter.InvalidError.
func (e *Engine) load(ctx context.Context, req *Request, s *scratch) (actions []int32, at, now time.Time, st *recipient.State, err error) {
	if actions, err = e.resolve(req, s); err != nil {
		return nil, at, now, nil, err
	}
	now = e.clock().UTC() // UTC, without a monotonic reading: as a receipt gives it back
	if at = req.At; at.IsZero() {
		at = now
	}
	if e.observer != nil {
		ctx = e.observer.StartPhase(ctx, PhaseLoad)
	}
	st, err = e.loader.Load(ctx, req.HCPID, at)
	if err == nil && req.Territories != nil && !sharesAny(st.Profile.Territories, req.Territories) {
		actions, st, err = nil, nil, fmt.Errorf("load: %w", arbiter.ErrNotFound)
	}
	if e.observer != nil {
		e.observer.EndPhase(ctx, PhaseLoad, PhaseEnd{Err: err, Candidates: len(actions)})
	}
	return actions, at, now, st, err
}

// sharesAny reports whether a and b have an element in common.
func sharesAny(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// resolve returns the request's candidates as catalog indexes: its
// candidate set's, its ids' (rejecting unknown and repeated ids), or the
// whole catalog. Repeats are found with a per-scratch stamp per action, so
// the check is linear in the number of candidates.
func (e *Engine) resolve(req *Request, s *scratch) ([]int32, error) {
	ids := req.Candidates
	if req.CandidateSet != "" {
		if len(ids) > 0 {
			return nil, arbiter.Invalid("candidate_set", "give either candidates or a candidate set, not both")
		}
		set, ok := e.catalog.Set(req.CandidateSet)
		if !ok {
			return nil, arbiter.Invalid("candidate_set", "no candidate set of this name in the catalog")
		}
		return set, nil
	}
	if len(ids) == 0 {
		return e.allActions, nil
	}
	out := s.actions[:0]
	if len(s.seen) != len(e.catalog.Actions) {
		s.seen = make([]uint32, len(e.catalog.Actions))
	}
	if s.stamp++; s.stamp == 0 { // wrapped: forget old stamps
		clear(s.seen)
		s.stamp = 1
	}
	var inv arbiter.InvalidError
	for i, id := range ids {
		ai, ok := e.catalog.Lookup(id)
		if !ok {
			inv.Add(fmt.Sprintf("candidates[%d]", i), "unknown action id")
			continue
		}
		if s.seen[ai] == s.stamp {
			inv.Add(fmt.Sprintf("candidates[%d]", i), "duplicate action id")
			continue
		}
		s.seen[ai] = s.stamp
		out = append(out, int32(ai))
	}
	s.actions = out // keep the grown buffer for the next decision
	return out, inv.Err()
}

// Reasons lists every reason the engine's gates can block with, once each,
// in gate order: what the API must be able to say.
func (e *Engine) Reasons() []Reason {
	var out []Reason
	for _, g := range e.gates {
		for _, r := range g.Reasons() {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// check reports whether a gate blocks the candidate, filling b with the
// first gate's block.
func (e *Engine) check(in *GateInput, b *Block) bool {
	for _, g := range e.gates {
		if g.Check(in, b) {
			return true
		}
	}
	return false
}

// CandidateCheck is every gate's block of one candidate (CheckAll).
type CandidateCheck struct {
	ActionID string
	// Blocks are the blocks of every gate that holds the candidate back,
	// in the engine's gate order; empty: the candidate may be recommended.
	Blocks []Block
}

// CheckAll asks every gate about every candidate of req, for the checks
// that must report every block (a pre-send check, "why not"), where Decide
// stops at a candidate's first. It loads the recipient's state once, in
// one round trip, and scores nothing. Details are set when req.Explain.
func (e *Engine) CheckAll(ctx context.Context, req Request) ([]CandidateCheck, error) {
	s := e.scratch.Get().(*scratch)
	defer e.scratch.Put(s)
	actions, at, now, snap, err := e.load(ctx, &req, s)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return e.checkAll(&req, actions, snap, at, now, e.pausedNow()), nil
}

// CheckGiven is CheckAll on a given state, as of now (the server's clock
// then): for what the server knew at a past time (WhyNot as of a time),
// from a receipt's inputs. Nothing is loaded.
func (e *Engine) CheckGiven(req Request, st *recipient.State, now time.Time, paused map[string]bool) ([]CandidateCheck, error) {
	s := e.scratch.Get().(*scratch)
	defer e.scratch.Put(s)
	actions, err := e.resolve(&req, s)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	at := req.At
	if at.IsZero() {
		at = now
	}
	if req.Territories != nil && !sharesAny(st.Profile.Territories, req.Territories) {
		return nil, fmt.Errorf("check: %w", arbiter.ErrNotFound)
	}
	return e.checkAll(&req, actions, st, at, now, paused), nil
}

func (e *Engine) checkAll(req *Request, actions []int32, snap *recipient.State, at, now time.Time, paused map[string]bool) []CandidateCheck {
	prof := &snap.Profile
	in := GateInput{State: snap, Request: req, At: at, Now: now, paused: paused,
		Recipient: catalog.Recipient{Market: prof.Market, Specialty: prof.Specialty, Audience: prof.Audience}}
	e.evaluate(&in, &rules.Buffer{}, paused)
	out := make([]CandidateCheck, len(actions))
	for i, ai := range actions {
		in.Action = &e.catalog.Actions[ai]
		out[i].ActionID = in.Action.ID
		for _, g := range e.gates {
			var b Block
			if g.Check(&in, &b) {
				out[i].Blocks = append(out[i].Blocks, b)
			}
		}
	}
	return out
}

// topicAffinity returns the HCP's engagement per catalog topic. It looks
// up whichever is smaller, the HCP's topics or the catalog's: an HCP has
// engaged with a few topics, a large catalog has many.
func (e *Engine) topicAffinity(snap *recipient.State, buf []float64) []float64 {
	topics := e.catalog.Topics
	mine := snap.Counters.Topics
	if len(mine) >= len(topics) {
		buf = buf[:0]
		for _, t := range topics {
			buf = append(buf, mine[t])
		}
		return buf
	}
	buf = slices.Grow(buf[:0], len(topics))[:len(topics)]
	clear(buf)
	for t, v := range mine {
		if i, ok := e.topicIndex[t]; ok {
			buf[i] = v
		}
	}
	return buf
}

func fillProfile(p *scoring.Profile, snap *recipient.State, at time.Time) {
	c := &snap.Counters
	p.Engagement = c.Engagement
	p.Sent = c.Sent
	for ch := range p.DaysSinceContact {
		p.DaysSinceContact[ch] = daysSince(c.LastContact[ch], at)
	}
	p.DaysSinceEngagement = daysSince(c.LastEngagement, at)
	p.Segment = snap.Profile.Segment
	p.Specialty = snap.Profile.Specialty
	p.Attributes = snap.Profile.Attributes
}

func daysSince(t, at time.Time) float64 {
	if t.IsZero() {
		return scoring.MaxDays
	}
	d := at.Sub(t).Hours() / 24
	if d < 0 {
		return 0
	}
	return min(d, scoring.MaxDays)
}
