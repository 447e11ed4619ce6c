package celrules

import (
	"fmt"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"

	"github.com/arbiter-nba/arbiter/contact"
)

// The environment rules are written against. Every variable is bound for
// every decision (Evaluate). Medical signals are kept apart from the rest,
// in the medical_ variables, which only the full environment declares (the
// firewall, rules.go):
//
//	profile             map    specialty, market, segment, audience, time_zone
//	                           (strings) and attributes (a map of numbers)
//	engagement          map    the decayed engagement per channel name ("email":
//	                           2.5), without the MSL meeting channel
//	medical_engagement  map    the MSL meeting channel's ("msl_meeting": 3)
//	events              list   recent events that are not medical signals,
//	                           newest first; each a map: type, channel, topic,
//	                           action_id, format, depth, purpose (strings), at
//	                           (timestamp)
//	medical_events      list   the medical signals among recent events: MSL
//	                           meetings, events on medical content, events
//	                           whose action the catalog does not know
//	touches             list   the touch ledger's counting touches that are
//	                           not medical: channel, purpose, topic, action_id,
//	                           state ("sent", "reserved"), at
//	medical_touches     list   MSL meetings and medical-purpose touches
//	now                 timestamp  the decision time
//	local_hour          int    the hour in the recipient's time zone (-1: unknown)
//	caller              string the caller kind ("rep_tool", ...)
//
// with CEL's string extensions (replace, split...) and the function
// latest(list of timestamps) -> timestamp, the latest of them (timestamp 0
// for an empty list), for a rule's since.
//
// Read a profile attribute as profile.attributes.name, and test it with
// has(profile.attributes.name): with cel-go v0.33, int() of an index into
// the nested dyn map (int(profile.attributes['name'])) fails at run time
// with "no such overload" (TestAttributeConversions).
//
// A channel's engagement counter holds every purpose's engagement on it
// (an opened medical email counts in engagement["email"]): the counters
// are kept per channel, not per purpose.
var (
	fullEnv       = newEnv(true)
	commercialEnv = newEnv(false)
)

func newEnv(medical bool) *cel.Env {
	event := cel.MapType(cel.StringType, cel.DynType)
	opts := []cel.EnvOption{
		cel.Variable("profile", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("engagement", cel.MapType(cel.StringType, cel.DoubleType)),
		cel.Variable("events", cel.ListType(event)),
		cel.Variable("touches", cel.ListType(event)),
		cel.Variable("now", cel.TimestampType),
		cel.Variable("local_hour", cel.IntType),
		cel.Variable("caller", cel.StringType),
		ext.Strings(), // replace, split, lowerAscii...
		cel.Function("latest",
			cel.Overload("latest_list", []*cel.Type{cel.ListType(cel.DynType)}, cel.TimestampType,
				cel.UnaryBinding(latest))),
		whereFieldDecl, // not for expressions: see narrow.go
	}
	if medical {
		opts = append(opts, cel.Variable("medical_events", cel.ListType(event)),
			cel.Variable("medical_touches", cel.ListType(event)),
			cel.Variable("medical_engagement", cel.MapType(cel.StringType, cel.DoubleType)))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		panic("rules: the environment does not build: " + err.Error())
	}
	return env
}

// latest is the latest timestamp of a list (the epoch for an empty one).
func latest(v ref.Val) ref.Val {
	l, ok := v.(traits.Lister)
	if !ok {
		return types.NewErr("latest: not a list")
	}
	var max time.Time
	for it := l.Iterator(); it.HasNext() == types.True; {
		ts, ok := it.Next().(types.Timestamp)
		if !ok {
			return types.NewErr("latest: not a list of timestamps")
		}
		if ts.Time.After(max) {
			max = ts.Time
		}
	}
	if max.IsZero() {
		max = time.Unix(0, 0).UTC()
	}
	return types.Timestamp{Time: max}
}

// compileExpr compiles and type-checks expr in env, wanting a result of
// type want; problem says what is wrong, with the line and column.
func compileExpr(env *cel.Env, expr string, want *cel.Type, hints sizeHints) (prg cel.Program, problem string) {
	if len(expr) > maxExprLen {
		return nil, fmt.Sprintf("at most %d characters", maxExprLen)
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		errs := iss.Errors()
		if len(errs) == 0 {
			return nil, "does not compile"
		}
		e := errs[0]
		return nil, fmt.Sprintf("line %d, column %d: %s", e.Location.Line(), e.Location.Column()+1, e.Message)
	}
	if got := ast.OutputType(); !got.IsExactType(want) && !(want.Kind() == types.ListKind && got.Kind() == types.ListKind &&
		got.Parameters()[0].IsExactType(cel.DynType)) {
		// A list of dyn (topics mapped out of events) is checked when
		// evaluated: a list holding anything but strings fails.
		return nil, fmt.Sprintf("is of type %s, want %s", got, want)
	}
	// The cost is bounded when the rule is published, from the sizes the
	// variables can have (sizeHints), rather than tracked on every
	// evaluation: tracking was a sixth of a decision's rule time (pprof).
	est, err := env.EstimateCost(ast, hints)
	if err != nil {
		return nil, "its cost cannot be estimated: " + err.Error()
	}
	if est.Max > costLimit {
		return nil, fmt.Sprintf("may cost up to %d units of CEL's cost model for one decision, over the limit of %d: iterate over fewer lists, or not one inside another", est.Max, costLimit)
	}
	prg, err = env.Program(narrow(env, ast), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, "does not build: " + err.Error()
	}
	return prg, ""
}

// sizeHints bounds the sizes of the environment's variables for the cost
// estimate: the recent events the decision reads, the touches a ledger may
// keep, one counter per channel, strings as long as an id.
type sizeHints struct{ events uint64 }

func (sizeHints) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

func (h sizeHints) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		// A value worked out in the expression (a comprehension's
		// variable's field, a function's result): a string is as long as
		// an id or a topic, at most.
		if t := n.Type(); t != nil && (t.Kind() == types.StringKind || t.Kind() == types.DynKind) {
			return &cost.SizeEstimate{Min: 0, Max: 256}
		}
		return nil
	}
	if len(p) == 1 {
		switch p[0] {
		case "events", "medical_events":
			return &cost.SizeEstimate{Min: 0, Max: h.events}
		case "touches", "medical_touches":
			return &cost.SizeEstimate{Min: 0, Max: contact.MaxTouchesLimit}
		case "engagement", "medical_engagement", "profile":
			return &cost.SizeEstimate{Min: 0, Max: 32}
		case "caller":
			return &cost.SizeEstimate{Min: 0, Max: 32}
		}
		return nil
	}
	return &cost.SizeEstimate{Min: 0, Max: 256} // a field: a string of an id's length, or a small map
}
