package celrules

import (
	"encoding/json"
	"os"
	"testing"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"

	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/rules"
)

// Every expression evaluates the same narrowed (narrow.go) as not, on
// every test recipient, with and without the medical signals, errors
// included: the published rules' expressions, and the shapes the rewrite
// must leave alone or handle with care.
func TestNarrowedEvaluatesTheSame(t *testing.T) {
	exprs := []string{
		"events.exists(e, e.type == 'opened')",
		"events.exists(e, 'opened' == e.type && now - e.at < duration('48h'))",
		"events.exists(e, e.type == 'opened' && e.type == 'clicked')",
		"events.exists(e, e.type == 'opened' && e.nope == 'x')",
		"events.exists(e, e.type == 'clicked' && 1 / (events.size() - events.size()) == 1)",
		"events.exists(e, e.type == 'sent' || e.type == 'opened')",
		"events.exists(e, e.at == 'x' && e.type == 'opened')",
		"events.exists_one(e, e.type == 'clicked' && e.channel == 'email')",
		"events.all(e, e.type == 'opened')",
		"events.filter(e, e.type == 'opened').size()",
		"size(events.filter(e, e.type == 'opened' && e.topic != ''))",
		"events.filter(e, e.type == 'no_show' && 1 / 0 == 1).size()",
		"events.filter(e, e.type == 'no_show').size() == 0",
		"events.map(e, e.type == 'opened', e.topic)",
		"events.map(e, e.type).size()",
		"events.filter(e, e.type == 'opened' && e.topic != '').map(e, e.topic)",
		"(events + medical_events).filter(e, e.channel == 'email' && e.type == 'opened').map(e, e.at)",
		"(events + medical_events).filter(e, e.channel == 'email').size() + (events + medical_events).size()",
		"(events + touches).exists(x, x.channel == 'email' && x.state == 'sent')",
		"(events + touches).filter(x, x.channel == 'email' && x.topic == '').size()",
		"touches.exists(t, t.type == 'x')",
		"touches.filter(t, t.state == 'reserved').size() == 1",
		"touches.filter(t, t.channel == 'email' && t.purpose == 'promotional' && t.state == 'sent' && now - t.at < duration('720h')).size() >= 3",
		"medical_touches.exists(t, t.channel == 'msl_meeting' && t.state == 'sent')",
		"medical_events.filter(e, e.type == 'msl_meeting').map(e, e.topic)",
		"[events].exists(events, events.exists(e, e.type == 'opened'))",
		"[[{'type': dyn(1)}]].exists(events, events.exists(e, e.type == 'opened'))",
		"[{'type': 'opened'}, {'type': 2}].exists(e, e.type == 'opened')",
		"events.map(e, {'type': 'x'}).exists(e, e.type == 'x')",
		"events.exists(e, touches.exists(t, t.channel == e.channel && t.state == 'sent'))",
		"events.exists(e, events.filter(f, f.type == e.type && f.channel == 'email').size() > 1)",
		"events.exists(touches, touches.type == 'opened')",
		"[dyn({'a': 1})].all(m, !m.exists(k, k.type == 'x' && false))",
		"[dyn({'a': 1}), dyn(events)].map(m, m.filter(k, k.type == 'opened' || true).size())",
		"[dyn(1)].exists(m, m.exists(k, k.type == 'x'))",
		"engagement.exists(ch, ch == 'email')",
		"profile.attributes.filter(k, k == 'decile').size()",
	}
	// The published sets' expressions.
	for _, f := range []string{"../bench/rules.json", "../rules/demo_rules.json"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fl file
		if err := json.Unmarshal(data, &fl); err != nil {
			t.Fatal(err)
		}
		for _, r := range fl.Rules {
			for _, e := range []string{r.When, r.Since, r.Select.TopicsIn, r.Select.TopicsNotIn} {
				if e != "" {
					exprs = append(exprs, e)
				}
			}
		}
		for _, p := range fl.Personas {
			exprs = append(exprs, p.When)
		}
		for _, j := range fl.Journeys {
			exprs = append(exprs, j.Enter)
		}
	}
	rewritten := 0
	for _, expr := range exprs {
		a, iss := fullEnv.Compile(expr)
		if iss != nil && iss.Err() != nil {
			t.Fatalf("%s: %v", expr, iss.Err())
		}
		plain, err := fullEnv.Program(a, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			t.Fatal(err)
		}
		n := narrow(fullEnv, a)
		if n != a {
			rewritten++
		}
		narrowed, err := fullEnv.Program(n, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			t.Fatal(err)
		}
		for si, st := range testStates() {
			for _, medical := range []bool{true, false} {
				var sc scratch
				sc.start(&rules.Input{State: st, Catalog: catalog.Demo(), At: testNow, Now: testNow}, nil, 0)
				act := &activation{d: &sc.d, medical: medical}
				want, _, wantErr := plain.Eval(act)
				got, _, gotErr := narrowed.Eval(act)
				if (gotErr != nil) != (wantErr != nil) || gotErr == nil && !sameValue(got, want) ||
					gotErr != nil && gotErr.Error() != wantErr.Error() {
					t.Errorf("state %d, medical %v: %s narrowed = %v (%v), want %v (%v)", si, medical, expr, got, gotErr, want, wantErr)
				}
			}
		}
	}
	if rewritten < 20 {
		t.Errorf("%d expressions rewritten, want most", rewritten)
	}
}

// The rewrite narrows what it may, counts filters only measured, and drops
// equality tests only over the rules' own lists.
func TestNarrowShapes(t *testing.T) {
	count := func(expr, fn string) int {
		a, iss := fullEnv.Compile(expr)
		if iss != nil && iss.Err() != nil {
			t.Fatalf("%s: %v", expr, iss.Err())
		}
		return len(ast.MatchDescendants(ast.NavigateAST(narrow(fullEnv, a).NativeRep()), ast.FunctionMatcher(fn)))
	}
	for _, tc := range []struct {
		expr, fn string
		want     int
	}{
		{"events.exists(e, e.type == 'opened' && e.channel == 'email')", whereFieldFn, 1},
		{"events.exists(e, e.type == 'opened' && e.channel == 'email')", "_==_", 0},
		{"events.all(e, e.type == 'opened')", whereFieldFn, 0},
		{"events.map(e, e.type == 'opened')", whereFieldFn, 0},
		{"events.exists(e, e.type == 'sent' || e.type == 'opened')", whereFieldFn, 0},
		{"touches.filter(t, t.state == 'sent').size() > 1", "size", 0},
		{"touches.filter(t, t.state == 'sent').size() > 1", "_==_", 0},
		{"touches.map(t, t.state == 'sent', t.topic).size() > 1", "size", 1},
		{"touches.exists(t, t.type == 'x')", "_==_", 1},
		{"(events + touches).exists(x, x.channel == 'email')", "_==_", 1},
		{"[events].exists(events, events.exists(e, e.type == 'opened'))", "_==_", 1},
		{"[events].exists(events, events.exists(e, e.type == 'opened'))", whereFieldFn, 1},
	} {
		if got := count(tc.expr, tc.fn); got != tc.want {
			t.Errorf("%s: %d calls of %s after narrowing, want %d", tc.expr, got, tc.fn, tc.want)
		}
	}
}
