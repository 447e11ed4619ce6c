package contact

import (
	"fmt"
	"slices"
	"time"

	"github.com/arbiter-nba/arbiter"
)

// Send is the touch a check is about.
type Send struct {
	Channel  arbiter.Channel
	Purpose  arbiter.Purpose
	Critical bool
}

// Kind is which part of the policy blocks.
type Kind uint8

const (
	KindCap Kind = iota + 1
	KindGap
	KindQuiet
)

// Limit is one count the booking script redoes: the counting touches that
// match Filter at times in [From, To] (Unix ms, both inclusive) must be
// fewer than Max, and the ledger's horizon must lie before From. Caps and
// gaps compile to Limits (a gap is a cap of 1 over (t-G, t+G)), so that
// the gates and the script count the same thing.
type Limit struct {
	RuleID   string
	Kind     Kind
	Filter   Filter
	From, To int64
	Max      int
}

// Verdict is why the policy blocks a send.
type Verdict struct {
	Kind   Kind
	RuleID string
	// ClearsAt is the earliest time the block can lift: the block holds
	// at every instant from the check's time until then (the search for
	// the earliest allowed time relies on it never being late). Zero: it
	// cannot be known (no allowed hour in sight).
	ClearsAt time.Time
	// Caps: the touches counted, and the cap.
	Count, Max int
	Period     Period
	Window     time.Duration
	// Truncated: the window reaches past the ledger's horizon.
	Truncated bool
	// Gaps: the least gap.
	Min time.Duration
	// Zone is the zone quiet hours or a calendar period were counted in
	// (nil: several).
	Zone *time.Location
}

// fallbackZones are the zones of a recipient whose zone is not known at
// all: every offset a zone can have, by quarter hours (+5:30 India, +5:45
// Nepal). Quiet hours then hold when they hold anywhere, and a calendar
// day is every day that overlaps it.
var fallbackZones = func() []*time.Location {
	var out []*time.Location
	for q := -12 * 4; q <= 14*4; q++ {
		out = append(out, time.FixedZone(fmt.Sprintf("UTC%+03d:%02d", q/4, abs(q%4)*15), q*15*60))
	}
	return out
}()

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func zonesOrFallback(zones []*time.Location) []*time.Location {
	if len(zones) == 0 {
		return fallbackZones
	}
	return zones
}

// Limits appends to buf the Limits of r's caps and gaps for a send s at t,
// in the recipient's zones (none: unknown). A critical send has none.
func (r *Rules) Limits(s Send, t time.Time, zones []*time.Location, buf []Limit) []Limit {
	if s.Critical {
		return buf
	}
	ms := t.UnixMilli()
	for i := range r.Caps {
		c := &r.Caps[i]
		if !c.Filter.Matches(s.Channel, s.Purpose) {
			continue
		}
		lo, hi, _ := c.window(ms, t, zones)
		buf = append(buf, Limit{RuleID: c.ID, Kind: KindCap, Filter: c.Filter, From: lo, To: hi, Max: c.Max})
	}
	for i := range r.Gaps {
		g := &r.Gaps[i]
		if !g.Filter.Matches(s.Channel, s.Purpose) {
			continue
		}
		d := g.Min.Milliseconds()
		buf = append(buf, Limit{RuleID: g.ID, Kind: KindGap, Filter: g.Filter, From: ms - d + 1, To: ms + d - 1, Max: 1})
	}
	return buf
}

// window is the cap's counting window for a send at t (ms), inclusive,
// and the earliest time (ms) it can move on by the calendar: the end of
// the first of the zones' periods to end (rolling: 0).
func (c *Cap) window(ms int64, t time.Time, zones []*time.Location) (lo, hi, next int64) {
	if c.Period == Rolling {
		w := c.Window.Milliseconds()
		return ms - w + 1, ms + w - 1, 0
	}
	lo, hi, next = 1<<62, -1<<62, 1<<62
	for _, loc := range zonesOrFallback(zones) {
		start, end := period(c.Period, t, loc)
		lo, hi, next = min(lo, start), max(hi, end-1), min(next, end)
	}
	return lo, hi, next
}

