package celrules

import (
	"math"
	"sync"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
)

// Evaluate evaluates every rule's condition for one decision and appends
// the rules that apply to out, and names the persona (rules.Engine). The
// variables are built once, each only when an expression reads it, in a
// pooled scratch (scratch) that nothing outlives the call.
func (eng *engine) Evaluate(s *rules.Set, in *rules.Input, out []rules.Applied) ([]rules.Applied, string, uint64) {
	var tags []actionTags
	if in.Catalog == eng.catalog {
		tags = eng.tags
	}
	sc := scratchPool.Get().(*scratch)
	sc.start(in, tags, eng.slots)
	act := &sc.full
	// Personas and the entry conditions of promotional journeys compiled
	// without the medical variables: on the full activation they read
	// exactly what they would without the medical signals, and share its
	// memo with the rules.
	persona := ""
	for _, p := range eng.personas {
		ok, failed := evalBool(p.when, act)
		if failed {
			if s.OnFailure != nil {
				s.OnFailure("persona:" + p.ID)
			}
			break
		}
		if ok {
			persona = p.ID
			break
		}
	}
	var entry uint64
	for i := range eng.journeys {
		j := &eng.journeys[i]
		ok, failed := evalBool(j.enter, act)
		if failed && s.OnFailure != nil {
			s.OnFailure("journey:" + j.ID)
		}
		if ok && !failed {
			entry |= 1 << i
		}
	}
	out = eng.evaluate(s, in, act, sc.baseState, out)
	sc.reset()
	scratchPool.Put(sc)
	return out, persona, entry
}

