package scoring

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/arbiter-nba/arbiter"
)

// Feature names. HCP-level features are named "<kind>" or "<kind>.<arg>":
//
//	engagement.<channel>          decayed engagement on the channel
//	fatigue.<channel>             decayed contacts on the channel
//	days_since_contact.<channel>  days since the last contact on it (capped)
//	days_since_engagement         days since the last engagement (capped)
//	segment.<name>                1 when the HCP's persona is <name>
//	specialty.<name>              1 when the HCP's specialty is <name>
//	attr.<name>                   a static numeric attribute
//
// Cross features, per candidate:
//
//	topic_affinity    the HCP's decayed engagement with the action's topic
//	specialty_match   1 when the action targets the HCP's specialty
const (
	FeatureTopicAffinity  = "topic_affinity"
	FeatureSpecialtyMatch = "specialty_match"
)

// MaxDays caps the days-since features, and stands for "never".
const MaxDays = 365

type featureKind uint8

const (
	kindEngagement featureKind = iota
	kindFatigue
	kindDaysSinceContact
	kindDaysSinceEngagement
	kindSegment
	kindSpecialty
	kindAttr
)

type feature struct {
	name    string
	kind    featureKind
	channel arbiter.Channel
	arg     string
}

// weights is one block of a channel's model: what the logit adds up.
type weights struct {
	bias           float64
	w              []float64 // indexed like Model.features
	topic          float64
	specialtyMatch float64
}

type channelModel struct {
	enabled bool
	weights
	// medical scores the channel's medical-purpose actions when the
	// channel has a "medical" block (nil: they use the main block, which
	// must then keep to the medical allowlist; see MedicalViolations).
	medical *weights
	// unsafe names the main block's features that the medical allowlist
	// does not permit (sorted): medical actions may not be scored on it.
	unsafe []string
}

// Model is a versioned weighted engagement model.
type Model struct {
	Version  string
	features []feature
	channels [arbiter.NumChannels]channelModel
	context  [arbiter.NumCallerKinds][arbiter.NumChannels]float64
	lever    [arbiter.NumPurposes]float64
	// medicalAllow is the medical allowlist, as parsed (sorted).
	medicalAllow []string
}

// DefaultMedicalAllowlist is the features a medical-purpose action may be
// scored on when the model does not say: the HCP's engagement on the
// scientific channels, contact frequency and recency, specialty, and the
// interest in the action's topic. Not prescribing potential (attr.*), not
// commercial segments or personas (segment.*), not rep-visit engagement:
// MSL guidance forbids steering medical contact by commercial value.
var DefaultMedicalAllowlist = []string{
	"days_since_contact.*", "days_since_engagement",
	"engagement.email", "engagement.msl_meeting", "engagement.portal", "engagement.push",
	"engagement.sms", "engagement.webinar",
	"fatigue.*", "specialty.*", FeatureSpecialtyMatch, FeatureTopicAffinity,
}

// allowed reports whether feature name is on allowlist (exact names, or
// "<kind>.*" for every feature of a kind).
func allowed(allowlist []string, name string) bool {
	kind, _, _ := strings.Cut(name, ".")
	for _, a := range allowlist {
		if a == name || a == kind+".*" {
			return true
		}
	}
	return false
}

// MedicalAllowlist returns the features medical actions may be scored on.
func (m *Model) MedicalAllowlist() []string { return append([]string(nil), m.medicalAllow...) }

// MedicalViolations returns the features that medical actions on channel c
// would be scored on although the medical allowlist does not permit them
// (nil: none). A definitions set whose catalog has a medical action on such
// a channel is refused (the medical/commercial firewall): give the channel
// a "medical" block of allowed features, or drop the weights.
func (m *Model) MedicalViolations(c arbiter.Channel) []string {
	if !c.Valid() || !m.channels[c].enabled {
		return nil
	}
	return append([]string(nil), m.channels[c].unsafe...)
}

// Profile is the scoring view of an HCP, filled by the caller.
type Profile struct {
	Engagement       [arbiter.NumChannels]float64
	Sent             [arbiter.NumChannels]float64
	DaysSinceContact [arbiter.NumChannels]float64
	// DaysSinceEngagement is capped at MaxDays (MaxDays: never).
	DaysSinceEngagement float64
	Segment             string
	Specialty           string
	Attributes          map[string]float64
}

// NumFeatures is the length of the vectors Vectorize fills.
func (m *Model) NumFeatures() int { return len(m.features) }

