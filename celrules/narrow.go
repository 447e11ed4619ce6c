package celrules

import (
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/decls"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// Narrowing the lists comprehensions iterate over.
//
// Most conditions look for an event of one type: events.exists(e, e.type
// == 'clicked' && ...), and filter the same way. CEL evaluates the whole
// condition for every event, though it is false for every event of another
// type, and interpreting it was most of a decision's rule time (pprof,
// BenchmarkEvaluate). So when a program is built, a comprehension whose
// step can only change its result for elements on which a conjunct
// `x.field == 'literal'` holds (exists, exists_one, filter, and map with a
// filter; not all) iterates over its list narrowed in Go to those elements
// (whereField); the expression is type-checked again.
//
// The result is the same in every case, errors included: a record (an
// event or a touch) whose field is a string other than the literal makes
// that conjunct false, so the conjunction is false whatever its other
// conjuncts are (CEL's && is commutative, errors included), so the step
// leaves the accumulator as it was. whereField drops only such records and
// keeps every other element (any other value, a record without the field).

// whereFieldFn is the function that narrows a list; its name cannot be
// written in an expression.
const whereFieldFn = "@arbiter_where_fields"

// whereFieldDecl declares whereFieldFn in the rules' environments. It is
// called whatever its argument turns out to be (no type guard): a range
// typed dyn may be a map when evaluated, which the comprehension then
// iterates over as before (whereFields returns it as it is), where CEL's
// guard would make it an error.
var whereFieldDecl = cel.Function(whereFieldFn,
	cel.Overload("arbiter_where_fields_list", []*cel.Type{cel.ListType(cel.TypeParamType("T")), cel.StringType},
		cel.ListType(cel.TypeParamType("T")), cel.BinaryBinding(whereFields)),
	decls.DisableTypeGuards(true))

// whereFields is list without the records one of whose fields is a string
// other than the literal given for it: conds holds field names and
// literals in turn, each followed by a NUL (a constant string, where a
// list literal would be built on every call).
func whereFields(list, condsVal ref.Val) ref.Val {
	l, ok := list.(traits.Lister)
	c, okC := condsVal.(types.String)
	if !ok || !okC {
		return list
	}
	n, ok := l.Size().(types.Int)
	if !ok || n == 0 {
		return list
	}
	var conds [8]struct {
		field types.String
		lit   string
		// ev and touch are the field's index in events' and touches'
		// records (-1: none).
		ev, touch int
	}
	nc := 0
	for rest := string(c); rest != "" && nc < len(conds); nc++ {
		var field string
		field, rest, _ = strings.Cut(rest, "\x00")
		cd := &conds[nc]
		cd.field = types.String(field)
		cd.lit, rest, _ = strings.Cut(rest, "\x00")
		cd.ev, cd.touch = slices.Index(eventFields, cd.field), slices.Index(touchFields, cd.field)
	}
	drop := func(v ref.Val) bool {
		r, ok := v.(*record)
		if !ok || len(r.names) == 0 {
			return false
		}
		kind := 0
		switch &r.names[0] {
		case &eventFields[0]:
			kind = 1
		case &touchFields[0]:
			kind = 2
		}
		for i := range nc {
			cd := &conds[i]
			var fv ref.Val
			switch {
			case kind == 1 && cd.ev >= 0:
				fv = r.vals[cd.ev]
			case kind == 2 && cd.touch >= 0:
				fv = r.vals[cd.touch]
			case kind == 0:
				fv, _ = r.Find(cd.field)
			}
			if s, ok := fv.(types.String); ok && string(s) != cd.lit {
				return true
			}
		}
		return false
	}
	// Two passes: most lists lose all or none of their elements, which
	// then needs no new list.
	keep := types.Int(0)
	for i := types.Int(0); i < n; i++ {
		if !drop(l.Get(i)) {
			keep++
		}
	}
	switch keep {
	case n:
		return list
	case 0:
		return emptyList
	}
	kept := make([]ref.Val, 0, keep)
	for i := types.Int(0); i < n; i++ {
		if v := l.Get(i); !drop(v) {
			kept = append(kept, v)
		}
	}
	return types.NewRefValList(types.DefaultTypeAdapter, kept)
}

// narrowRanges is the rewrite (cel.ASTOptimizer).
type narrowRanges struct{}

var narrowOptimizer = func() *cel.StaticOptimizer {
	o, err := cel.NewStaticOptimizer(narrowRanges{})
	if err != nil {
		panic("celrules: " + err.Error())
	}
	return o
}()

// narrow returns the checked a with its comprehensions narrowed, or a
// itself when there is nothing to narrow or the rewrite fails.
func narrow(env *cel.Env, a *cel.Ast) *cel.Ast {
	if len(ast.MatchDescendants(ast.NavigateAST(a.NativeRep()), ast.KindMatcher(ast.ComprehensionKind))) == 0 {
		return a
	}
	out, iss := narrowOptimizer.Optimize(env, a)
	if iss != nil && iss.Err() != nil {
		return a
	}
	return out
}

func (narrowRanges) Optimize(ctx *cel.OptimizerContext, a *ast.AST) *ast.AST {
	countFilters(ctx, a)
	for _, nav := range ast.MatchDescendants(ast.NavigateAST(a), ast.KindMatcher(ast.ComprehensionKind)) {
		c := nav.AsComprehension()
		if c.HasIterVar2() || c.IterVar() == c.AccuVar() {
			continue
		}
		pred := filterPredicate(c)
		if pred == nil {
			continue
		}
		rng := c.IterRange()
		copied := copyRange(ctx, rng)
		if copied == nil {
			continue
		}
		var conds strings.Builder
		var matched []ast.Expr
		ok := true
		conjuncts(pred, func(e ast.Expr) {
			if f, lit, found := fieldEqualsLiteral(e, c.IterVar()); found && len(matched) < 8 {
				if strings.Contains(f, "\x00") || strings.Contains(lit, "\x00") {
					ok = false
				}
				conds.WriteString(f + "\x00" + lit + "\x00")
				matched = append(matched, e)
			}
		})
		if len(matched) == 0 || !ok {
			continue
		}
		// Over the rules' own lists, every element left has the fields
		// tested, strings equal to the literals: the tests are true.
		fields := recordFields(nav, rng)
		for _, e := range matched {
			if f, _, _ := fieldEqualsLiteral(e, c.IterVar()); fields[f] {
				ctx.UpdateExpr(e, ctx.NewLiteral(types.True))
			}
		}
		ctx.UpdateExpr(rng, ctx.NewCall(whereFieldFn, copied, ctx.NewLiteral(types.String(conds.String()))))
	}
	return a
}

// filterPredicate is the condition P of a comprehension whose step leaves
// its accumulator as it is where P is false: accu || P (exists), and
// P ? ... : accu (exists_one, filter, map with a filter); nil otherwise.
func filterPredicate(c ast.ComprehensionExpr) ast.Expr {
	step := c.LoopStep()
	if step.Kind() != ast.CallKind {
		return nil
	}
	call := step.AsCall()
	args := call.Args()
	isAccu := func(e ast.Expr) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == c.AccuVar() }
	switch {
	case call.IsMemberFunction():
		return nil
	case call.FunctionName() == operators.LogicalOr && len(args) == 2 && isAccu(args[0]):
		return args[1]
	case call.FunctionName() == operators.Conditional && len(args) == 3 && isAccu(args[2]):
		return args[0]
	}
	return nil
}

