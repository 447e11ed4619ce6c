package contact

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbiter-nba/arbiter"
)

// Limits on a policy, so that a decision's cost stays bounded.
const (
	maxRules       = 64
	maxRuleItems   = 32 // caps, gaps or quiet hours per rule
	maxZones       = 16 // per market
	maxApplying    = 32 // caps, gaps or quiet hours that apply to one recipient
	defaultTouches = 500
	// MaxTouchesLimit is the most a policy may keep per recipient.
	MaxTouchesLimit = 5000
)

// DefaultReservationTTL is how long a reservation holds past its planned
// time when the policy does not say.
const DefaultReservationTTL = 15 * time.Minute

// Period is what a cap counts over.
type Period uint8

const (
	Rolling Period = iota // over Window, ending at the send
	Day                   // the recipient's calendar day
	Week                  // the recipient's calendar week, from Monday
)

// Filter says which touches (and sends) a cap or gap is about: a bit per
// channel and per purpose; an empty set is every one.
type Filter struct {
	Channels uint16 // bit c: arbiter.Channel(c)
	Purposes uint8  // bit p: arbiter.Purpose(p)
}

// Matches reports whether a touch on ch with purpose pu is in the filter.
// A touch of unknown purpose (an event that did not say) matches every
// purpose: it is counted rather than missed.
func (f Filter) Matches(ch arbiter.Channel, pu arbiter.Purpose) bool {
	return (f.Channels == 0 || f.Channels&(1<<ch) != 0) &&
		(f.Purposes == 0 || pu == arbiter.PurposeUnspecified || f.Purposes&(1<<pu) != 0)
}

// Cap allows at most Max matching touches per window.
type Cap struct {
	ID     string
	Filter Filter
	Max    int
	Period Period
	Window time.Duration // Rolling only
}

// Gap is the least time between two matching touches.
type Gap struct {
	ID     string
	Filter Filter
	Min    time.Duration
}

// Quiet is when a channel must not be used, in the recipient's local
// time: the hours From to To (minutes of the day; To < From wraps past
// midnight; From == To: no quiet hours) and the weekdays not in Days.
type Quiet struct {
	ID       string
	Channels uint16 // empty: every channel
	From, To int    // minutes since local midnight
	Days     uint8  // bit d: time.Weekday(d) allowed; 0x7f: every day
}

// Rules are the caps, gaps and quiet hours that apply to one recipient:
// every rule of the policy for the recipient's market and audience.
type Rules struct {
	Caps  []Cap
	Gaps  []Gap
	Quiet []Quiet
}

// Empty reports whether r limits nothing.
func (r *Rules) Empty() bool { return len(r.Caps)+len(r.Gaps)+len(r.Quiet) == 0 }

// Policy is the contact policy of a definitions set. It is immutable and
// safe for concurrent use. A nil *Policy limits nothing.
type Policy struct {
	// Retention is how long the ledger keeps a touch; no window is longer.
	Retention time.Duration
	// MaxTouches bounds the ledger per recipient; beyond it the oldest are
	// dropped and the ledger is truncated (see Ledger.Horizon).
	MaxTouches int
	// ReservationTTL is how long a reservation holds after its planned
	// send time, unless the send event confirms it first.
	ReservationTTL time.Duration
	zones          map[string][]*time.Location
	rules          map[key]*Rules
	any            map[arbiter.Audience]*Rules // markets the policy does not name
}

type key struct {
	market   string
	audience arbiter.Audience
}

// For returns the rules that apply to a recipient of market and audience.
// The result is shared and must not be modified.
func (p *Policy) For(market string, audience arbiter.Audience) *Rules {
	if p == nil {
		return &noRules
	}
	if r := p.rules[key{market, audience}]; r != nil {
		return r
	}
	if r := p.any[audience]; r != nil {
		return r
	}
	return &noRules
}

var noRules Rules

// Zones returns the zones a recipient's local time is counted in: its own
// (tz, when it names a zone), else every zone of its market. The list is
// shared and must not be modified. None: the
// recipient's time is unknown, and quiet hours and calendar caps hold.
func (p *Policy) Zones(market, tz string) []*time.Location {
	if tz != "" {
		if zs := loadZones(tz); zs != nil {
			return zs
		}
	}
	if p == nil {
		return nil
	}
	return p.zones[market]
}

