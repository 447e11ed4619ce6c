package celrules

import (
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
// variables are built once, the lists only when an expression reads them.
func (eng *engine) Evaluate(s *rules.Set, in *rules.Input, out []rules.Applied) ([]rules.Applied, string, uint64) {
	var tags []actionTags
	if in.Catalog == eng.catalog {
		tags = eng.tags
	}
	d := newDecisionVars(in, tags)
	act := &evalState{act: &activation{d: d, medical: true}, memo: make([]memoVal, eng.slots)}
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
	// What the decision would be without medical signals, for the rules
	// that read them and may hold promotion back (evaluate): built only
	// when such a rule is evaluated.
	base := func() *evalState {
		return &evalState{act: &activation{d: d, medical: false}, memo: make([]memoVal, eng.slots)}
	}
	return eng.evaluate(s, in, act, base, out), persona, entry
}

func (eng *engine) evaluate(s *rules.Set, in *rules.Input, act *evalState, newBase func() *evalState, out []rules.Applied) []rules.Applied {
	var base *evalState
	for i := range eng.rules {
		r := &eng.rules[i]
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
	act  interpreter.Activation
	memo []memoVal
}

type memoVal struct {
	done bool
	v    ref.Val
	err  error
}

func (st *evalState) eval(p *program) (ref.Val, error) {
	m := &st.memo[p.slot]
	if !m.done {
		m.v, _, m.err = p.prg.Eval(st.act)
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
// cost).
type decisionVars struct {
	in                          *rules.Input
	split, splitTouches         bool
	events, medicalEvents       ref.Val
	touches, medicalTouches     ref.Val
	profile, engagement, medEng ref.Val
	// now, localHour and caller are boxed once: comprehensions resolve
	// now on every iteration.
	now, localHour, caller ref.Val
	// records holds the events' and touches' records, allocated at once.
	records []record
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
	sentVal       = ref.Val(types.String("sent"))
	reservedVal   = ref.Val(types.String("reserved"))
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

func newDecisionVars(in *rules.Input, tags []actionTags) *decisionVars {
	local := int64(-1)
	if in.Zone != nil {
		local = int64(in.At.In(in.Zone).Hour())
	}
	return &decisionVars{in: in, now: types.Timestamp{Time: in.At}, localHour: types.Int(local), caller: types.String(in.Caller.String()),
		tags: tags}
}

// record returns a fresh record of the decision's.
func (d *decisionVars) record() *record {
	if len(d.records) == cap(d.records) {
		d.records = make([]record, 0, len(d.in.State.Recent)+len(d.in.State.Touches.Touches))
	}
	d.records = d.records[:len(d.records)+1]
	return &d.records[len(d.records)-1]
}

func (d *decisionVars) medicalEngagement(medical bool) ref.Val {
	if !medical {
		return noMedicalEngagement
	}
	if d.medEng == nil {
		d.medEng = types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
			types.String(arbiter.MSLMeeting.String()): types.Double(d.in.State.Counters.Engagement[arbiter.MSLMeeting])})
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
	var commercial, medical []ref.Val
	for i := range d.in.State.Recent {
		m, isMedical := d.eventRecord(&d.in.State.Recent[i])
		if isMedical {
			medical = append(medical, m)
		} else {
			commercial = append(commercial, m)
		}
	}
	d.events = types.NewRefValList(types.DefaultTypeAdapter, commercial)
	d.medicalEvents = types.NewRefValList(types.DefaultTypeAdapter, medical)
}

func (d *decisionVars) splitTouchList() {
	if d.splitTouches {
		return
	}
	d.splitTouches = true
	var commercial, medical []ref.Val
	for i := range d.in.State.Touches.Touches {
		t := &d.in.State.Touches.Touches[i]
		if !t.Counts(d.in.Now) {
			continue
		}
		state := sentVal
		if t.State == contact.Reserved {
			state = reservedVal
		}
		m := d.record()
		m.names, m.n = &touchFields, 6
		var topic, action ref.Val = emptyString, emptyString
		if t.Topic != "" {
			topic = types.String(t.Topic)
		}
		if t.ActionID != "" {
			action = types.String(t.ActionID)
			if i, ok := d.in.Catalog.Lookup(t.ActionID); ok && i < len(d.tags) {
				action = d.tags[i].id
			}
		}
		m.vals = [8]ref.Val{nameVal(channelVals, int(t.Channel)), nameVal(purposeVals, int(t.Purpose)), topic,
			action, state, types.Timestamp{Time: t.At}}
		if t.Channel != arbiter.MSLMeeting && t.Purpose != arbiter.Medical {
			commercial = append(commercial, m)
		} else {
			medical = append(medical, m)
		}
	}
	d.touches = types.NewRefValList(types.DefaultTypeAdapter, commercial)
	d.medicalTouches = types.NewRefValList(types.DefaultTypeAdapter, medical)
}

func (d *decisionVars) profileVal() ref.Val {
	if d.profile == nil {
		prof := &d.in.State.Profile
		attrs := make(map[ref.Val]ref.Val, len(prof.Attributes))
		for k, v := range prof.Attributes {
			attrs[types.String(k)] = types.Double(v)
		}
		d.profile = types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
			kSpecialty: types.String(prof.Specialty), kMarket: types.String(prof.Market), kSegment: types.String(prof.Segment),
			kAudience: types.String(prof.Audience.String()), kTimeZone: types.String(prof.TimeZone),
			kAttributes: types.NewRefValMap(types.DefaultTypeAdapter, attrs)})
	}
	return d.profile
}

func (d *decisionVars) engagementVal() ref.Val {
	if d.engagement == nil {
		m := make(map[ref.Val]ref.Val, arbiter.NumChannels)
		for _, ch := range arbiter.Channels() {
			if ch != arbiter.MSLMeeting {
				m[types.String(ch.String())] = types.Double(d.in.State.Counters.Engagement[ch])
			}
		}
		d.engagement = types.NewRefValMap(types.DefaultTypeAdapter, m)
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
		action = types.String(e.ActionID)
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
	r := d.record()
	r.names, r.n = &eventFields, 8
	r.vals = [8]ref.Val{nameVal(eventTypeVals, int(e.Type)), nameVal(channelVals, int(e.Channel)), topic,
		action, format, depth, purpose, types.Timestamp{Time: e.At}}
	return r, medical
}