// conjuncts calls f on each conjunct of e (e itself when it is no &&).
func conjuncts(e ast.Expr, f func(ast.Expr)) {
	if e.Kind() == ast.CallKind {
		call := e.AsCall()
		if !call.IsMemberFunction() && call.FunctionName() == operators.LogicalAnd {
			for _, a := range call.Args() {
				conjuncts(a, f)
			}
			return
		}
	}
	f(e)
}

// fieldEqualsLiteral matches v.field == 'literal' (either way round), v
// the iteration variable.
func fieldEqualsLiteral(e ast.Expr, v string) (field, lit string, ok bool) {
	if e.Kind() != ast.CallKind {
		return "", "", false
	}
	call := e.AsCall()
	args := call.Args()
	if call.IsMemberFunction() || call.FunctionName() != operators.Equals || len(args) != 2 {
		return "", "", false
	}
	for i := range 2 {
		sel, l := args[i], args[1-i]
		if sel.Kind() != ast.SelectKind || l.Kind() != ast.LiteralKind {
			continue
		}
		s := sel.AsSelect()
		str, isStr := l.AsLiteral().(types.String)
		if s.IsTestOnly() || !isStr || s.Operand().Kind() != ast.IdentKind || s.Operand().AsIdent() != v {
			continue
		}
		return s.FieldName(), string(str), true
	}
	return "", "", false
}

// copyRange is a fresh copy of a comprehension's range when it is a
// variable or a sum of two (events + medical_events); nil otherwise.
func copyRange(ctx *cel.OptimizerContext, rng ast.Expr) ast.Expr {
	switch rng.Kind() {
	case ast.IdentKind:
		return ctx.NewIdent(rng.AsIdent())
	case ast.CallKind:
		call := rng.AsCall()
		args := call.Args()
		if call.IsMemberFunction() || call.FunctionName() != operators.Add || len(args) != 2 ||
			args[0].Kind() != ast.IdentKind || args[1].Kind() != ast.IdentKind {
			return nil
		}
		return ctx.NewCall(operators.Add, ctx.NewIdent(args[0].AsIdent()), ctx.NewIdent(args[1].AsIdent()))
	}
	return nil
}