// scratch is one decision's variables and memos, pooled: a decision
// otherwise allocated its records, lists and memos anew (pprof: most of
// the bytes Evaluate allocated). Nothing Evaluate returns refers to it.
type scratch struct {
	d          decisionVars
	full, base evalState
	fullAct    activation
	baseAct    activation
	baseMemo   []memoVal
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (sc *scratch) start(in *rules.Input, tags []actionTags, slots int) {
	sc.d.start(in, tags)
	sc.fullAct = activation{d: &sc.d, medical: true}
	sc.full = evalState{act: &sc.fullAct, memo: grow(sc.full.memo, slots)}
	sc.base = evalState{}
}

func grow(memo []memoVal, n int) []memoVal {
	if cap(memo) < n {
		return make([]memoVal, n)
	}
	return memo[:n]
}

// baseState is the decision without its medical signals, for the rules
// that read them and may hold promotion back (evaluate): made only when
// such a rule is evaluated. When the decision has no medical signal, it
// is the full decision itself, memo included: every variable then has
// the same value on both.
func (sc *scratch) baseState() *evalState {
	if sc.d.noMedicalSignal() {
		return &sc.full
	}
	sc.baseAct = activation{d: &sc.d, medical: false}
	sc.baseMemo = grow(sc.baseMemo, len(sc.full.memo))
	sc.base = evalState{act: &sc.baseAct, memo: sc.baseMemo}
	return &sc.base
}

// reset drops the decision's values, keeping the buffers.
func (sc *scratch) reset() {
	for _, st := range []*evalState{&sc.full, &sc.base} {
		if st.frame != nil {
			st.frame.Close()
			st.frame = nil
		}
	}
	clear(sc.full.memo)
	if sc.base.memo != nil {
		clear(sc.base.memo)
	}
	sc.d.reset()
	sc.fullAct, sc.baseAct, sc.base = activation{}, activation{}, evalState{}
}

func (eng *engine) evaluate(s *rules.Set, in *rules.Input, act *evalState, newBase func() *evalState, out []rules.Applied) []rules.Applied {
	var base *evalState
	for i := range eng.rules {
		r := &eng.rules[i]
		if in.Irrelevant(r.Rule) {
			continue // a pre-send check of an action it cannot change
		}
		if r.readsMedical && r.Select.SelectsPromotional() {
			// A suppression or demotion of what may be promotional that
			// reads medical signals: without them, does it hold? Then
			// that holds, whatever the medical signals say (they may only
			// add to it).
			if base == nil {
				base = newBase()
			}
			if ap, ok, _ := r.apply(in, base); ok {
				out = append(out, ap)
				continue
			}
		}
		ap, ok, failed := r.apply(in, act)
		switch {
		case failed:
			if s.OnFailure != nil {
				s.OnFailure(r.ID)
			}
			if r.Effect != rules.Suppress {
				continue // no effect
			}
			ap = rules.Applied{Rule: r.Rule, Failed: true} // fail closed: the whole selector, no clear time
		case !ok:
			continue
		}
		out = append(out, ap)
	}
	return out
}

// apply evaluates r on act: whether it holds (and has not run out), and
// what it then applies.
func (r *compiledRule) apply(in *rules.Input, act *evalState) (ap rules.Applied, holds, failed bool) {
	ap = rules.Applied{Rule: r.Rule}
	ok, failed := evalBool(r.when, act)
	if failed || !ok {
		return ap, false, failed
	}
	if !r.evalSelector(act, &ap) {
		return ap, false, true
	}
	if r.Effect == rules.Suppress {
		since := in.At
		if r.since != nil {
			v, err := act.eval(r.since)
			ts, isTS := v.(types.Timestamp)
			if err != nil || !isTS {
				return ap, false, true
			}
			since = ts.Time
		}
		ap.ClearsAt = since.Add(r.For).UTC()
		if !ap.ClearsAt.After(in.At) {
			return ap, false, false // over already
		}
	}
	return ap, true, false
}

// evalSelector evaluates the selector's topic expressions into ap; false
// when one fails.
func (r *compiledRule) evalSelector(act *evalState, ap *rules.Applied) bool {
	var ok bool
	if r.topicsIn != nil {
		if ap.TopicsIn, ok = evalStrings(r.topicsIn, act); !ok {
			return false
		}
	}
	if r.topicsOut != nil {
		if ap.TopicsNotIn, ok = evalStrings(r.topicsOut, act); !ok {
			return false
		}
	}
	return true
}

// evalState is one decision's activation and the results of the
// expressions evaluated on it so far (program.slot).
type evalState struct {
	act interpreter.Activation
	// frame is act as CEL's execution frame, made when first needed and
	// shared by the decision's programs (Evaluate closes it): a program
	// otherwise takes one from CEL's pool and puts it back on every
	// evaluation (pprof: sync.Pool was a tenth of a decision's rule time
	// with few events).
	frame *interpreter.ExecutionFrame
	memo  []memoVal
}

type memoVal struct {
	done bool
	v    ref.Val
	err  error
}

func (st *evalState) eval(p *program) (ref.Val, error) {
	m := &st.memo[p.slot]
	if !m.done {
		var in any = st.act
		if st.frame == nil {
			if f, err := interpreter.NewExecutionFrame(st.act); err == nil {
				st.frame = f
			}
		}
		if st.frame != nil {
			in = st.frame
		}
		m.v, _, m.err = p.prg.Eval(in)
		m.done = true
	}
	return m.v, m.err
}

func evalBool(p *program, act *evalState) (value, failed bool) {
	v, err := act.eval(p)
	if err != nil {
		return false, true
	}
	b, ok := v.(types.Bool)
	return bool(b), !ok
}

func evalStrings(p *program, act *evalState) ([]string, bool) {
	v, err := act.eval(p)
	if err != nil {
		return nil, false
	}
	l, ok := v.(traits.Lister)
	if !ok {
		return nil, false
	}
	out := []string{}
	for it := l.Iterator(); it.HasNext() == types.True; {
		s, ok := it.Next().(types.String)
		if !ok {
			return nil, false
		}
		out = append(out, string(s))
	}
	return out, true
}

// The keys of the maps rules read, as CEL values, made once.
var (
	kType, kChannel, kTopic, kActionID = types.String("type"), types.String("channel"), types.String("topic"), types.String("action_id")
	kFormat, kDepth, kPurpose, kAt     = types.String("format"), types.String("depth"), types.String("purpose"), types.String("at")
	kState                             = types.String("state")
	kSpecialty, kMarket, kSegment      = types.String("specialty"), types.String("market"), types.String("segment")
	kAudience, kTimeZone, kAttributes  = types.String("audience"), types.String("time_zone"), types.String("attributes")
	emptyString                        = types.String("")
	emptyList                          = types.NewRefValList(types.DefaultTypeAdapter, nil)
)

// decisionVars are one decision's variables, built as CEL values when
// first read and shared by its two activations (with and without the
// medical signals): a value is adapted once per decision, not on every
// access (pprof: adapting Go maps on each field read was much of a rule's
// cost). Its buffers are kept from one decision to the next (scratch).
type decisionVars struct {
	in                      *rules.Input
	split, splitTouches     bool
	events, medicalEvents   ref.Val
	touches, medicalTouches ref.Val
	// profile, engagement and medEng are set when read, to the records
	// below.
	profile, engagement, medEng ref.Val
	// now, localHour and caller are boxed once: comprehensions resolve
	// now on every iteration.
	now, localHour, caller ref.Val
	// records holds the events' and touches' records, vals their fields'
	// values; both are allocated once for the decision's size, and kept.
	records []record
	vals    []ref.Val
	// The lists' elements.
	commercial, medical, commercialT, medicalT []ref.Val
	profileRec, engagementRec, medEngRec       record
	attrs                                      attrMap
	// fixedVals holds medEngRec's value, profileRec's six and
	// engagementRec's (a channel's each, but MSL meeting's and unspecified's).
	fixedVals [1 + 6 + arbiter.NumChannels]ref.Val
	// tags are the catalog's actions' tags as CEL values (engine.tags).
	tags []actionTags
}

// actionTags are a catalog action's id and tags as CEL values, made once
// per compiled set, so that a decision boxes no string for an event on a
// known action.
type actionTags struct {
	id, topic, format, depth, purpose ref.Val
}

func newActionTags(cat *catalog.Catalog) []actionTags {
	out := make([]actionTags, len(cat.Actions))
	for i := range cat.Actions {
		a := &cat.Actions[i]
		out[i] = actionTags{id: types.String(a.ID), topic: types.String(a.Topic), format: types.String(a.Format),
			depth: types.String(a.Depth), purpose: nameVal(purposeVals, int(a.Purpose))}
	}
	return out
}

// The names of channels, purposes and event types as CEL values, boxed
// once.
var (
	channelVals   = namesOf(arbiter.NumChannels, func(i int) string { return arbiter.Channel(i).String() })
	purposeVals   = namesOf(arbiter.NumPurposes, func(i int) string { return arbiter.Purpose(i).String() })
	eventTypeVals = namesOf(arbiter.NumEventTypes, func(i int) string { return arbiter.EventType(i).String() })
	callerVals    = namesOf(arbiter.NumCallerKinds, func(i int) string { return arbiter.CallerKind(i).String() })
	audienceVals  = namesOf(int(arbiter.Patient)+1, func(i int) string { return arbiter.Audience(i).String() })
	sentVal       = ref.Val(types.String("sent"))
	// localHourVals are the local hours -1 (unknown) to 23, boxed once.
	localHourVals = func() (out [25]ref.Val) {
		for i := range out {
			out[i] = types.Int(i - 1)
		}
		return out
	}()
	reservedVal = ref.Val(types.String("reserved"))
)

// nameVal is vals[i], or "" for an index out of range.
func nameVal(vals []ref.Val, i int) ref.Val {
	if i >= 0 && i < len(vals) {
		return vals[i]
	}
	return emptyString
}

func namesOf(n int, name func(int) string) []ref.Val {
	out := make([]ref.Val, n)
	for i := range out {
		out[i] = types.String(name(i))
	}
	return out
}

func (d *decisionVars) start(in *rules.Input, tags []actionTags) {
	local := int64(-1)
	if in.Zone != nil {
		local = int64(in.At.In(in.Zone).Hour())
	}
	d.in, d.tags = in, tags
	d.now, d.localHour, d.caller = types.Timestamp{Time: in.At}, localHourVals[local+1], callerVal(in.Caller)
}

// reset drops the decision's values, keeping the buffers (whose elements
// are cleared, so that a pooled scratch holds no decision's data).
func (d *decisionVars) reset() {
	clear(d.records)
	clear(d.vals)
	clear(d.commercial)
	clear(d.medical)
	clear(d.commercialT)
	clear(d.medicalT)
	clear(d.fixedVals[:])
	*d = decisionVars{records: d.records[:0], vals: d.vals[:0], commercial: d.commercial[:0], medical: d.medical[:0],
		commercialT: d.commercialT[:0], medicalT: d.medicalT[:0]}
}

// callerVal is the caller kind's name as a CEL value, boxed once per kind.
func callerVal(c arbiter.CallerKind) ref.Val {
	if int(c) >= 0 && int(c) < len(callerVals) {
		return callerVals[c]
	}
	return types.String(c.String())
}

// record returns a fresh record of the decision's, with n values.
func (d *decisionVars) record(names []types.String) *record {
	if len(d.records) == cap(d.records) {
		n := len(d.in.State.Recent) + len(d.in.State.Touches.Touches)
		d.records = make([]record, 0, n)
		d.vals = make([]ref.Val, 0, n*len(eventFields))
	}
	if len(d.vals)+len(names) > cap(d.vals) {
		d.vals = make([]ref.Val, 0, cap(d.records)*len(eventFields))
	}
	d.records = d.records[:len(d.records)+1]
	r := &d.records[len(d.records)-1]
	r.names = names
	r.vals = d.vals[len(d.vals) : len(d.vals)+len(names) : len(d.vals)+len(names)]
	d.vals = d.vals[:len(d.vals)+len(names)]
	return r
}

// noMedicalSignal reports whether the decision has no medical signal: no
// medical event or touch, and no MSL engagement. Its variables then read
// the same with and without the medical signals.
func (d *decisionVars) noMedicalSignal() bool {
	d.splitEvents()
	d.splitTouchList()
	return len(d.medical) == 0 && len(d.medicalT) == 0 &&
		math.Float64bits(d.in.State.Counters.Engagement[arbiter.MSLMeeting]) == 0
}

func (d *decisionVars) medicalEngagement(medical bool) ref.Val {
	if !medical {
		return noMedicalEngagement
	}
	if d.medEng == nil {
		d.medEngRec = record{names: medEngFields, vals: d.fixedVals[:1:1]}
		d.medEngRec.vals[0] = types.Double(d.in.State.Counters.Engagement[arbiter.MSLMeeting])
		d.medEng = &d.medEngRec
	}
	return d.medEng
}

var noMedicalEngagement = types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
	types.String(arbiter.MSLMeeting.String()): types.Double(0)})