// loadZone returns the named zone, from a process-wide cache: a decision
// must not read the zone database.
func loadZone(name string) *time.Location {
	if zs := loadZones(name); zs != nil {
		return zs[0]
	}
	return nil
}

// loadZones is loadZone as a one-zone list, shared and read-only (the
// form Zones returns, without an allocation per decision).
func loadZones(name string) []*time.Location {
	if v, ok := zoneCache.Load(name); ok {
		return v.([]*time.Location)
	}
	loc, err := time.LoadLocation(name)
	var zs []*time.Location // a name that is no zone is remembered as nil
	if err == nil && name != "Local" {
		zs = []*time.Location{loc}
	}
	if zoneCount.Load() >= maxCachedZones {
		return zs // a flood of odd names: answer, but keep no more
	}
	if _, loaded := zoneCache.LoadOrStore(name, zs); !loaded {
		zoneCount.Add(1)
	}
	return zs
}

// The policy file's JSON.
type file struct {
	Retention      string                `json:"retention"`
	MaxTouches     int                   `json:"max_touches"`
	ReservationTTL string                `json:"reservation_ttl"`
	Markets        map[string]fileMarket `json:"markets"`
	Rules          []fileRule            `json:"rules"`
}

type fileMarket struct {
	Zones []string `json:"zones"`
}

type fileRule struct {
	ID         string      `json:"id"`
	Markets    []string    `json:"markets"`
	Audiences  []string    `json:"audiences"`
	Caps       []fileCap   `json:"caps"`
	Gaps       []fileGap   `json:"gaps"`
	QuietHours []fileQuiet `json:"quiet_hours"`
}

type fileCap struct {
	ID       string   `json:"id"`
	Channels []string `json:"channels"`
	Purposes []string `json:"purposes"`
	Max      int      `json:"max"`
	Window   string   `json:"window"`
	Per      string   `json:"per"`
}

type fileGap struct {
	ID       string   `json:"id"`
	Channels []string `json:"channels"`
	Purposes []string `json:"purposes"`
	Min      string   `json:"min"`
}

