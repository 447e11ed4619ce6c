package celrules

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
)

var testNow = time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)

// testStates are recipients from none to many events and touches, medical
// signals or none, attributes or none.
func testStates() []*recipient.State {
	var out []*recipient.State
	out = append(out, &recipient.State{Profile: recipient.Profile{HCPID: "HCP-0", Audience: arbiter.HCP}})
	st := &recipient.State{Profile: recipient.Profile{HCPID: "HCP-1", Specialty: "cardiology", Market: "US", Segment: "traditional",
		Audience: arbiter.HCP, TimeZone: "Europe/Berlin", Attributes: map[string]float64{"decile": 7, "appointment_at": 1.7e9, "zero": 0}}}
	st.Counters.Engagement[arbiter.Email] = 1.2
	st.Counters.Engagement[arbiter.Webinar] = 0.8
	evTypes := []arbiter.EventType{arbiter.EventOpened, arbiter.EventClicked, arbiter.EventSent, arbiter.EventNoShow}
	actions := []string{"email-cardiolex-efficacy", "email-cardiolex-safety", "webinar-cardiolex-efficacy", "", "retired-action"}
	for i := range 9 {
		st.Recent = append(st.Recent, recipient.RecentEvent{At: testNow.Add(-time.Duration(i*11) * time.Hour), Type: evTypes[i%len(evTypes)],
			Channel: arbiter.Email, ActionID: actions[i%len(actions)], Topic: []string{"", "cardiolex_safety"}[i%2]})
	}
	for i := range 5 {
		st.Touches.Touches = append(st.Touches.Touches, contact.Touch{At: testNow.Add(-time.Duration(i*30) * time.Hour), Channel: arbiter.Email,
			Purpose: arbiter.Promotional, ActionID: actions[i%len(actions)], State: contact.Sent})
	}
	out = append(out, st)
	// Commercial signals only, MSL engagement: the base and full decisions
	// differ in medical_engagement alone.
	com := &recipient.State{Profile: recipient.Profile{HCPID: "HCP-2", Audience: arbiter.Patient, Attributes: map[string]float64{"on_medication": 1}}}
	com.Counters.Engagement[arbiter.MSLMeeting] = 3
	com.Counters.Engagement[arbiter.Portal] = 0.1
	com.Recent = []recipient.RecentEvent{{At: testNow.Add(-time.Hour), Type: arbiter.EventClicked, Channel: arbiter.Email, ActionID: "email-cardiolex-efficacy"}}
	com.Touches.Touches = []contact.Touch{
		{At: testNow.Add(-2 * time.Hour), Channel: arbiter.Email, Purpose: arbiter.Promotional, State: contact.Reserved, Topic: "cardiolex"},
		{At: testNow.Add(-3 * time.Hour), Channel: arbiter.MSLMeeting, Purpose: arbiter.Medical, State: contact.Sent},
	}
	out = append(out, com)
	return out
}

// refVars are the variables as CEL's own maps and lists, as the engine
// bound them before its records: the reference the records must evaluate
// exactly like.
func refVars(d *decisionVars, medical bool) map[string]any {
	asMaps := func(v ref.Val) ref.Val {
		var out []ref.Val
		for it := v.(traits.Lister).Iterator(); it.HasNext() == types.True; {
			out = append(out, it.Next().(*record).asMap())
		}
		return types.NewRefValList(types.DefaultTypeAdapter, out)
	}
	d.splitEvents()
	d.splitTouchList()
	prof := &d.in.State.Profile
	attrs := make(map[ref.Val]ref.Val, len(prof.Attributes))
	for k, v := range prof.Attributes {
		attrs[types.String(k)] = types.Double(v)
	}
	eng := make(map[ref.Val]ref.Val, arbiter.NumChannels)
	for _, ch := range arbiter.Channels() {
		if ch != arbiter.MSLMeeting {
			eng[types.String(ch.String())] = types.Double(d.in.State.Counters.Engagement[ch])
		}
	}
	vars := map[string]any{
		"profile": types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
			kSpecialty: types.String(prof.Specialty), kMarket: types.String(prof.Market), kSegment: types.String(prof.Segment),
			kAudience: types.String(prof.Audience.String()), kTimeZone: types.String(prof.TimeZone),
			kAttributes: types.NewRefValMap(types.DefaultTypeAdapter, attrs)}),
		"engagement": types.NewRefValMap(types.DefaultTypeAdapter, eng),
		"events":     asMaps(d.events),
		"touches":    asMaps(d.touches),
		"now":        types.Timestamp{Time: d.in.At},
		"local_hour": d.localHour,
		"caller":     types.String(d.in.Caller.String()),
		"medical_engagement": types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
			types.String("msl_meeting"): types.Double(0)}),
		"medical_events":  emptyList,
		"medical_touches": emptyList,
	}
	if medical {
		vars["medical_engagement"] = types.NewRefValMap(types.DefaultTypeAdapter, map[ref.Val]ref.Val{
			types.String("msl_meeting"): types.Double(d.in.State.Counters.Engagement[arbiter.MSLMeeting])})
		vars["medical_events"], vars["medical_touches"] = asMaps(d.medicalEvents), asMaps(d.medicalTouches)
	}
	return vars
}