func (d *decisionVars) splitEvents() {
	if d.split {
		return
	}
	d.split = true
	for i := range d.in.State.Recent {
		m, isMedical := d.eventRecord(&d.in.State.Recent[i])
		if isMedical {
			d.medical = append(d.medical, m)
		} else {
			d.commercial = append(d.commercial, m)
		}
	}
	d.events, d.medicalEvents = listOf(d.commercial), listOf(d.medical)
}

func (d *decisionVars) splitTouchList() {
	if d.splitTouches {
		return
	}
	d.splitTouches = true
	for i := range d.in.State.Touches.Touches {
		t := &d.in.State.Touches.Touches[i]
		if !t.Counts(d.in.Now) {
			continue
		}
		state := sentVal
		if t.State == contact.Reserved {
			state = reservedVal
		}
		m := d.record(touchFields)
		var topic, action ref.Val = emptyString, emptyString
		if t.Topic != "" {
			topic = types.String(t.Topic)
		}
		if t.ActionID != "" {
			// Boxed only when the catalog's tags do not have it boxed.
			if i, ok := d.in.Catalog.Lookup(t.ActionID); ok && i < len(d.tags) {
				action = d.tags[i].id
			} else {
				action = types.String(t.ActionID)
			}
		}
		copy(m.vals, []ref.Val{nameVal(channelVals, int(t.Channel)), nameVal(purposeVals, int(t.Purpose)), topic,
			action, state, types.Timestamp{Time: t.At}})
		if t.Channel != arbiter.MSLMeeting && t.Purpose != arbiter.Medical {
			d.commercialT = append(d.commercialT, m)
		} else {
			d.medicalT = append(d.medicalT, m)
		}
	}
	d.touches, d.medicalTouches = listOf(d.commercialT), listOf(d.medicalT)
}

