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
	a, err := interpreter.NewActivation(vars(in, true))
	if err != nil {
		return out, "", 0 // cannot happen with a map of names
	}
	act := &evalState{act: a, memo: make([]memoVal, eng.slots)}
	// What the decision would be without medical signals: personas are
	// worked out on it, and the rules that read medical signals are also
	// evaluated on it (evaluate), so that a medical signal can only add to
	// what rules hold back, never lift it.
	b, err := interpreter.NewActivation(vars(in, false))
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

// vars binds the environment's variables for one decision; the lists are
// built when first read. With medical false the medical_ variables are
// empty: what the decision would be without any medical signal.
func vars(in *rules.Input, medical bool) map[string]any {
	st := in.State
	prof := &st.Profile
	local := int64(-1)
	if in.Zone != nil {
		local = int64(in.At.In(in.Zone).Hour())
	}
	var commercial, medicalEvents []any
	split := func() {
		if commercial != nil {
			return
		}
		commercial, medicalEvents = []any{}, []any{}
		for i := range st.Recent {
			e := &st.Recent[i]
			m, isMedical := eventMap(e, in.Catalog)
			switch {
			case !isMedical:
				commercial = append(commercial, m)
			case medical:
				medicalEvents = append(medicalEvents, m)
			}
		}
	}
	var touches, medicalTouches []any
	splitTouches := func() {
		if touches != nil {
			return
		}
		touches, medicalTouches = []any{}, []any{}
		for i := range st.Touches.Touches {
			t := &st.Touches.Touches[i]
			if !t.Counts(in.Now) {
				continue
			}
			state := "sent"
			if t.State == contact.Reserved {
				state = "reserved"
			}
			m := map[string]any{"channel": t.Channel.String(), "purpose": t.Purpose.String(),
				"topic": t.Topic, "action_id": t.ActionID, "state": state, "at": t.At}
			switch {
			case t.Channel != arbiter.MSLMeeting && t.Purpose != arbiter.Medical:
				touches = append(touches, m)
			case medical:
				medicalTouches = append(medicalTouches, m)
			}
		}
	}
	return map[string]any{
		"profile": func() any {
			attrs := make(map[string]any, len(prof.Attributes))
			for k, v := range prof.Attributes {
				attrs[k] = v
			}
			return map[string]any{"specialty": prof.Specialty, "market": prof.Market, "segment": prof.Segment,
				"audience": prof.Audience.String(), "time_zone": prof.TimeZone, "attributes": attrs}
		},
		"engagement": func() any {
			m := make(map[string]float64, arbiter.NumChannels)
			for _, ch := range arbiter.Channels() {
				if ch != arbiter.MSLMeeting {
					m[ch.String()] = st.Counters.Engagement[ch]
				}
			}
			return m
		},
		"medical_engagement": func() any {
			v := 0.0
			if medical {
				v = st.Counters.Engagement[arbiter.MSLMeeting]
			}
			return map[string]float64{arbiter.MSLMeeting.String(): v}
		},
		"events":          func() any { split(); return commercial },
		"medical_events":  func() any { split(); return medicalEvents },
		"touches":         func() any { splitTouches(); return touches },
		"medical_touches": func() any { splitTouches(); return medicalTouches },
		"now":             in.At,
		"local_hour":      local,
		"caller":          in.Caller.String(),
	}
}

// eventMap is a recent event as rules see it, with its action's tags, and
// whether it is a medical signal: an MSL meeting, an event on medical
// content (by the event's purpose or its action's), or an event naming an
// action the catalog does not know (it cannot be proven commercial).
func eventMap(e *recipient.RecentEvent, cat *catalog.Catalog) (map[string]any, bool) {
	m := map[string]any{"type": e.Type.String(), "channel": e.Channel.String(), "topic": e.Topic,
		"action_id": e.ActionID, "format": "", "depth": "", "purpose": e.Purpose.String(), "at": e.At}
	medical := e.Type == arbiter.EventMSLMeeting || e.Channel == arbiter.MSLMeeting || e.Purpose == arbiter.Medical
	if e.Purpose == arbiter.PurposeUnspecified {
		m["purpose"] = ""
	}
	if e.ActionID != "" {
		i, ok := -1, false
		if cat != nil {
			i, ok = cat.Lookup(e.ActionID)
		}
		if !ok {
			return m, true
		}
		a := &cat.Actions[i]
		m["format"], m["depth"], m["purpose"] = a.Format, a.Depth, a.Purpose.String()
		if e.Topic == "" {
			m["topic"] = a.Topic
		}
		medical = medical || a.Purpose == arbiter.Medical
	}
	return m, medical
}
