package redisstore

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// fieldError is returned for a profile field that cannot be decoded. It
// wraps arbiter.ErrCorrupt and names the field, never its value.
type fieldError struct{ field string }

func (e *fieldError) Error() string { return "field " + e.field + ": " + arbiter.ErrCorrupt.Error() }
func (e *fieldError) Unwrap() error { return arbiter.ErrCorrupt }

// decodeProfile decodes a profile hash into p and c, with the counters
// decayed to d.at (as stored when d.at is zero or before the counters'
// time). It is on the decision hot path: it parses in place (topic and
// attribute names are substrings of the field names) and allocates only
// the Attributes and Topics maps, and only when needed.
//
// A counter in the per-counter-stamp form of earlier versions
// ("<value>|<t0 ms>") is refused as corrupt: Migrate converts it.
//
// Operators' journey moves (pJourney fields) are decoded into ov, and
// reps' dismissals (pDismissal fields) into dm, sorted by action id, when
// they are not nil.
func decodeProfile(fields map[string]string, d *decoder, p *recipient.Profile, c *recipient.Counters, ov *[]recipient.JourneyOverride,
	dm *[]recipient.Dismissal) error {
	var haveMarket, haveAudience, haveCT bool
	// The decayed counters are stored as of one time, fCounterTime: one
	// decay factor serves them all. Its absence is corruption only if a
	// counter needs it.
	factor := 1.0
	if v, ok := fields[fCounterTime]; ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return &fieldError{fCounterTime}
		}
		haveCT = true
		c.AsOf = time.UnixMilli(ms).UTC()
		if !d.at.IsZero() && d.at.UnixMilli() > ms {
			factor = recipient.DecayFactor(c.AsOf, d.at, d.halfLife)
			c.AsOf = time.UnixMilli(d.at.UnixMilli()).UTC()
		}
	}
	counter := func(v string) (float64, bool) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !finite(f) || !haveCT {
			return 0, false
		}
		return f * factor, true
	}
	for k, v := range fields {
		switch k {
		case fSpecialty:
			p.Specialty = v
			continue
		case fMarket:
			p.Market = v
			haveMarket = true
			continue
		case fAudience:
			a, ok := arbiter.ParseAudience(v)
			if !ok {
				return &fieldError{k}
			}
			p.Audience = a
			haveAudience = true
			continue
		case fSegment:
			p.Segment = v
			continue
		case fTimeZone:
			p.TimeZone = v
			continue
		case fTerritories:
			p.Territories = strings.Split(v, ",")
			continue
		case fUpdatedBy:
			p.UpdatedBy = v
			continue
		case fUpdatedAt:
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return &fieldError{k}
			}
			p.UpdatedAt = time.UnixMilli(ms).UTC()
			continue
		case fLastEng:
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return &fieldError{k}
			}
			c.LastEngagement = time.UnixMilli(ms).UTC()
			continue
		}
		i := strings.IndexByte(k, ':')
		if i < 0 {
			continue // unknown field: ignored
		}
		name := k[i+1:]
		switch k[:i+1] {
		case pAddress:
			ch, ok := arbiter.ParseChannel(name)
			if !ok {
				return &fieldError{k}
			}
			p.Addresses[ch] = v
		case pAttribute:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !finite(f) || name == "" {
				return &fieldError{k}
			}
			if p.Attributes == nil {
				p.Attributes = make(map[string]float64)
			}
			p.Attributes[name] = f
		case pEngagement, pSent:
			ch, ok := arbiter.ParseChannel(name)
			if !ok {
				return &fieldError{k}
			}
			f, ok := counter(v)
			if !ok {
				return &fieldError{k}
			}
			if k[0] == 'e' {
				c.Engagement[ch] = f
			} else {
				c.Sent[ch] = f
			}
		case pJourney:
			if ov == nil {
				continue
			}
			o, ok := decodeOverride(name, v)
			if !ok {
				return &fieldError{k}
			}
			*ov = append(*ov, o)
		case pDismissal:
			if dm == nil {
				continue
			}
			ms, principal, _ := strings.Cut(v, "|")
			at, err := strconv.ParseInt(ms, 10, 64)
			if err != nil || name == "" {
				return &fieldError{k}
			}
			*dm = append(*dm, recipient.Dismissal{ActionID: name, At: time.UnixMilli(at).UTC(), Principal: principal})
		case pTopic:
			f, ok := counter(v)
			if !ok || name == "" {
				return &fieldError{k}
			}
			if c.Topics == nil {
				c.Topics = make(map[string]float64)
			}
			c.Topics[name] = f
		case pLastContact:
			ch, ok := arbiter.ParseChannel(name)
			if !ok {
				return &fieldError{k}
			}
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return &fieldError{k}
			}
			c.LastContact[ch] = time.UnixMilli(ms).UTC()
		}
	}
	if dm != nil && len(*dm) > 1 {
		slices.SortFunc(*dm, func(a, b recipient.Dismissal) int { return strings.Compare(a.ActionID, b.ActionID) })
	}
	if !haveMarket {
		return &fieldError{fMarket}
	}
	if !haveAudience {
		return &fieldError{fAudience}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func formatInt(i int64) string { return strconv.FormatInt(i, 10) }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// profileArgs appends the put_profile.lua arguments for p to args: the
// counters mode, then the descriptive fields. A zero p.UpdatedAt is stamped
// now.
func profileArgs(args []any, mode string, p recipient.Profile, now time.Time) []any {
	updated := p.UpdatedAt
	if updated.IsZero() {
		updated = now
	}
	args = append(args, mode,
		fMarket, p.Market,
		fAudience, p.Audience.String(),
		fUpdatedAt, formatInt(updated.UnixMilli()),
	)
	if p.UpdatedBy != "" {
		args = append(args, fUpdatedBy, p.UpdatedBy)
	}
	if p.Specialty != "" {
		args = append(args, fSpecialty, p.Specialty)
	}
	if p.Segment != "" {
		args = append(args, fSegment, p.Segment)
	}
	if p.TimeZone != "" {
		args = append(args, fTimeZone, p.TimeZone)
	}
	if len(p.Territories) > 0 {
		args = append(args, fTerritories, strings.Join(p.Territories, ","))
	}
	for ch, a := range p.Addresses {
		if a != "" {
			args = append(args, pAddress+arbiter.Channel(ch).String(), a)
		}
	}
	for name, v := range p.Attributes {
		args = append(args, pAttribute+name, formatFloat(v))
	}
	return args
}

// counterArgs appends the counter fields of c, as of nowMs, to args. Zero
// values and zero times are left out.
func counterArgs(args []any, c *recipient.Counters, nowMs int64) []any {
	args = append(args, fCounterTime, formatInt(nowMs))
	for ch := 1; ch < arbiter.NumChannels; ch++ {
		name := arbiter.Channel(ch).String()
		if v := c.Engagement[ch]; v != 0 {
			args = append(args, pEngagement+name, formatFloat(v))
		}
		if v := c.Sent[ch]; v != 0 {
			args = append(args, pSent+name, formatFloat(v))
		}
		if t := c.LastContact[ch]; !t.IsZero() {
			args = append(args, pLastContact+name, formatInt(t.UnixMilli()))
		}
	}
	for topic, v := range c.Topics {
		if v != 0 {
			args = append(args, pTopic+topic, formatFloat(v))
		}
	}
	if !c.LastEngagement.IsZero() {
		args = append(args, fLastEng, formatInt(c.LastEngagement.UnixMilli()))
	}
	return args
}

// decodeOverride decodes a pJourney field's value: "<step id>|<ms>|<principal>"
// (an empty step id: out of the journey).
func decodeOverride(journey, v string) (recipient.JourneyOverride, bool) {
	step, rest, ok1 := strings.Cut(v, "|")
	ms, principal, ok2 := strings.Cut(rest, "|")
	at, err := strconv.ParseInt(ms, 10, 64)
	if !ok1 || !ok2 || err != nil || journey == "" {
		return recipient.JourneyOverride{}, false
	}
	return recipient.JourneyOverride{Journey: journey, Step: step, At: time.UnixMilli(at).UTC(), Principal: principal}, true
}

// encodeOverride is decodeOverride's inverse.
func encodeOverride(o recipient.JourneyOverride) string {
	return o.Step + "|" + strconv.FormatInt(o.At.UnixMilli(), 10) + "|" + o.Principal
}
