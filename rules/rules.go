// Package rules is behaviour-driven orchestration: rules, written in CEL,
// that react to what happened to a recipient. A rule suppresses candidates
// for a while, boosts or demotes them, or requires that only some apply.
//
// This package, in the pure core, names the rules, their selectors and
// effects (what the decision engine applies). The engine that compiles and
// evaluates their expressions is an adapter, package celrules
// (cel.dev/cel-go), which registers itself when a program imports it; the
// environment the expressions see, and how medical signals are kept apart,
// are documented there (env.go).
//
// A rule has two parts, so that a decision's cost stays bounded:
//
//   - a recipient-level condition (when), a CEL expression evaluated once
//     per decision over the recipient's profile, engagement, recent events
//     and touches, the request and the time;
//   - a candidate selector on catalog tags (channels, purposes, topics,
//     formats, depths), matched per candidate without any CEL evaluation.
//     A selector's topics may come from a CEL expression (topics_in,
//     topics_not_in), evaluated once per decision with the condition.
//
// Every expression is compiled once, when the definitions are parsed,
// type-checked against the declared environment (celrules/env.go), and its cost
// bounded with CEL's cost estimate for the largest state a decision can
// read: an expression over the limit is refused.
//
// # The medical/commercial firewall
//
// Medical signals (MSL meetings, medical-purpose content, events on
// actions the catalog does not know) are in the environment's medical_
// variables alone (celrules/env.go). A rule that may boost or require promotional
// candidates, and every persona, is compiled without them: one that reads
// a medical signal is refused, naming it. A rule may still suppress or
// demote promotional contact because of a medical signal ("an MSL met the
// HCP today: no promotional email tomorrow"), which is what MSL guidance
// asks; such a rule is also evaluated without the medical signals, and
// what holds without them holds, so that a medical signal can only add to
// what is held back (a negated condition cannot lift it).
//
// # When a rule fails
//
// A suppress rule whose evaluation fails denies (its selector is held back,
// fail closed); any other rule that fails has no effect. Every failure is
// counted (Set.OnFailure).
package rules

import (
	"bytes"
	_ "embed"
	"errors"
	"slices"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/recipient"
)

// Effect is what a rule does to the candidates it selects.
type Effect uint8

const (
	// Suppress holds the selected candidates back (reason RULE) until
	// the rule's time runs out.
	Suppress Effect = iota + 1
	// Boost multiplies the selected candidates' scores by Factor (> 1).
	Boost
	// Demote multiplies them by Factor (< 1).
	Demote
	// Require lets only the selected candidates apply.
	Require
)

var effectNames = map[string]Effect{"suppress": Suppress, "boost": Boost, "demote": Demote, "require": Require}

func (e Effect) String() string {
	for k, v := range effectNames {
		if v == e {
			return k
		}
	}
	return "invalid"
}

// Selector picks candidates by their catalog tags. An empty part matches
// every candidate.
type Selector struct {
	Channels uint16 // bit c: arbiter.Channel(c)
	Purposes uint8  // bit p: arbiter.Purpose(p)
	Topics   []string
	Formats  []string
	Depths   []string
}

// Rule is one rule, as published: what the engine evaluates it for.
type Rule struct {
	ID          string
	Description string
	Effect      Effect
	Factor      float64
	// For is how long a suppression lasts from the rule's Since time.
	For    time.Duration
	Select Selector
}

// Persona is a dynamic persona: a CEL condition over the recipient's
// engagement and history, evaluated at decision time. The first persona
// of the set whose condition holds is the recipient's; it takes the place
// of the profile's static segment in scoring, so it selects the model's
// segment weights, and it changes as soon as behaviour does.
type Persona struct {
	ID          string
	Description string
}

// Recent bounds the recent events rules see.
type Recent struct {
	Count  int
	MaxAge time.Duration
}

// DefaultRecent is Recent when the rules file does not say.
var DefaultRecent = Recent{Count: 20, MaxAge: 90 * 24 * time.Hour}

// EffectNames maps a rules file's effect names to Effects.
var EffectNames = map[string]Effect{"suppress": Suppress, "boost": Boost, "demote": Demote, "require": Require}

// SelectsPromotional reports whether s can select a promotional candidate.
func (s *Selector) SelectsPromotional() bool {
	return s.Purposes == 0 || s.Purposes&(1<<arbiter.Promotional) != 0
}

// Set is a compiled rule set: part of a definitions set, immutable, safe
// for concurrent use.
type Set struct {
	Rules    []*Rule
	Personas []*Persona
	// Recent is what a decision reads of the recipient's recent events for
	// the rules: the newest Count (at most 50), none older than MaxAge.
	Recent Recent
	// Engine evaluates the rules' conditions (the engine that compiled
	// them: package celrules).
	Engine Engine
	// Journeys are the set's journeys (journey.go); ActionSteps, indexed
	// by catalog action index, the journey steps each action makes (nil
	// for most).
	Journeys    []*Journey
	ActionSteps [][]StepRef
	// OnFailure, when set, is called with the rule's id each time a rule's
	// evaluation fails (a metric counts them). Set it before use.
	OnFailure func(ruleID string)
}

