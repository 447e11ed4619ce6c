package celrules

import (
	"errors"
	"reflect"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// record is an event or a touch as rules see it: a CEL map from a few
// field names to values, held in an array rather than a Go map. A decision
// makes one per recent event and touch, and comprehensions read their
// fields many times: a map per record, and hashing on every read, were
// much of a rule's cost (pprof, BenchmarkEvaluate).
type record struct {
	names *[8]types.String // shared by every record of a kind
	n     int
	vals  [8]ref.Val
}

var (
	eventFields = [8]types.String{kType, kChannel, kTopic, kActionID, kFormat, kDepth, kPurpose, kAt}
	touchFields = [8]types.String{kChannel, kPurpose, kTopic, kActionID, kState, kAt}
)

var errNoConversion = errors.New("a rule's event or touch converts to no native value")

func (r *record) ConvertToNative(reflect.Type) (any, error) { return nil, errNoConversion }

func (r *record) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return r
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from map to '%s'", t)
}

// Equal compares r with any CEL map, key by key, as CEL's maps compare.
func (r *record) Equal(other ref.Val) ref.Val {
	o, ok := other.(traits.Mapper)
	if !ok || o.Size() != types.Int(r.n) {
		return types.False
	}
	for i := range r.n {
		v, found := o.Find(r.names[i])
		if !found || r.vals[i].Equal(v) != types.True {
			return types.False
		}
	}
	return types.True
}

func (r *record) Type() ref.Type { return types.MapType }

func (r *record) Value() any {
	m := make(map[string]any, r.n)
	for i := range r.n {
		m[string(r.names[i])] = r.vals[i].Value()
	}
	return m
}

func (r *record) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	for i := range r.n {
		if r.names[i] == k {
			return r.vals[i], true
		}
	}
	return nil, false
}

func (r *record) Get(key ref.Val) ref.Val {
	if v, ok := r.Find(key); ok {
		return v
	}
	return types.NewErr("no such key: %v", key)
}

func (r *record) Contains(key ref.Val) ref.Val {
	_, ok := r.Find(key)
	return types.Bool(ok)
}

func (r *record) Size() ref.Val { return types.Int(r.n) }

func (r *record) Iterator() traits.Iterator {
	keys := make([]ref.Val, r.n)
	for i := range r.n {
		keys[i] = r.names[i]
	}
	return types.NewRefValList(types.DefaultTypeAdapter, keys).Iterator()
}

var _ traits.Mapper = (*record)(nil)

// activation binds the environment's variables for one decision's
// evaluation (interpreter.Activation), by a switch on the name rather than
// a map: comprehensions resolve `now` and the lists on every iteration.
type activation struct {
	d       *decisionVars
	medical bool
}

func (a *activation) ResolveName(name string) (any, bool) {
	d := a.d
	switch name {
	case "events":
		d.splitEvents()
		return d.events, true
	case "touches":
		d.splitTouchList()
		return d.touches, true
	case "now":
		return d.now, true
	case "engagement":
		return d.engagementVal(), true
	case "profile":
		return d.profileVal(), true
	case "local_hour":
		return d.localHour, true
	case "caller":
		return d.caller, true
	case "medical_events":
		if !a.medical {
			return emptyList, true
		}
		d.splitEvents()
		return d.medicalEvents, true
	case "medical_touches":
		if !a.medical {
			return emptyList, true
		}
		d.splitTouchList()
		return d.medicalTouches, true
	case "medical_engagement":
		return d.medicalEngagement(a.medical), true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