type fileQuiet struct {
	ID       string   `json:"id"`
	Channels []string `json:"channels"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Weekdays []string `json:"weekdays"`
}

//go:embed demo_policy.json
var demoPolicy []byte

// DemoJSON returns the demo contact policy's file.
func DemoJSON() []byte { return bytes.Clone(demoPolicy) }

// Parse reads and validates a contact policy file. Every problem is
// reported, each naming where it is ("rules[1].caps[0].window: ...").
func Parse(data []byte) (*Policy, error) {
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse: %s", arbiter.JSONProblem(err))
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	p := &Policy{MaxTouches: defaultTouches, ReservationTTL: DefaultReservationTTL,
		zones: map[string][]*time.Location{}, rules: map[key]*Rules{}, any: map[arbiter.Audience]*Rules{}}
	var err error
	if p.Retention, err = ParseDuration(f.Retention); err != nil || p.Retention <= 0 {
		bad("retention: %q is not a positive duration (\"35d\", \"720h\")", f.Retention)
	}
	if f.MaxTouches != 0 {
		if f.MaxTouches < 10 || f.MaxTouches > MaxTouchesLimit {
			bad("max_touches: %d is not between 10 and %d", f.MaxTouches, MaxTouchesLimit)
		}
		p.MaxTouches = f.MaxTouches
	}
	if f.ReservationTTL != "" {
		if p.ReservationTTL, err = ParseDuration(f.ReservationTTL); err != nil || p.ReservationTTL < time.Second || p.ReservationTTL > 7*24*time.Hour {
			bad("reservation_ttl: %q is not a duration between 1s and 7d", f.ReservationTTL)
		}
	}
	for _, m := range slices.Sorted(maps.Keys(f.Markets)) {
		zs := f.Markets[m].Zones
		if len(zs) == 0 || len(zs) > maxZones {
			bad("markets.%s.zones: give 1 to %d zones", m, maxZones)
		}
		for i, z := range zs {
			loc := loadZone(z)
			if loc == nil {
				bad("markets.%s.zones[%d]: %q is not a time zone", m, i, z)
				continue
			}
			p.zones[m] = append(p.zones[m], loc)
		}
	}
	if len(f.Rules) > maxRules {
		bad("rules: at most %d", maxRules)
	}
	ids := map[string]bool{}
	type parsed struct {
		markets   []string
		audiences []arbiter.Audience
		r         Rules
	}
	var all []parsed
	for i, fr := range f.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		var pr parsed
		pr.markets = fr.Markets
		for _, m := range fr.Markets {
			if m == "" {
				bad("%s.markets: empty market", at)
			}
		}
		for j, a := range fr.Audiences {
			aud, ok := arbiter.ParseAudience(a)
			if !ok {
				bad("%s.audiences[%d]: unknown audience %q", at, j, a)
			}
			pr.audiences = append(pr.audiences, aud)
		}
		if len(fr.Caps)+len(fr.Gaps)+len(fr.QuietHours) == 0 {
			bad("%s: a rule needs caps, gaps or quiet_hours", at)
		}
		if len(fr.Caps) > maxRuleItems || len(fr.Gaps) > maxRuleItems || len(fr.QuietHours) > maxRuleItems {
			bad("%s: at most %d caps, gaps and quiet hours each", at, maxRuleItems)
		}
		checkID := func(where, id string) {
			switch {
			case id == "" || len(id) > 64 || strings.ContainsAny(id, " \t\n|"):
				bad("%s.id: 1 to 64 characters, no spaces or '|'", where)
			case ids[id]:
				bad("%s.id: %q is used twice", where, id)
			}
			ids[id] = true
		}
		for j, fc := range fr.Caps {
			w := fmt.Sprintf("%s.caps[%d]", at, j)
			checkID(w, fc.ID)
			c := Cap{ID: fc.ID, Max: fc.Max, Filter: parseFilter(w, fc.Channels, fc.Purposes, bad)}
			if fc.Max < 1 || fc.Max > 1000 {
				bad("%s.max: %d is not between 1 and 1000", w, fc.Max)
			}
			switch {
			case fc.Window != "" && fc.Per != "":
				bad("%s: give window or per, not both", w)
			case fc.Window != "":
				c.Window, err = ParseDuration(fc.Window)
				if err != nil || c.Window < time.Minute {
					bad("%s.window: %q is not a duration of at least 1m", w, fc.Window)
				}
			case fc.Per == "day":
				c.Period, c.Window = Day, 25*time.Hour // the longest local day
			case fc.Per == "week":
				c.Period, c.Window = Week, 7*24*time.Hour+time.Hour
			default:
				bad("%s: give window (\"7d\") or per (\"day\", \"week\")", w)
			}
			if p.Retention > 0 && c.Window > p.Retention {
				bad("%s: its window (%s) is longer than the retention (%s): the ledger could not prove it", w, fc.Window+fc.Per, f.Retention)
			}
			pr.r.Caps = append(pr.r.Caps, c)
		}
		for j, fg := range fr.Gaps {
			w := fmt.Sprintf("%s.gaps[%d]", at, j)
			checkID(w, fg.ID)
			g := Gap{ID: fg.ID, Filter: parseFilter(w, fg.Channels, fg.Purposes, bad)}
			if g.Min, err = ParseDuration(fg.Min); err != nil || g.Min < time.Minute {
				bad("%s.min: %q is not a duration of at least 1m", w, fg.Min)
			} else if p.Retention > 0 && g.Min > p.Retention {
				bad("%s.min: longer than the retention", w)
			}
			pr.r.Gaps = append(pr.r.Gaps, g)
		}
		for j, fq := range fr.QuietHours {
			w := fmt.Sprintf("%s.quiet_hours[%d]", at, j)
			checkID(w, fq.ID)
			q := Quiet{ID: fq.ID, Channels: parseFilter(w, fq.Channels, nil, bad).Channels, Days: 0x7f}
			var ok1, ok2 bool
			q.From, ok1 = parseClock(fq.From)
			q.To, ok2 = parseClock(fq.To)
			if !ok1 || !ok2 {
				bad("%s: from and to are local times \"HH:MM\"", w)
			}
			if len(fq.Weekdays) > 0 {
				q.Days = 0
				for k, d := range fq.Weekdays {
					wd, ok := parseWeekday(d)
					if !ok {
						bad("%s.weekdays[%d]: %q is not mon..sun", w, k, d)
						continue
					}
					q.Days |= 1 << wd
				}
			}
			if q.Days == 0 {
				bad("%s.weekdays: at least one day must be allowed", w)
			}
			if q.From == q.To && q.Days == 0x7f {
				bad("%s: from equals to and every weekday is allowed: it limits nothing", w)
			}
			pr.r.Quiet = append(pr.r.Quiet, q)
		}
		all = append(all, pr)
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	// Precompute the rules of every (market, audience) the policy names,
	// and of every audience in markets it does not name.
	audiences := []arbiter.Audience{arbiter.HCP, arbiter.Patient}
	markets := map[string]bool{}
	for _, pr := range all {
		for _, m := range pr.markets {
			markets[m] = true
		}
	}
	for m := range p.zones {
		markets[m] = true
	}
	collect := func(market string, named bool, aud arbiter.Audience) *Rules {
		r := &Rules{}
		for _, pr := range all {
			if len(pr.markets) > 0 && (!named || !slices.Contains(pr.markets, market)) {
				continue
			}
			if len(pr.audiences) > 0 && !slices.Contains(pr.audiences, aud) {
				continue
			}
			r.Caps = append(r.Caps, pr.r.Caps...)
			r.Gaps = append(r.Gaps, pr.r.Gaps...)
			r.Quiet = append(r.Quiet, pr.r.Quiet...)
		}
		return r
	}
	for _, aud := range audiences {
		for m := range markets {
			p.rules[key{m, aud}] = collect(m, true, aud)
		}
		p.any[aud] = collect("", false, aud)
	}
	// What one recipient is subject to bounds what a decision and a
	// booking cost (each cap and gap is counted over the whole ledger).
	for k, r := range p.rules {
		if len(r.Caps) > maxApplying || len(r.Gaps) > maxApplying || len(r.Quiet) > maxApplying {
			errs = append(errs, fmt.Sprintf("rules: %s recipients of market %s are subject to more than %d caps, gaps or quiet hours", k.audience, k.market, maxApplying))
		}
	}
	for aud, r := range p.any {
		if len(r.Caps) > maxApplying || len(r.Gaps) > maxApplying || len(r.Quiet) > maxApplying {
			errs = append(errs, fmt.Sprintf("rules: %s recipients of other markets are subject to more than %d caps, gaps or quiet hours", aud, maxApplying))
		}
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return p, nil
}

func parseFilter(where string, channels, purposes []string, bad func(string, ...any)) Filter {
	var f Filter
	for i, c := range channels {
		ch, ok := arbiter.ParseChannel(c)
		if !ok {
			bad("%s.channels[%d]: unknown channel %q", where, i, c)
			continue
		}
		f.Channels |= 1 << ch
	}
	for i, s := range purposes {
		pu, ok := arbiter.ParsePurpose(s)
		if !ok {
			bad("%s.purposes[%d]: unknown purpose %q", where, i, s)
			continue
		}
		f.Purposes |= 1 << pu
	}
	return f
}

// ParseDuration reads a duration as time.ParseDuration does, and also whole
// days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 || d > 3660 {
			return 0, errors.New("bad days")
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func parseClock(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh == 24 && mm != 0 {
		return 0, false
	}
	return hh*60 + mm, true
}

var weekdays = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func parseWeekday(s string) (time.Weekday, bool) {
	i := slices.Index(weekdays[:], s)
	return time.Weekday(i), i >= 0
}

// zoneCache holds the zones loaded so far, by name; at most
// maxCachedZones, so that a flood of odd names cannot grow it for ever.
var (
	zoneCache      sync.Map
	zoneCount      atomic.Int64
	maxCachedZones int64 = 1000
)