// Engine evaluates a compiled set's conditions for one decision: the rules
// that hold, appended to out, the recipient's persona ("" for none), and,
// in bit i of entry, whether journey i's entry condition holds.
type Engine interface {
	Evaluate(s *Set, in *Input, out []Applied) (applied []Applied, persona string, entry uint64)
}

// Evaluate evaluates every rule's condition for one decision and appends
// the rules that apply to out.
func (s *Set) Evaluate(in *Input, out []Applied) []Applied {
	out, _, _ = s.EvaluateAll(in, out)
	return out
}

// EvaluateAll is Evaluate, and also names the recipient's persona (the
// first of the set's personas whose condition holds; "" for none, or when
// a persona's evaluation fails: the profile's segment then stands) and,
// in bit i of entry, whether journey i's entry condition holds (a failed
// evaluation does not hold).
func (s *Set) EvaluateAll(in *Input, out []Applied) (applied []Applied, persona string, entry uint64) {
	if s == nil || s.Engine == nil || len(s.Rules)+len(s.Personas)+len(s.Journeys) == 0 {
		return out, "", 0
	}
	return s.Engine.Evaluate(s, in, out)
}

// Empty reports whether the set has nothing for a decision to evaluate.
func (s *Set) Empty() bool {
	return s == nil || len(s.Rules)+len(s.Personas)+len(s.Journeys) == 0
}

// Compiler compiles a rules file against the catalog it goes with.
type Compiler func(data []byte, cat *catalog.Catalog) (*Set, error)

var compiler Compiler

// Register makes c the compiler Parse uses. The rule language's engine
// registers itself when a program imports it (package celrules, for
// CEL): the pure core names the rules, an adapter evaluates them.
func Register(c Compiler) { compiler = c }

// ErrNoEngine: no rules engine is linked into the program.
var ErrNoEngine = errors.New("no rules engine is linked into this program (import celrules)")

// Parse compiles a rules file with the registered compiler. Every problem
// is reported, naming the rule and, for an expression, the line and column
// in it; a set with any problem is refused whole.
func Parse(data []byte, cat *catalog.Catalog) (*Set, error) {
	if compiler == nil {
		return nil, ErrNoEngine
	}
	return compiler(data, cat)
}

//go:embed demo_rules.json
var demoRules []byte

// DemoJSON returns the demo rules' file.
func DemoJSON() []byte { return bytes.Clone(demoRules) }

// Input is what the rules see of one decision.
type Input struct {
	State   *recipient.State
	Catalog *catalog.Catalog
	At      time.Time
	Now     time.Time
	Caller  arbiter.CallerKind
	// Zone is the recipient's time zone (nil: unknown).
	Zone *time.Location
	// Send, when set, says the decision is a pre-send check of this one
	// action: a boost or a demotion changes nothing such a check answers,
	// nor does a suppression whose selector cannot select the action, so
	// the engine need not evaluate them (a requirement still counts: it
	// holds back what it does not select).
	Send *catalog.Action
}

// Irrelevant reports whether r cannot change what a pre-send check of
// in.Send answers (Input.Send), so that its condition need not be
// evaluated; always false for a decision that is not such a check.
func (in *Input) Irrelevant(r *Rule) bool {
	if in.Send == nil {
		return false
	}
	switch r.Effect {
	case Boost, Demote:
		return true
	case Suppress:
		return !r.Select.MaySelect(in.Send)
	}
	return false
}

// Applied is a rule whose condition holds for the decision: its effect on
// the candidates its selector matches.
type Applied struct {
	Rule *Rule
	// TopicsIn and TopicsNotIn are the selector's topics as evaluated for
	// this decision (nil: no restriction).
	TopicsIn, TopicsNotIn []string
	// ClearsAt is when a suppression lifts (Since + For).
	ClearsAt time.Time
	// Failed says the rule's evaluation failed: a suppression then holds
	// its selector back all the same (fail closed), without a clear time.
	Failed bool
}

// MaySelect reports whether a's tags match the selector's fixed parts
// (channels, purposes, topics, formats, depths): whatever the rule's
// evaluated topics, it selects nothing else.
func (s *Selector) MaySelect(a *catalog.Action) bool {
	if s.Channels != 0 && s.Channels&(1<<a.Channel) == 0 {
		return false
	}
	if s.Purposes != 0 && s.Purposes&(1<<a.Purpose) == 0 {
		return false
	}
	if len(s.Topics) > 0 && !slices.Contains(s.Topics, a.Topic) {
		return false
	}
	if len(s.Formats) > 0 && !slices.Contains(s.Formats, a.Format) {
		return false
	}
	if len(s.Depths) > 0 && !slices.Contains(s.Depths, a.Depth) {
		return false
	}
	return true
}

// Matches reports whether a's tags match the applied rule's selector.
func (ap *Applied) Matches(a *catalog.Action) bool {
	if !ap.Rule.Select.MaySelect(a) {
		return false
	}
	if ap.TopicsIn != nil && !slices.Contains(ap.TopicsIn, a.Topic) {
		return false
	}
	if ap.TopicsNotIn != nil && slices.Contains(ap.TopicsNotIn, a.Topic) {
		return false
	}
	return true
}