// Vectorize writes p's feature vector into x (len NumFeatures) and returns
// it; x is grown if short. It does not allocate when x is large enough.
func (m *Model) Vectorize(p *Profile, x []float64) []float64 {
	if cap(x) < len(m.features) {
		x = make([]float64, len(m.features))
	}
	x = x[:len(m.features)]
	for i := range m.features {
		f := &m.features[i]
		var v float64
		switch f.kind {
		case kindEngagement:
			v = p.Engagement[f.channel]
		case kindFatigue:
			v = p.Sent[f.channel]
		case kindDaysSinceContact:
			v = min(p.DaysSinceContact[f.channel], MaxDays)
		case kindDaysSinceEngagement:
			v = min(p.DaysSinceEngagement, MaxDays)
		case kindSegment:
			if p.Segment == f.arg {
				v = 1
			}
		case kindSpecialty:
			if p.Specialty == f.arg {
				v = 1
			}
		case kindAttr:
			v = p.Attributes[f.arg]
		}
		x[i] = v
	}
	return x
}

//go:embed demo_model.json
var demoModel []byte

// DemoJSON returns the demo model's file, as Demo parses it.
func DemoJSON() []byte { return append([]byte(nil), demoModel...) }

// Demo returns the model that ships with Arbiter, tuned by hand for the
// demo population.
func Demo() *Model {
	m, err := Parse(demoModel)
	if err != nil {
		panic("scoring: embedded demo model is invalid: " + err.Error())
	}
	return m
}

type fileWeights struct {
	Bias    float64            `json:"bias"`
	Weights map[string]float64 `json:"weights"`
}

type fileChannel struct {
	fileWeights
	// Medical, when present, scores the channel's medical actions.
	Medical *fileWeights `json:"medical"`
}

type fileModel struct {
	Version  string                        `json:"version"`
	Channels map[string]fileChannel        `json:"channels"`
	Context  map[string]map[string]float64 `json:"context"`
	Levers   struct {
		Purpose map[string]float64 `json:"purpose"`
	} `json:"levers"`
	// Allowlist is, per purpose, the features its actions may be scored
	// on. Only "medical" is accepted; it defaults to
	// DefaultMedicalAllowlist.
	Allowlist map[string][]string `json:"allowlist"`
}

