package celrules

import (
	"reflect"
	"slices"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/arbiter-nba/arbiter"
)

// record is an event, a touch, the profile or an engagement map as rules
// see it: a CEL map from a few field names to values, held in slices
// rather than a Go map. A decision makes one per recent event and touch,
// and comprehensions read their fields many times: a map per record, and
// hashing on every read, were much of a rule's cost (pprof,
// BenchmarkEvaluate). The values are held in the decision's pooled buffer
// (decisionVars.vals).
type record struct {
	names []types.String // shared by every record of a kind
	vals  []ref.Val
}

var (
	eventFields   = []types.String{kType, kChannel, kTopic, kActionID, kFormat, kDepth, kPurpose, kAt}
	touchFields   = []types.String{kChannel, kPurpose, kTopic, kActionID, kState, kAt}
	profileFields = []types.String{kSpecialty, kMarket, kSegment, kAudience, kTimeZone, kAttributes}
	// engagementFields are the channels of the engagement map, in
	// declaration order, without the MSL meeting channel; medEngFields the
	// medical_engagement map's.
	engagementFields, medEngFields = engagementNames()
)

func engagementNames() (commercial, medical []types.String) {
	for _, ch := range arbiter.Channels() {
		if ch != arbiter.MSLMeeting {
			commercial = append(commercial, types.String(ch.String()))
		}
	}
	return commercial, []types.String{types.String(arbiter.MSLMeeting.String())}
}

// asMap is r as one of CEL's maps.
func (r *record) asMap() traits.Mapper {
	m := make(map[ref.Val]ref.Val, len(r.names))
	for i, k := range r.names {
		m[k] = r.vals[i]
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, m)
}

// ConvertToNative converts r as CEL's maps convert.
func (r *record) ConvertToNative(t reflect.Type) (any, error) { return r.asMap().ConvertToNative(t) }

func (r *record) ConvertToType(t ref.Type) ref.Val { return mapConvertToType(r, t) }

// Equal compares r with any CEL map, key by key, as CEL's maps compare.
func (r *record) Equal(other ref.Val) ref.Val {
	o, ok := other.(traits.Mapper)
	if !ok || o.Size() != types.Int(len(r.names)) {
		return types.False
	}
	for i := range r.names {
		v, found := o.Find(r.names[i])
		if !found || types.Equal(r.vals[i], v) == types.False {
			return types.False
		}
	}
	return types.True
}

func (r *record) Type() ref.Type { return types.MapType }

func (r *record) Value() any {
	m := make(map[string]any, len(r.names))
	for i := range r.names {
		m[string(r.names[i])] = r.vals[i].Value()
	}
	return m
}

func (r *record) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	for i := range r.names {
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

func (r *record) Size() ref.Val { return types.Int(len(r.names)) }

func (r *record) Iterator() traits.Iterator {
	for _, k := range recordKeys {
		if len(k.names) == len(r.names) && len(r.names) > 0 && &k.names[0] == &r.names[0] {
			return k.keys.Iterator()
		}
	}
	return keysList(r.names).Iterator()
}

// recordKeys are each kind of record's keys as a CEL list, made once:
// iterating over the engagement's channels (a persona's engagement.all)
// built it on every decision.
var recordKeys = []struct {
	names []types.String
	keys  traits.Lister
}{{eventFields, keysList(eventFields)}, {touchFields, keysList(touchFields)}, {profileFields, keysList(profileFields)},
	{engagementFields, keysList(engagementFields)}, {medEngFields, keysList(medEngFields)}}

func keysList(names []types.String) traits.Lister {
	keys := make([]ref.Val, len(names))
	for i := range names {
		keys[i] = names[i]
	}
	return types.NewRefValList(types.DefaultTypeAdapter, keys)
}

var _ traits.Mapper = (*record)(nil)

// attrMap is the profile's attributes as a CEL map from names to doubles,
// read from the profile's Go map rather than copied into one of CEL's
// for every decision.
type attrMap struct{ m map[string]float64 }

var _ traits.Mapper = (*attrMap)(nil)

// asMap is a as one of CEL's maps.
func (a *attrMap) asMap() traits.Mapper {
	m := make(map[ref.Val]ref.Val, len(a.m))
	for k, v := range a.m {
		m[types.String(k)] = types.Double(v)
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, m)
}

func (a *attrMap) ConvertToNative(t reflect.Type) (any, error) { return a.asMap().ConvertToNative(t) }

func (a *attrMap) ConvertToType(t ref.Type) ref.Val { return mapConvertToType(a, t) }

// Equal compares a with any CEL map, key by key, as CEL's maps compare.
func (a *attrMap) Equal(other ref.Val) ref.Val {
	o, ok := other.(traits.Mapper)
	if !ok || o.Size() != types.Int(len(a.m)) {
		return types.False
	}
	for k, v := range a.m {
		ov, found := o.Find(types.String(k))
		if !found || types.Equal(types.Double(v), ov) == types.False {
			return types.False
		}
	}
	return types.True
}

func (a *attrMap) Type() ref.Type { return types.MapType }

func (a *attrMap) Value() any {
	m := make(map[string]any, len(a.m))
	for k, v := range a.m {
		m[k] = v
	}
	return m
}

func (a *attrMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	v, ok := a.m[string(k)]
	if !ok {
		return nil, false
	}
	return types.Double(v), true
}

func (a *attrMap) Get(key ref.Val) ref.Val {
	if v, ok := a.Find(key); ok {
		return v
	}
	return types.NewErr("no such key: %v", key)
}

func (a *attrMap) Contains(key ref.Val) ref.Val {
	_, ok := a.Find(key)
	return types.Bool(ok)
}

func (a *attrMap) Size() ref.Val { return types.Int(len(a.m)) }

// Iterator iterates over the names in order (a Go map's order, which CEL's
// maps built from one had, is any order).
func (a *attrMap) Iterator() traits.Iterator {
	keys := make([]ref.Val, 0, len(a.m))
	for k := range a.m {
		keys = append(keys, types.String(k))
	}
	slices.SortFunc(keys, func(x, y ref.Val) int { return strings.Compare(string(x.(types.String)), string(y.(types.String))) })
	return types.NewRefValList(types.DefaultTypeAdapter, keys).Iterator()
}

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

// mapConvertToType converts m, a map of this package's, as CEL converts
// its maps: to a map (itself) or to its type.
func mapConvertToType(m ref.Val, t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return m
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from map to '%s'", t)
}
