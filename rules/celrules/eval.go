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
	d := &decisionVars{in: in}
	a, err := interpreter.NewActivation(d.bindings(true))
	if err != nil {
		return out, "", 0 // cannot happen with a map of names
	}
	act := &evalState{act: a, memo: make([]memoVal, eng.slots)}
	// What the decision would be without medical signals: personas are
	// worked out on it, and the rules that read medical signals are also
	// evaluated on it (evaluate), so that a medical signal can only add to
	// what rules hold back, never lift it.
	b, err := interpreter.NewActivation(d.bindings(false))
	if err != nil {
		return out, "", 0
	}
	base := &evalState{act: b, memo: make([]memoVal, eng.slots)}
	persona := ""
	for _, p := range eng.personas {
		ok, failed := evalBool(p.when, base)
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
	// Journeys' entry conditions: a promotional journey's on the state
	// without medical signals (it compiled without them).
	var entry uint64
	for i := range eng.journeys {
		j := &eng.journeys[i]
		st := act
		if j.Promotional {
			st = base
		}
		ok, failed := evalBool(j.enter, st)
		if failed && s.OnFailure != nil {
			s.OnFailure("journey:" + j.ID)
		}
		if ok && !failed {
			entry |= 1 << i
		}
	}
	return eng.evaluate(s, in, act, base, out), persona, entry
}

func (eng *engine) evaluate(s *rules.Set, in *rules.Input, act, base *evalState, out []rules.Applied) []rules.Applied {
	for i := range eng.rules {
		r := &eng.rules[i]
		if r.readsMedical && r.Select.SelectsPromotional() {
			// A suppression or demotion of what may be promotional that
			// reads medical signals: without them, does it hold? Then
			// that holds, whatever the medical signals say (they may only
			// add to it).
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
}

func (d *decisionVars) splitEvents() {
	if d.split {
		return
	}
	d.split = true
	var commercial, medical []ref.Val
	for i := range d.in.State.Recent {
		m, isMedical := eventMap(&d.in.State.Recent[i], d.in.Catalog)
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
		state := types.String("sent")
		if t.State == contact.Reserved {
			state = "reserved"
		}
		m := types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
			kChannel: types.String(t.Channel.String()), kPurpose: types.String(t.Purpose.String()), kTopic: types.String(t.Topic),
			kActionID: types.String(t.ActionID), kState: state, kAt: types.Timestamp{Time: t.At}})
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

// bindings are the variables of one of the decision's activations; with
// medical false the medical_ variables are empty: what the decision would
// be without any medical signal.
func (d *decisionVars) bindings(medical bool) map[string]any {
	in := d.in
	local := int64(-1)
	if in.Zone != nil {
		local = int64(in.At.In(in.Zone).Hour())
	}
	b := map[string]any{
		"profile":    func() ref.Val { return d.profileVal() },
		"engagement": func() ref.Val { return d.engagementVal() },
		"events":     func() ref.Val { d.splitEvents(); return d.events },
		"touches":    func() ref.Val { d.splitTouchList(); return d.touches },
		"now":        types.Timestamp{Time: in.At},
		"local_hour": types.Int(local),
		"caller":     types.String(in.Caller.String()),
	}
	if medical {
		b["medical_events"] = func() ref.Val { d.splitEvents(); return d.medicalEvents }
		b["medical_touches"] = func() ref.Val { d.splitTouchList(); return d.medicalTouches }
		b["medical_engagement"] = func() ref.Val {
			return types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
				types.String(arbiter.MSLMeeting.String()): types.Double(in.State.Counters.Engagement[arbiter.MSLMeeting])})
		}
	} else {
		b["medical_events"], b["medical_touches"] = emptyList, emptyList
		b["medical_engagement"] = types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
			types.String(arbiter.MSLMeeting.String()): types.Double(0)})
	}
	return b
}

// eventMap is a recent event as rules see it, with its action's tags, and
// whether it is a medical signal: an MSL meeting, an event on medical
// content (by the event's purpose or its action's), or an event naming an
// action the catalog does not know (it cannot be proven commercial).
func eventMap(e *recipient.RecentEvent, cat *catalog.Catalog) (ref.Val, bool) {
	topic, format, depth, purpose := types.String(e.Topic), emptyString, emptyString, emptyString
	if e.Purpose != arbiter.PurposeUnspecified {
		purpose = types.String(e.Purpose.String())
	}
	medical := e.Type == arbiter.EventMSLMeeting || e.Channel == arbiter.MSLMeeting || e.Purpose == arbiter.Medical
	if e.ActionID != "" {
		i, ok := -1, false
		if cat != nil {
			i, ok = cat.Lookup(e.ActionID)
		}
		if !ok {
			medical = true
		} else {
			a := &cat.Actions[i]
			format, depth, purpose = types.String(a.Format), types.String(a.Depth), types.String(a.Purpose.String())
			if e.Topic == "" {
				topic = types.String(a.Topic)
			}
			medical = medical || a.Purpose == arbiter.Medical
		}
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
		kType: types.String(e.Type.String()), kChannel: types.String(e.Channel.String()), kTopic: topic,
		kActionID: types.String(e.ActionID), kFormat: format, kDepth: depth, kPurpose: purpose, kAt: types.Timestamp{Time: e.At}}), medical
}