// The records (events, touches, profile, engagement) and the attributes
// evaluate as CEL's maps would, for every operation on a map: reads,
// presence, equality both ways, iteration, size, formatting, errors.
func TestRecordsEvaluateAsMaps(t *testing.T) {
	exprs := []string{
		"profile == {'specialty': profile.specialty, 'market': profile.market, 'segment': profile.segment, 'audience': profile.audience, 'time_zone': profile.time_zone, 'attributes': profile.attributes}",
		"{'specialty': profile.specialty, 'market': profile.market, 'segment': profile.segment, 'audience': profile.audience, 'time_zone': profile.time_zone, 'attributes': profile.attributes} == profile",
		"profile == {'specialty': profile.specialty}",
		"profile.attributes == {'decile': 7.0, 'appointment_at': 1.7e9, 'zero': 0.0}",
		"{'decile': 7, 'appointment_at': 1700000000, 'zero': 0} == profile.attributes",
		"profile.attributes == {}",
		"has(profile.attributes.decile) && profile.attributes.decile > 5.0",
		"'decile' in profile.attributes",
		"dyn(1) in profile.attributes",
		"profile.attributes.size()",
		"profile.attributes.all(k, profile.attributes[k] >= 0.0)",
		"profile.attributes.exists(k, k == 'zero')",
		"profile.attributes.map(k, k).size()",
		"profile.attributes.filter(k, profile.attributes[k] > 1.0).size()",
		"profile.attributes['nope']",
		"profile.attributes.nope",
		"profile.attributes[dyn(1)]",
		"has(profile.attributes.appointment_at) && timestamp(int(profile.attributes.appointment_at)) < now",
		"profile.audience == 'hcp' && profile.specialty in ['cardiology', 'oncology']",
		"profile.size()",
		"profile.exists(k, k == 'attributes')",
		"profile.all(k, k != '')",
		"type(profile) == map && type(profile.attributes) == map",
		"'%s'.format([profile])",
		"'%s'.format([profile.attributes])",
		"'%s'.format([engagement])",
		"'%s %s'.format([events, touches])",
		"dyn(profile) == dyn(profile) && dyn(engagement) != dyn(profile)",
		"engagement.all(ch, engagement[ch] < 0.3)",
		"engagement.exists(ch, engagement[ch] > 1.0)",
		"engagement.exists_one(ch, engagement[ch] > 0.5)",
		"engagement.map(ch, ch).size()",
		"engagement.size()",
		"'msl_meeting' in engagement || 'unspecified' in engagement",
		"engagement['nope']",
		"engagement['email'] + engagement['webinar'] > engagement['portal']",
		"engagement == {'email': engagement['email']}",
		"medical_engagement['msl_meeting']",
		"medical_engagement == {'msl_meeting': 0.0}",
		"medical_engagement.all(k, medical_engagement[k] == 0.0)",
		"events.size() + touches.size() + medical_events.size() + medical_touches.size()",
		"events.map(e, e.topic)",
		"events.map(e, e.action_id + '/' + e.format + '/' + e.depth + '/' + e.purpose + '/' + e.type + '/' + e.channel)",
		"medical_events.map(e, e.action_id + '/' + e.format + '/' + e.depth + '/' + e.purpose + '/' + e.type + '/' + e.channel + '/' + e.topic)",
		"events.map(e, e.at)",
		"latest((events + medical_events).map(e, e.at))",
		"events.exists(e, e == {'type': e.type, 'channel': e.channel, 'topic': e.topic, 'action_id': e.action_id, 'format': e.format, 'depth': e.depth, 'purpose': e.purpose, 'at': e.at})",
		"events.exists(e, {'type': e.type} == e)",
		"events.all(e, e.size() == 8 && has(e.depth) && !has(e.nope) && 'at' in e && !(dyn(1) in e))",
		"events.map(e, e.nope)",
		"(events + medical_events).map(e, e.map(k, k).size()) + (events + medical_events).map(e, e.map(k, k).all(k, k in e) ? 1 : 0)",
		"(events + medical_events).map(e, e.filter(k, e[k] == '').size())",
		"touches.map(t, t.channel + '/' + t.purpose + '/' + t.topic + '/' + t.action_id + '/' + t.state)",
		"medical_touches.map(t, t.channel + '/' + t.purpose + '/' + t.topic + '/' + t.action_id + '/' + t.state)",
		"touches.filter(t, t.state == 'sent' && now - t.at < duration('48h')).size()",
		"touches.all(t, t.size() == 6 && !has(t.type))",
		"touches == touches && events != touches",
		"events.exists(e, type(e) == map)",
		"local_hour == -1 && caller == 'unspecified' && now > timestamp('2026-01-01T00:00:00Z')",
	}
	for si, st := range testStates() {
		for _, medical := range []bool{true, false} {
			in := &rules.Input{State: st, Catalog: catalog.Demo(), At: testNow, Now: testNow}
			var sc scratch
			sc.start(in, nil, 0)
			ref := refVars(&sc.d, medical)
			act := &activation{d: &sc.d, medical: medical}
			for _, expr := range exprs {
				ast, iss := fullEnv.Compile(expr)
				if iss != nil && iss.Err() != nil {
					t.Fatalf("%s: %v", expr, iss.Err())
				}
				prg, err := fullEnv.Program(ast)
				if err != nil {
					t.Fatal(err)
				}
				got, _, gotErr := prg.Eval(act)
				want, _, wantErr := prg.Eval(ref)
				if (gotErr != nil) != (wantErr != nil) || gotErr == nil && !sameValue(got, want) ||
					gotErr != nil && gotErr.Error() != wantErr.Error() {
					t.Errorf("state %d, medical %v: %s = %v (%v), want %v (%v)", si, medical, expr, got, gotErr, want, wantErr)
				}
			}
			sc.reset()
		}
	}
}