// listOf is elems as a CEL list; an empty one is shared (most recipients
// have no recent event).
func listOf(elems []ref.Val) ref.Val {
	if len(elems) == 0 {
		return emptyList
	}
	return types.NewRefValList(types.DefaultTypeAdapter, elems)
}

func (d *decisionVars) profileVal() ref.Val {
	if d.profile == nil {
		prof := &d.in.State.Profile
		d.attrs.m = prof.Attributes
		d.profileRec = record{names: profileFields, vals: d.fixedVals[1:7:7]}
		copy(d.profileRec.vals, []ref.Val{stringVal(prof.Specialty), stringVal(prof.Market), stringVal(prof.Segment),
			audienceVal(prof.Audience), stringVal(prof.TimeZone), &d.attrs})
		d.profile = &d.profileRec
	}
	return d.profile
}

// stringVal is s as a CEL value ("" boxed once).
func stringVal(s string) ref.Val {
	if s == "" {
		return emptyString
	}
	return types.String(s)
}

func audienceVal(a arbiter.Audience) ref.Val {
	if int(a) >= 0 && int(a) < len(audienceVals) {
		return audienceVals[a]
	}
	return types.String(a.String())
}

func (d *decisionVars) engagementVal() ref.Val {
	if d.engagement == nil {
		d.engagementRec = record{names: engagementFields, vals: d.fixedVals[7 : 7+len(engagementFields) : 7+len(engagementFields)]}
		i := 0
		for _, ch := range arbiter.Channels() {
			if ch != arbiter.MSLMeeting {
				d.engagementRec.vals[i] = types.Double(d.in.State.Counters.Engagement[ch])
				i++
			}
		}
		d.engagement = &d.engagementRec
	}
	return d.engagement
}