// period is the local day or week (from Monday) holding t, in ms.
func period(p Period, t time.Time, loc *time.Location) (start, end int64) {
	lt := t.In(loc)
	y, m, d := lt.Date()
	days := 1
	if p == Week {
		d -= (int(lt.Weekday()) + 6) % 7
		days = 7
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UnixMilli(), time.Date(y, m, d+days, 0, 0, 0, 0, loc).UnixMilli()
}

// Count returns how many touches of l count against lim at now.
func (lim *Limit) Count(l *Ledger, now time.Time) int {
	n := 0
	for i := range l.Touches {
		u := &l.Touches[i]
		if at := u.At.UnixMilli(); at >= lim.From && at <= lim.To && lim.Filter.Matches(u.Channel, u.Purpose) && u.Counts(now) {
			n++
		}
	}
	return n
}

// Full reports whether lim leaves no room for one more touch: Max counted
// touches, or a window the ledger cannot prove.
func (lim *Limit) Full(l *Ledger, now time.Time) bool {
	return l.unproven(lim.From) || lim.Count(l, now) >= lim.Max
}

// unproven reports whether a window from ms reaches the truncated part.
func (l *Ledger) unproven(from int64) bool {
	return l.Unreadable || !l.Horizon.IsZero() && from <= l.Horizon.UnixMilli()
}

// clearsAfterHorizon is when a window of length w starting past the
// horizon can be proven again (0: never, the ledger is unreadable).
func (l *Ledger) clearsAfterHorizon(w int64) int64 {
	if l.Unreadable {
		return 0
	}
	return l.Horizon.UnixMilli() + w
}

func msOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// CheckCaps reports whether a cap of r blocks s at t, given the ledger as
// of now; v gets the blocking cap that clears last.
func (r *Rules) CheckCaps(s Send, t, now time.Time, l *Ledger, zones []*time.Location, v *Verdict) bool {
	return r.checkCaps(nil, s, t, now, l, zones, v)
}

// Memo keeps, for one decision (one ledger, time and set of zones), what
// the checks work out that does not depend on the send: each cap's count,
// each gap's latest touch, each channel's quiet hours. A decision asks
// about many candidates; most share them. The zero Memo is empty; Reset
// empties it for another decision, keeping its buffers.
type Memo struct {
	caps  []capMemo
	gaps  []gapMemo
	quiet [arbiter.NumChannels]quietMemo
}

type capMemo struct {
	done, blocked, truncated bool
	clears                   int64
	count                    int
}

type gapMemo struct {
	done, truncated bool
	last            int64 // -1<<62: none
}

type quietMemo struct {
	done, blocked bool
	v             Verdict
}

// Reset empties m.
func (m *Memo) Reset() {
	*m = Memo{caps: m.caps[:0], gaps: m.gaps[:0]}
}

// Caps is CheckCaps, remembering in m what does not depend on s.
func (m *Memo) Caps(r *Rules, s Send, t, now time.Time, l *Ledger, zones []*time.Location, v *Verdict) bool {
	return r.checkCaps(m, s, t, now, l, zones, v)
}

// Gaps is CheckGaps, remembering in m what does not depend on s.
func (m *Memo) Gaps(r *Rules, s Send, t, now time.Time, l *Ledger, v *Verdict) bool {
	return r.checkGaps(m, s, t, now, l, v)
}

// Quiet is CheckQuiet, remembering each channel's answer in m. A nil
// Memo (as for Caps and Gaps) remembers nothing.
func (m *Memo) Quiet(r *Rules, s Send, t time.Time, zones []*time.Location, v *Verdict) bool {
	if s.Critical || len(r.Quiet) == 0 {
		return false
	}
	if m == nil {
		return r.CheckQuiet(s, t, zones, v)
	}
	q := &m.quiet[s.Channel]
	if !q.done {
		q.done = true
		q.blocked = r.CheckQuiet(Send{Channel: s.Channel}, t, zones, &q.v)
	}
	if q.blocked {
		*v = q.v
	}
	return q.blocked
}

func (r *Rules) checkCaps(m *Memo, s Send, t, now time.Time, l *Ledger, zones []*time.Location, v *Verdict) bool {
	if s.Critical {
		return false
	}
	if m != nil && len(m.caps) != len(r.Caps) {
		m.caps = append(m.caps[:0], make([]capMemo, len(r.Caps))...)
	}
	blocked := false
	for i := range r.Caps {
		c := &r.Caps[i]
		if !c.Filter.Matches(s.Channel, s.Purpose) {
			continue
		}
		var cm capMemo
		if m != nil && m.caps[i].done {
			cm = m.caps[i]
		} else {
			cm = r.capAt(i, t, now, l, zones)
			if m != nil {
				m.caps[i] = cm
			}
		}
		if !cm.blocked {
			continue
		}
		// Keep the block that clears last; one that never clears wins.
		if !blocked || !v.ClearsAt.IsZero() && (cm.clears == 0 || cm.clears > v.ClearsAt.UnixMilli()) {
			*v = Verdict{Kind: KindCap, RuleID: c.ID, ClearsAt: msOrZero(cm.clears), Count: cm.count, Max: c.Max,
				Period: c.Period, Window: c.Window, Truncated: cm.truncated, Zone: oneZone(zones)}
		}
		blocked = true
	}
	return blocked
}

// capAt works cap i out at t: whether it is reached, and when it clears.
func (r *Rules) capAt(i int, t, now time.Time, l *Ledger, zones []*time.Location) capMemo {
	c := &r.Caps[i]
	lo, hi, next := c.window(t.UnixMilli(), t, zones)
	lim := Limit{Filter: c.Filter, From: lo, To: hi, Max: c.Max}
	cm := capMemo{done: true, truncated: l.unproven(lo)}
	switch {
	case cm.truncated && c.Period == Rolling:
		cm.blocked, cm.clears = true, l.clearsAfterHorizon(c.Window.Milliseconds())
	case cm.truncated && !l.Unreadable:
		cm.blocked, cm.clears = true, next
	case cm.truncated:
		cm.blocked = true
	default:
		if cm.count = lim.Count(l, now); cm.count < c.Max {
			return cm
		}
		cm.blocked = true
		if c.Period == Rolling {
			cm.clears = lim.kth(l, now, cm.count-c.Max) + c.Window.Milliseconds()
		} else {
			cm.clears = next
		}
	}
	return cm
}

// kth returns the time (ms) of the k-th (from 0) earliest touch counted by lim.
func (lim *Limit) kth(l *Ledger, now time.Time, k int) int64 {
	var buf [32]int64
	times := buf[:0]
	for i := range l.Touches {
		u := &l.Touches[i]
		if at := u.At.UnixMilli(); at >= lim.From && at <= lim.To && lim.Filter.Matches(u.Channel, u.Purpose) && u.Counts(now) {
			times = append(times, at)
		}
	}
	slices.Sort(times)
	return times[k]
}

// CheckGaps reports whether a gap of r blocks s at t; v gets the one that
// clears last.
func (r *Rules) CheckGaps(s Send, t, now time.Time, l *Ledger, v *Verdict) bool {
	return r.checkGaps(nil, s, t, now, l, v)
}

const noTouch = int64(-1 << 62)

func (r *Rules) checkGaps(m *Memo, s Send, t, now time.Time, l *Ledger, v *Verdict) bool {
	if s.Critical {
		return false
	}
	if l.Unreadable {
		for i := range r.Gaps {
			if g := &r.Gaps[i]; g.Filter.Matches(s.Channel, s.Purpose) {
				*v = Verdict{Kind: KindGap, RuleID: g.ID, Min: g.Min, Truncated: true}
				return true
			}
		}
		return false
	}
	if m != nil && len(m.gaps) != len(r.Gaps) {
		m.gaps = append(m.gaps[:0], make([]gapMemo, len(r.Gaps))...)
	}
	blocked := false
	for i := range r.Gaps {
		g := &r.Gaps[i]
		if !g.Filter.Matches(s.Channel, s.Purpose) {
			continue
		}
		var gm gapMemo
		if m != nil && m.gaps[i].done {
			gm = m.gaps[i]
		} else {
			gm = r.gapAt(i, t, now, l)
			if m != nil {
				m.gaps[i] = gm
			}
		}
		if gm.last == noTouch {
			continue
		}
		if clears := gm.last + g.Min.Milliseconds(); !blocked || clears > v.ClearsAt.UnixMilli() {
			*v = Verdict{Kind: KindGap, RuleID: g.ID, ClearsAt: time.UnixMilli(clears).UTC(), Min: g.Min, Truncated: gm.truncated}
		}
		blocked = true
	}
	return blocked
}

// gapAt works gap i out at t: the latest matching touch within the gap
// (or the horizon, when the gap reaches past it).
func (r *Rules) gapAt(i int, t, now time.Time, l *Ledger) gapMemo {
	g := &r.Gaps[i]
	ms, d := t.UnixMilli(), g.Min.Milliseconds()
	lo, hi := ms-d+1, ms+d-1
	gm := gapMemo{done: true, truncated: l.unproven(lo), last: noTouch}
	if gm.truncated {
		gm.last = l.Horizon.UnixMilli()
	}
	for j := range l.Touches {
		u := &l.Touches[j]
		if at := u.At.UnixMilli(); at >= lo && at <= hi && g.Filter.Matches(u.Channel, u.Purpose) && u.Counts(now) {
			gm.last = max(gm.last, at)
		}
	}
	return gm
}

// CheckQuiet reports whether quiet hours or a weekday of r block s at t in
// any of the recipient's zones; v.ClearsAt is the first time no quiet
// hours of the channel hold in any zone.
func (r *Rules) CheckQuiet(s Send, t time.Time, zones []*time.Location, v *Verdict) bool {
	if s.Critical || len(r.Quiet) == 0 {
		return false
	}
	first, ok := r.quietAt(s.Channel, t, zones)
	if !ok {
		return false
	}
	open, found := t, false
	for range 64 {
		q, closed := r.quietAt(s.Channel, open, zones)
		if !closed {
			found = true
			break
		}
		open = q.end
	}
	*v = Verdict{Kind: KindQuiet, RuleID: first.id, Zone: oneZone(zones)}
	if found {
		v.ClearsAt = open.UTC()
	}
	return true
}

type quietHit struct {
	id  string
	end time.Time // when this hit's quiet period ends (the latest of the zones')
}

// quietAt reports whether a quiet rule holds for ch at t in some zone, and
// the latest end of the quiet periods that hold.
func (r *Rules) quietAt(ch arbiter.Channel, t time.Time, zones []*time.Location) (quietHit, bool) {
	var hit quietHit
	found := false
	for i := range r.Quiet {
		q := &r.Quiet[i]
		if q.Channels != 0 && q.Channels&(1<<ch) == 0 {
			continue
		}
		for _, loc := range zonesOrFallback(zones) {
			end, closed := q.closedUntil(t, loc)
			if !closed {
				continue
			}
			if !found {
				hit.id = q.ID
			}
			if !found || end.After(hit.end) {
				hit.end = end
			}
			found = true
		}
	}
	return hit, found
}

// closedUntil reports whether q holds at t in loc, and until when this
// stretch of it lasts (at least past t).
func (q *Quiet) closedUntil(t time.Time, loc *time.Location) (time.Time, bool) {
	lt := t.In(loc)
	// at is when the local clock shows minute min, days later, counted at
	// t's offset: a local time a clock change skips or repeats must not
	// move it (time.Date may pick either side of the change).
	since := time.Duration(lt.Hour())*time.Hour + time.Duration(lt.Minute())*time.Minute +
		time.Duration(lt.Second())*time.Second + time.Duration(lt.Nanosecond())
	at := func(days, min int) time.Time { return t.Add(time.Duration(days*24*60+min)*time.Minute - since) }
	tod := lt.Hour()*60 + lt.Minute()
	var end time.Time
	switch {
	case q.Days&(1<<lt.Weekday()) == 0:
		end = at(1, 0)
	case q.From < q.To && tod >= q.From && tod < q.To:
		end = at(0, q.To)
	case q.From > q.To && tod >= q.From:
		end = at(1, q.To)
	case q.From > q.To && tod < q.To:
		end = at(0, q.To)
	default:
		return time.Time{}, false
	}
	// The local clock runs evenly at t's offset only until the zone's
	// next clock change: this stretch ends there at the latest, and the
	// caller looks again.
	if _, change := lt.ZoneBounds(); !change.IsZero() && end.After(change) {
		end = change
	}
	return end, true
}

func oneZone(zones []*time.Location) *time.Location {
	if len(zones) == 1 {
		return zones[0]
	}
	return nil
}

// Describe says why v blocks a send on ch with purpose pu, in words a rep
// understands ("2 of 2 promotional email touches allowed in 7 days (cap
// promo-email-7d); clears Tue 09:00 local"). It holds no personal data.
func (v *Verdict) Describe(ch arbiter.Channel, pu arbiter.Purpose) string {
	var s string
	switch v.Kind {
	case KindCap:
		span := "in " + human(v.Window)
		switch v.Period {
		case Day:
			span = "per local day"
		case Week:
			span = "per local week"
		}
		if v.Truncated {
			s = fmt.Sprintf("cap %s (%d per %s): the touch history is truncated, so the limit counts as reached", v.RuleID, v.Max, span)
		} else {
			s = fmt.Sprintf("%d touches already under cap %s, %d allowed %s", v.Count, v.RuleID, v.Max, span)
		}
	case KindGap:
		if v.Truncated {
			s = fmt.Sprintf("minimum gap %s (%s): the touch history is truncated", human(v.Min), v.RuleID)
		} else {
			s = fmt.Sprintf("another touch within %s (minimum gap %s)", human(v.Min), v.RuleID)
		}
	case KindQuiet:
		s = fmt.Sprintf("quiet hours or a day without %s contact in the recipient's time zone (%s)", ch, v.RuleID)
		if v.Zone == nil {
			s = fmt.Sprintf("quiet hours for %s in one of the recipient's possible time zones (%s)", ch, v.RuleID)
		}
	}
	if !v.ClearsAt.IsZero() {
		if v.Zone != nil {
			s += "; clears " + v.ClearsAt.In(v.Zone).Format("Mon 2 Jan 15:04") + " local"
		} else {
			s += "; clears " + v.ClearsAt.Format("Mon 2 Jan 15:04 UTC")
		}
	}
	return s
}

func human(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
