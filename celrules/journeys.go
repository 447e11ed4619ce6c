package celrules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/rules"
)

// maxJourneys bounds a set's journeys (the engine's entry bits).
const maxJourneys = 32

type fileJourney struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Enter       string        `json:"enter"`
	MaxDuration string        `json:"max_duration"`
	Boost       float64       `json:"boost"`
	Goal        *fileGoal     `json:"goal"`
	Steps       []fileStep    `json:"steps"`
	OffRamps    []fileOffRamp `json:"off_ramps"`
}

type fileGoal struct {
	Events []string `json:"events"`
	Topic  string   `json:"topic"`
}

type fileStep struct {
	ID          string    `json:"id"`
	Description string    `json:"description"`
	Actions     []string  `json:"actions"`
	Wait        *fileWait `json:"wait"`
}

type fileWait struct {
	Event string `json:"event"`
	For   string `json:"for"`
	// Attribute: the step is due at this profile attribute (Unix seconds)
	// plus For (which may be negative: "-1h").
	Attribute string `json:"attribute"`
}

type fileOffRamp struct {
	ID          string   `json:"id"`
	Description string   `json:"description"`
	On          []string `json:"on"`
	Persona     string   `json:"persona"`
	To          string   `json:"to"`
	Exit        bool     `json:"exit"`
	Offer       []string `json:"offer"`
}

type compiledJourney struct {
	*rules.Journey
	enter *program
}