// countFilters rewrites l.filter(x, P).size() (or size(l.filter(x, P)))
// into a comprehension that counts where P holds rather than building the
// list it only measures (ignored-promo-email's 'three emails sent' was the
// costliest condition of the demo's, pprof). The same in every case: the
// step is P ? accu + 1 : accu for P ? accu + [x] : accu, so an error of P
// stays the result in both, and otherwise the count is the list's size.
func countFilters(ctx *cel.OptimizerContext, a *ast.AST) {
	for _, nav := range ast.MatchDescendants(ast.NavigateAST(a), ast.FunctionMatcher(overloads.Size)) {
		call := nav.AsCall()
		var target ast.Expr
		switch {
		case call.IsMemberFunction() && len(call.Args()) == 0:
			target = call.Target()
		case !call.IsMemberFunction() && len(call.Args()) == 1:
			target = call.Args()[0]
		default:
			continue
		}
		if target.Kind() != ast.ComprehensionKind {
			continue
		}
		c := target.AsComprehension()
		if c.HasIterVar2() || c.IterVar() == c.AccuVar() {
			continue
		}
		isAccu := func(e ast.Expr) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == c.AccuVar() }
		init, cond, step, result := c.AccuInit(), c.LoopCondition(), c.LoopStep(), c.Result()
		if init.Kind() != ast.ListKind || len(init.AsList().Elements()) != 0 || !isAccu(result) ||
			cond.Kind() != ast.LiteralKind || cond.AsLiteral() != types.True || step.Kind() != ast.CallKind {
			continue
		}
		sc := step.AsCall()
		sargs := sc.Args()
		if sc.IsMemberFunction() || sc.FunctionName() != operators.Conditional || len(sargs) != 3 || !isAccu(sargs[2]) ||
			sargs[1].Kind() != ast.CallKind {
			continue
		}
		add := sargs[1].AsCall()
		aargs := add.Args()
		if add.IsMemberFunction() || add.FunctionName() != operators.Add || len(aargs) != 2 || !isAccu(aargs[0]) ||
			aargs[1].Kind() != ast.ListKind {
			continue
		}
		elems := aargs[1].AsList().Elements()
		if len(elems) != 1 || len(aargs[1].AsList().OptionalIndices()) != 0 || elems[0].Kind() != ast.IdentKind || elems[0].AsIdent() != c.IterVar() {
			continue // a map with a filter, not a filter
		}
		ctx.UpdateExpr(init, ctx.NewLiteral(types.Int(0)))
		ctx.UpdateExpr(sargs[1], ctx.NewCall(operators.Add, ctx.NewIdent(c.AccuVar()), ctx.NewLiteral(types.Int(1))))
		ctx.UpdateExpr(nav, target)
	}
}

// The fields of events and touches whose values are always strings.
var (
	eventStringFields = map[string]bool{"type": true, "channel": true, "topic": true, "action_id": true, "format": true, "depth": true, "purpose": true}
	touchStringFields = map[string]bool{"channel": true, "purpose": true, "topic": true, "action_id": true, "state": true}
)

// recordFields are the string fields every element of the comprehension
// nav's range rng has, when rng is one of the rules' lists of events or of
// touches, or a sum of two of a kind (activation); nil when it may be
// anything else: another list, or a comprehension's variable of the same
// name.
func recordFields(nav ast.NavigableExpr, rng ast.Expr) map[string]bool {
	var names []string
	switch rng.Kind() {
	case ast.IdentKind:
		names = []string{rng.AsIdent()}
	case ast.CallKind:
		for _, a := range rng.AsCall().Args() {
			names = append(names, a.AsIdent()) // idents (copyRange)
		}
	}
	kind := func(n string) map[string]bool {
		switch n {
		case "events", "medical_events":
			return eventStringFields
		case "touches", "medical_touches":
			return touchStringFields
		}
		return nil
	}
	fields := kind(names[0])
	for _, n := range names {
		if k := kind(n); k == nil || fields == nil || len(k) != len(fields) {
			return nil
		}
		for p, ok := nav.Parent(); ok; p, ok = p.Parent() {
			if p.Kind() == ast.ComprehensionKind {
				if c := p.AsComprehension(); c.IterVar() == n || c.AccuVar() == n || c.IterVar2() == n {
					return nil
				}
			}
		}
	}
	return fields
}