// Parse reads a model from JSON and validates it: known channels, caller
// kinds, purposes and feature names; finite weights; positive context
// weights and levers. Channels absent from the model cannot be scored (their
// actions are rejected by Rank's caller as not eligible); context weights
// and levers default to 1.
func Parse(data []byte) (*Model, error) {
	var f fileModel
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("scoring: parse model: %w", err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	m := &Model{Version: f.Version}
	if f.Version == "" {
		bad("version: required")
	}
	if len(f.Channels) == 0 {
		bad("channels: at least one channel is required")
	}
	for k := range m.context {
		for c := range m.context[k] {
			m.context[k][c] = 1
		}
	}
	for p := range m.lever {
		m.lever[p] = 1
	}

	m.medicalAllow = slices.Clone(DefaultMedicalAllowlist)
	for purpose, list := range f.Allowlist {
		if purpose != "medical" {
			bad("allowlist.%s: only the medical purpose has an allowlist", purpose)
			continue
		}
		m.medicalAllow = nil
		for _, a := range list {
			kind, _, _ := strings.Cut(a, ".")
			switch {
			case kind == "segment" || a == "attr.*":
				// Segments and personas are commercial targeting, and
				// attr.* would let any attribute in, prescribing
				// potential first: name a vetted attribute instead.
				bad("allowlist.medical: %q is commercial and may never score medical actions", a)
			case strings.HasSuffix(a, ".*"):
				if !slices.Contains([]string{"engagement", "fatigue", "days_since_contact", "specialty"}, kind) {
					bad("allowlist.medical: %q: unknown feature kind", a)
				}
			case a == FeatureTopicAffinity || a == FeatureSpecialtyMatch:
			default:
				if _, err := parseFeature(a); err != nil {
					bad("allowlist.medical: %q: %v", a, err)
				}
			}
			m.medicalAllow = append(m.medicalAllow, a)
		}
	}
	slices.Sort(m.medicalAllow)

	// Collect HCP-level feature names first so every channel's weight
	// vector has the same layout.
	index := map[string]int{}
	for _, name := range sortedKeys(f.Channels) {
		blocks := []map[string]float64{f.Channels[name].Weights}
		if med := f.Channels[name].Medical; med != nil {
			blocks = append(blocks, med.Weights)
		}
		for b, weights := range blocks {
			for _, fname := range sortedKeys(weights) {
				if fname == FeatureTopicAffinity || fname == FeatureSpecialtyMatch {
					continue
				}
				if _, seen := index[fname]; seen {
					continue
				}
				feat, err := parseFeature(fname)
				if err != nil {
					bad("channels.%s.%sweights.%s: %v", name, []string{"", "medical."}[b], fname, err)
					continue
				}
				index[fname] = len(m.features)
				m.features = append(m.features, feat)
			}
		}
	}
	block := func(path string, fw *fileWeights) weights {
		wt := weights{bias: fw.Bias, w: make([]float64, len(m.features))}
		if !finite(fw.Bias) {
			bad("%s.bias: not a finite number", path)
		}
		for fname, w := range fw.Weights {
			if !finite(w) || math.Abs(w) > 100 {
				bad("%s.weights.%s: %v is not a finite weight within +-100", path, fname, w)
				continue
			}
			switch fname {
			case FeatureTopicAffinity:
				wt.topic = w
			case FeatureSpecialtyMatch:
				wt.specialtyMatch = w
			default:
				if i, ok := index[fname]; ok {
					wt.w[i] = w
				}
			}
		}
		return wt
	}
	for _, name := range sortedKeys(f.Channels) {
		fc := f.Channels[name]
		ch, ok := arbiter.ParseChannel(name)
		if !ok {
			bad("channels.%s: unknown channel", name)
			continue
		}
		cm := channelModel{enabled: true, weights: block("channels."+name, &fc.fileWeights)}
		for _, fname := range sortedKeys(fc.Weights) {
			if fc.Weights[fname] != 0 && !allowed(m.medicalAllow, fname) {
				cm.unsafe = append(cm.unsafe, fname)
			}
		}
		if fc.Medical != nil {
			med := block("channels."+name+".medical", fc.Medical)
			cm.medical, cm.unsafe = &med, nil
			for _, fname := range sortedKeys(fc.Medical.Weights) {
				if fc.Medical.Weights[fname] != 0 && !allowed(m.medicalAllow, fname) {
					bad("channels.%s.medical.weights.%s: not on the medical allowlist (%s): medical actions may not be scored on it",
						name, fname, strings.Join(m.medicalAllow, ", "))
				}
			}
		}
		m.channels[ch] = cm
	}
	for caller, weights := range f.Context {
		k, ok := arbiter.ParseCallerKind(caller)
		if !ok {
			bad("context.%s: unknown caller kind", caller)
			continue
		}
		for name, w := range weights {
			ch, ok := arbiter.ParseChannel(name)
			if !ok {
				bad("context.%s.%s: unknown channel", caller, name)
				continue
			}
			if !finite(w) || w <= 0 {
				bad("context.%s.%s: weight must be > 0, got %v", caller, name, w)
				continue
			}
			m.context[k][ch] = w
		}
	}
	for name, w := range f.Levers.Purpose {
		p, ok := arbiter.ParsePurpose(name)
		if !ok {
			bad("levers.purpose.%s: unknown purpose", name)
			continue
		}
		if !finite(w) || w <= 0 {
			bad("levers.purpose.%s: lever must be > 0, got %v", name, w)
			continue
		}
		m.lever[p] = w
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("scoring: invalid model: %w", errors.Join(errs...))
	}
	return m, nil
}

func parseFeature(name string) (feature, error) {
	kind, arg, _ := strings.Cut(name, ".")
	f := feature{name: name, arg: arg}
	needChannel := func(k featureKind) error {
		ch, ok := arbiter.ParseChannel(arg)
		if !ok {
			return fmt.Errorf("unknown channel %q", arg)
		}
		f.kind, f.channel = k, ch
		return nil
	}
	switch kind {
	case "engagement":
		return f, needChannel(kindEngagement)
	case "fatigue":
		return f, needChannel(kindFatigue)
	case "days_since_contact":
		return f, needChannel(kindDaysSinceContact)
	case "days_since_engagement":
		if arg != "" {
			return f, errors.New("days_since_engagement takes no argument")
		}
		f.kind = kindDaysSinceEngagement
		return f, nil
	case "segment", "specialty", "attr":
		if arg == "" {
			return f, fmt.Errorf("%s needs a name: %s.<name>", kind, kind)
		}
		f.kind = map[string]featureKind{"segment": kindSegment, "specialty": kindSpecialty, "attr": kindAttr}[kind]
		return f, nil
	}
	return f, errors.New("unknown feature (see the scoring package documentation for names)")
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Scores reports whether the model can score actions on channel c.
func (m *Model) Scores(c arbiter.Channel) bool { return c.Valid() && m.channels[c].enabled }