// compileJourneys checks and compiles the rules file's journeys into set
// and eng. personas are the set's persona ids; maxAge the recent events'.
func compileJourneys(fjs []fileJourney, cat *catalog.Catalog, set *rules.Set, eng *engine, personas map[string]bool,
	compileOnce func(*cel.Env, string, *cel.Type) (*program, string), bad func(string, ...any)) {
	if len(fjs) > maxJourneys {
		bad("journeys: at most %d", maxJourneys)
		return
	}
	set.ActionSteps = make([][]rules.StepRef, len(cat.Actions))
	ids := map[string]bool{}
	for ji, fj := range fjs {
		where := fmt.Sprintf("journeys[%d] (%s)", ji, fj.ID)
		j := &rules.Journey{ID: fj.ID, Name: fj.Name, Boost: fj.Boost, Index: ji}
		switch {
		case !validPersonaID(strings.ReplaceAll(fj.ID, "-", "_")):
			bad("%s: id: 1 to 64 of a-z, 0-9, - and _", where)
		case ids[fj.ID]:
			bad("%s: id: used twice", where)
		}
		ids[fj.ID] = true
		if fj.Name == "" || len(fj.Name) > 100 {
			bad("%s: name: 1 to 100 characters (it names the journey in reasons)", where)
		}
		if j.Boost == 0 {
			j.Boost = 3
		} else if !(j.Boost >= 1 && j.Boost <= 10) {
			bad("%s: boost: from 1 to 10, got %v", where, j.Boost)
		}
		d, err := contact.ParseDuration(fj.MaxDuration)
		if err != nil || d < time.Hour || d > set.Recent.MaxAge {
			// Progress is derived from the recent events: a journey
			// cannot outlast what a decision reads of them.
			bad("%s: max_duration: %q is not a duration from 1h to the recent events' max_age (%s)", where, fj.MaxDuration, set.Recent.MaxAge)
		}
		j.MaxDuration = d
		if len(fj.Steps) == 0 || len(fj.Steps) > 20 {
			bad("%s: steps: 1 to 20", where)
		}
		stepIDs := map[string]int{}
		for k, fs := range fj.Steps {
			sw := fmt.Sprintf("%s: steps[%d] (%s)", where, k, fs.ID)
			if fs.ID == "" || len(fs.ID) > 64 {
				bad("%s: id: 1 to 64 characters", sw)
			} else if _, dup := stepIDs[fs.ID]; dup {
				bad("%s: id: used twice", sw)
			}
			stepIDs[fs.ID] = k
			if fs.Description == "" || len(fs.Description) > 200 {
				bad("%s: description: 1 to 200 characters, in a rep's words (the reason names it)", sw)
			}
			s := rules.Step{ID: fs.ID, Description: fs.Description, Actions: fs.Actions, Medical: len(fs.Actions) > 0}
			if len(fs.Actions) == 0 {
				bad("%s: actions: at least one", sw)
			}
			for _, id := range fs.Actions {
				ai, ok := cat.Lookup(id)
				if !ok {
					bad("%s: actions: %q is not in the catalog", sw, id)
					continue
				}
				a := &cat.Actions[ai]
				if a.Purpose == arbiter.Promotional {
					j.Promotional = true
				}
				if a.Purpose != arbiter.Medical {
					s.Medical = false
				}
				refs := set.ActionSteps[ai]
				if slices.ContainsFunc(refs, func(r rules.StepRef) bool { return r.Journey == ji }) {
					bad("%s: actions: %q is in two steps of the journey", sw, id)
				}
				set.ActionSteps[ai] = append(refs, rules.StepRef{Journey: ji, Step: k})
			}
			if w := fs.Wait; w != nil {
				if k == 0 && (w.Attribute == "" || w.Event != "") {
					bad("%s: wait: the first step is due when the recipient enters, or at a time of their profile (wait.attribute)", sw)
				}
				if w.For != "" {
					neg := strings.HasPrefix(w.For, "-")
					d, err := contact.ParseDuration(strings.TrimPrefix(w.For, "-"))
					if err != nil || d > j.MaxDuration || neg && w.Attribute == "" {
						bad("%s: wait.for: %q is not a duration within max_duration (negative only before an attribute's time)", sw, w.For)
					}
					if neg {
						d = -d
					}
					s.WaitFor = d
				}
				if w.Event != "" {
					var ok bool
					if s.WaitEvent, ok = arbiter.ParseEventType(w.Event); !ok {
						bad("%s: wait.event: unknown event type %q", sw, w.Event)
					}
				}
				if w.Attribute != "" {
					if w.Event != "" {
						bad("%s: wait: an event or an attribute, not both", sw)
					}
					s.WaitAttr = w.Attribute
				}
			}
			j.Steps = append(j.Steps, s)
		}
		if j.Promotional {
			// A medical step's send may count in a promotional journey
			// only where it can make nothing promotional due: no
			// promotional step after it.
			for k := range j.Steps {
				if !j.Steps[k].Medical {
					continue
				}
				for l := k + 1; l < len(j.Steps); l++ {
					if !j.Steps[l].Medical {
						bad("%s: steps[%d] (%s): follows the medical step %s: a medical interaction must never lead to promotional content (the medical/commercial firewall)",
							where, l, j.Steps[l].ID, j.Steps[k].ID)
						break
					}
				}
				break
			}
		}
		if g := fj.Goal; g != nil {
			for _, name := range g.Events {
				t, ok := arbiter.ParseEventType(name)
				if !ok {
					bad("%s: goal.events: unknown event type %q", where, name)
				}
				j.Goal = append(j.Goal, t)
			}
			if len(g.Events) == 0 {
				bad("%s: goal.events: at least one event type", where)
			}
			j.GoalTopic = g.Topic
		}
		for ri, fr := range fj.OffRamps {
			rw := fmt.Sprintf("%s: off_ramps[%d] (%s)", where, ri, fr.ID)
			r := rules.OffRamp{ID: fr.ID, Description: fr.Description, Persona: fr.Persona, Offer: fr.Offer, To: -1}
			if fr.ID == "" || fr.Description == "" {
				bad("%s: id and description: required", rw)
			}
			for _, name := range fr.On {
				t, ok := arbiter.ParseEventType(name)
				if !ok {
					bad("%s: on: unknown event type %q", rw, name)
					continue
				}
				if j.Promotional && t == arbiter.EventMSLMeeting {
					bad("%s: on: an MSL meeting must never move a promotional journey (the medical/commercial firewall)", rw)
				}
				r.On = append(r.On, t)
			}
			if fr.Persona != "" && !personas[fr.Persona] {
				bad("%s: persona: %q is not a persona of the rules file", rw, fr.Persona)
			}
			if (len(r.On) == 0) == (fr.Persona == "") {
				bad("%s: give on (events) or persona", rw)
			}
			switch {
			case fr.Persona != "" && !fr.Exit:
				// A persona holds at every decision while it lasts: a move
				// to a step would make that step due again and again.
				bad("%s: a persona's off-ramp exits (\"exit\": true): a move to a step would repeat it while the persona holds", rw)
			case fr.Exit && fr.To != "":
				bad("%s: to a step, or exit, not both", rw)
			case fr.Exit:
			case fr.To == "":
				bad("%s: to (a step id) or exit: required", rw)
			default:
				k, ok := stepIDs[fr.To]
				if !ok {
					bad("%s: to: no step %q", rw, fr.To)
				}
				r.To = k
				if len(fr.Offer) > 0 {
					bad("%s: offer: only an exit offers something else", rw)
				}
			}
			for _, id := range fr.Offer {
				ai, ok := cat.Lookup(id)
				if !ok {
					bad("%s: offer: %q is not in the catalog", rw, id)
				} else if cat.Actions[ai].Purpose == arbiter.Promotional {
					bad("%s: offer: %q is promotional: an off-ramp offers a way out, not more promotion", rw, id)
				}
			}
			j.OffRamps = append(j.OffRamps, r)
		}
		cj := compiledJourney{Journey: j}
		if fj.Enter == "" {
			bad("%s: enter: required (\"true\" for everyone)", where)
		} else {
			env := fullEnv
			if j.Promotional {
				env = commercialEnv
			}
			prg, problem := compileOnce(env, fj.Enter, cel.BoolType)
			if problem != "" {
				if env == commercialEnv && strings.Contains(problem, "medical_") {
					problem = "a medical signal must not enter a recipient into a journey with promotional steps (the medical/commercial firewall): " + problem
				}
				bad("%s: enter: %s", where, problem)
			}
			cj.enter = prg
		}
		set.Journeys = append(set.Journeys, j)
		eng.journeys = append(eng.journeys, cj)
	}
}