// eventRecord is a recent event as rules see it, with its action's tags, and
// whether it is a medical signal: an MSL meeting, an event on medical
// content (by the event's purpose or its action's), or an event naming an
// action the catalog does not know (it cannot be proven commercial).
func (d *decisionVars) eventRecord(e *recipient.RecentEvent) (ref.Val, bool) {
	cat := d.in.Catalog
	var topic ref.Val = emptyString
	if e.Topic != "" {
		topic = types.String(e.Topic)
	}
	var format, depth, purpose, action ref.Val = emptyString, emptyString, nameVal(purposeVals, int(e.Purpose)), emptyString
	if e.Purpose == arbiter.PurposeUnspecified {
		purpose = emptyString
	}
	medical := e.Type == arbiter.EventMSLMeeting || e.Channel == arbiter.MSLMeeting || e.Purpose == arbiter.Medical
	if e.ActionID != "" {
		action = nil // boxed below only when the catalog's tags do not have it boxed
		i, ok := -1, false
		if cat != nil {
			i, ok = cat.Lookup(e.ActionID)
		}
		if !ok {
			medical = true
		} else {
			a := &cat.Actions[i]
			if d.tags != nil && i < len(d.tags) {
				t := &d.tags[i]
				action, format, depth, purpose = t.id, t.format, t.depth, t.purpose
				if e.Topic == "" {
					topic = t.topic
				}
			} else {
				format, depth, purpose = types.String(a.Format), types.String(a.Depth), nameVal(purposeVals, int(a.Purpose))
				if e.Topic == "" {
					topic = types.String(a.Topic)
				}
			}
			medical = medical || a.Purpose == arbiter.Medical
		}
	}
	if action == nil {
		action = types.String(e.ActionID)
	}
	r := d.record(eventFields)
	copy(r.vals, []ref.Val{nameVal(eventTypeVals, int(e.Type)), nameVal(channelVals, int(e.Channel)), topic,
		action, format, depth, purpose, types.Timestamp{Time: e.At}})
	return r, medical
}