// sameValue compares two results: a list element by element (a list of
// maps by equality), anything else by CEL's equality or, for an error, its
// message.
func sameValue(got, want ref.Val) bool {
	if ge, ok := got.(*types.Err); ok {
		we, ok := want.(*types.Err)
		return ok && ge.String() == we.String()
	}
	if gl, ok := got.(traits.Lister); ok {
		wl, ok := want.(traits.Lister)
		if !ok || gl.Size() != wl.Size() {
			return false
		}
		for i := types.Int(0); i < gl.Size().(types.Int); i++ {
			if !sameValue(gl.Get(i), wl.Get(i)) {
				return false
			}
		}
		return true
	}
	return types.Equal(got, want) == types.True
}

// A pooled scratch carries nothing from one decision to the next: each
// state evaluates the same whatever was evaluated before it, one decision
// at a time or many at once.
func TestScratchReuse(t *testing.T) {
	src := []byte(`{"rules": [
		{"id": "a", "description": "d", "effect": "demote", "factor": 0.5, "select": {"purposes": ["promotional"]},
		 "when": "events.size() + touches.size() > 0 && !medical_events.exists(e, e.type == 'opened')"},
		{"id": "b", "description": "d", "effect": "suppress", "for": "1h", "select": {"channels": ["email"], "purposes": ["promotional"],
		 "topics_not_in": "(events + medical_events).map(e, e.topic)"},
		 "when": "profile.attributes.size() > 0 || engagement['email'] > 1.0 || medical_touches.size() > 0",
		 "since": "latest(touches.map(t, t.at))"},
		{"id": "c", "description": "d", "effect": "boost", "factor": 2, "select": {"purposes": ["medical"],
		 "topics_in": "(events + medical_events).filter(e, e.topic != '').map(e, e.topic)"},
		 "when": "medical_engagement['msl_meeting'] > 1.0 || medical_events.size() > 0"}],
		"personas": [{"id": "p", "description": "d", "when": "engagement['email'] > 1.0"}],
		"journeys": []}`)
	s, err := rules.Parse(src, catalog.Demo())
	if err != nil {
		t.Fatal(err)
	}
	states := testStates()
	type result struct {
		out     []rules.Applied
		persona string
	}
	eval := func(st *recipient.State) result {
		out, p, _ := s.EvaluateAll(&rules.Input{State: st, Catalog: catalog.Demo(), At: testNow, Now: testNow}, nil)
		return result{out, p}
	}
	want := make([]result, len(states))
	for i := range states {
		want[i] = eval(states[i])
	}
	check := func(i int) error {
		if got := eval(states[i]); !reflect.DeepEqual(got, want[i]) {
			return fmt.Errorf("state %d evaluates to %+v after others, %+v first", i, got, want[i])
		}
		return nil
	}
	for _, order := range [][]int{{2, 1, 0, 1, 2}, {1, 1, 0, 0, 2, 2}} {
		for _, i := range order {
			if err := check(i); err != nil {
				t.Error(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*30)
	for g := range 8 {
		wg.Go(func() {
			for k := range 30 {
				if err := check((g + k) % len(states)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A rule that reads a medical signal and may hold promotion back is
// evaluated without the medical signals too; with none (no medical event
// or touch, no MSL engagement) that is the full decision itself. Each kind
// of medical signal alone keeps the two apart.
func TestBaseDecisionWithOneMedicalSignal(t *testing.T) {
	for _, tc := range []struct {
		name, when string
		set        func(*recipient.State)
	}{
		{"MSL engagement", "medical_engagement['msl_meeting'] == 0.0", func(st *recipient.State) {
			st.Counters.Engagement[arbiter.MSLMeeting] = 3
		}},
		{"a medical touch", "medical_touches.size() == 0", func(st *recipient.State) {
			st.Touches.Touches = []contact.Touch{{At: testNow.Add(-time.Hour), Channel: arbiter.Email, Purpose: arbiter.Medical, State: contact.Sent}}
		}},
		{"a medical event", "medical_events.size() == 0", func(st *recipient.State) {
			st.Recent = []recipient.RecentEvent{{At: testNow.Add(-time.Hour), Type: arbiter.EventMSLMeeting, Channel: arbiter.MSLMeeting}}
		}},
	} {
		src := `{"rules": [{"id": "d", "description": "d", "select": {"purposes": ["promotional"]}, "effect": "demote", "factor": 0.5, "when": "` + tc.when + `"}]}`
		s, err := rules.Parse([]byte(src), catalog.Demo())
		if err != nil {
			t.Fatal(err)
		}
		for _, with := range []bool{false, true} {
			st := &recipient.State{Profile: recipient.Profile{HCPID: "HCP-1", Audience: arbiter.HCP}}
			if with {
				tc.set(st)
			}
			if out := s.Evaluate(&rules.Input{State: st, Catalog: catalog.Demo(), At: testNow, Now: testNow}, nil); len(out) != 1 {
				t.Errorf("%s (%v): the demotion does not hold: it holds without the medical signals", tc.name, with)
			}
		}
	}
}

// local_hour is the hour in the recipient's time zone at every hour of a
// day, and -1 without a zone; caller names the caller kind.
func TestLocalHourAndCaller(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	ast, iss := fullEnv.Compile("[local_hour, caller]")
	if iss != nil && iss.Err() != nil {
		t.Fatal(iss.Err())
	}
	prg, err := fullEnv.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	st := &recipient.State{}
	for h := range 25 {
		at := testNow.Add(time.Duration(h) * time.Hour)
		want := []any{int64(at.In(berlin).Hour()), "rep_tool"}
		zone := berlin
		if h == 24 {
			zone, want = nil, []any{int64(-1), "rep_tool"}
		}
		var sc scratch
		sc.start(&rules.Input{State: st, At: at, Now: at, Zone: zone, Caller: arbiter.CallerRepTool}, nil, 0)
		v, _, err := prg.Eval(&activation{d: &sc.d, medical: true})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.ConvertToNative(reflect.TypeFor[[]any]())
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("at %s in %v: %v (%v), want %v", at, zone, got, err, want)
		}
	}
}
