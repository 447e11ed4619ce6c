package features

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
)

// fieldError is returned for a profile field that cannot be decoded. It
// wraps arbiter.ErrCorrupt and names the field, never its value.
type fieldError struct{ field string }

func (e *fieldError) Error() string { return "field " + e.field + ": " + arbiter.ErrCorrupt.Error() }
func (e *fieldError) Unwrap() error { return arbiter.ErrCorrupt }

// decodeProfile decodes a profile hash into p and c, with the counters
// decayed to atMs. It is on the decision hot path: it parses in place
// (topic and attribute names are substrings of the field names) and
// allocates only the Attributes and Topics maps, and only when needed.
func decodeProfile(fields map[string]string, atMs int64, halfLifeMs float64, p *Profile, c *Counters) error {
	dec := decayer{atMs: atMs, halfLifeMs: halfLifeMs}
	return decodeProfileAt(fields, &dec, false, p, c)
}

// decodeProfileAt is decodeProfile with dec's time and half-life; with atCT
// the counters are decoded as of the hash's counter time instead (not
// decayed), and dec then tells that time and whether a counter had its own
// stamp.
func decodeProfileAt(fields map[string]string, dec *decayer, atCT bool, p *Profile, c *Counters) error {
	var haveMarket, haveAudience bool
	// The decayed counters are stored as of one time, fCounterTime: one
	// decay factor serves them all. Its absence is corruption only if a
	// counter needs it.
	dec.factor = 1
	halfLifeMs := dec.halfLifeMs
	if v, ok := fields[fCounterTime]; ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return &fieldError{fCounterTime}
		}
		dec.ct, dec.haveCT = ms, true
		if atCT {
			dec.atMs = ms
		}
		dec.factor = decay(1, ms, dec.atMs, halfLifeMs)
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
			f, ok := dec.value(v)
			if !ok {
				return &fieldError{k}
			}
			if k[0] == 'e' {
				c.Engagement[ch] = f
			} else {
				c.Sent[ch] = f
			}
		case pTopic:
			f, ok := dec.value(v)
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
	if !haveMarket {
		return &fieldError{fMarket}
	}
	if !haveAudience {
		return &fieldError{fAudience}
	}
	return nil
}

// stable is an HCP's two hashes decoded once, independent of the decision
// time: what the HCP cache keeps. Snapshots made from it share its maps and
// consent records, which nothing modifies.
type stable struct {
	profile    Profile
	counters   Counters // the decayed counters as of ct, not decayed
	ct         int64
	consent    consent.State
	consentErr error
}

// decodeStable decodes both hashes for the cache. It returns nil (and no
// error) for a profile with counters in the earlier per-counter-stamp form:
// those cannot be brought to one time without the decision time, so such
// an HCP is decoded per decision instead of cached.
func decodeStable(fields, consentFields map[string]string, halfLifeMs float64) (*stable, error) {
	st := &stable{}
	dec := decayer{halfLifeMs: halfLifeMs}
	err := decodeProfileAt(fields, &dec, true, &st.profile, &st.counters)
	if err != nil || dec.legacy {
		return nil, err
	}
	st.ct = dec.ct
	st.consent, st.consentErr = consent.Decode(consentFields) // the zero State, which denies, on error
	return st, nil
}

// snapshot returns the Snapshot of st for a decision at atMs: the same
// values decodeProfile gives for the hash at that time.
func (st *stable) snapshot(hcpID string, atMs int64, halfLifeMs float64) *Snapshot {
	snap := &Snapshot{Profile: st.profile, Counters: st.counters, Consent: st.consent, ConsentErr: st.consentErr}
	snap.Profile.HCPID = hcpID
	if f := decay(1, st.ct, atMs, halfLifeMs); f != 1 {
		for i := range snap.Counters.Engagement {
			snap.Counters.Engagement[i] *= f
			snap.Counters.Sent[i] *= f
		}
		if len(st.counters.Topics) > 0 {
			topics := make(map[string]float64, len(st.counters.Topics))
			for k, v := range st.counters.Topics {
				topics[k] = v * f
			}
			snap.Counters.Topics = topics
		}
	}
	return snap
}

// decayer turns stored counter values into values decayed to atMs.
type decayer struct {
	atMs       int64
	halfLifeMs float64
	ct         int64   // the counters' common time (fCounterTime)
	haveCT     bool    // whether the hash has one
	factor     float64 // decay from ct to atMs
	legacy     bool    // a counter had its own stamp
}

// value parses a counter: "<value>", as of the common time, or the earlier
// form "<value>|<t0 ms>", as of its own t0. A counter stamped after atMs (a
// load "in the past", or clocks apart) is returned as stored: decay never
// increases a value.
func (d *decayer) value(s string) (float64, bool) {
	num, stamp, legacy := strings.Cut(s, "|")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !finite(v) {
		return 0, false
	}
	if !legacy {
		return v * d.factor, d.haveCT
	}
	t0, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return 0, false
	}
	d.legacy = true
	return decay(v, t0, d.atMs, d.halfLifeMs), true
}

// decay returns v, as of t0Ms, decayed to atMs: v * 2^(-(at-t0)/halfLife).
func decay(v float64, t0Ms, atMs int64, halfLifeMs float64) float64 {
	if atMs <= t0Ms || v == 0 {
		return v
	}
	return v * math.Exp2(-float64(atMs-t0Ms)/halfLifeMs)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func formatInt(i int64) string { return strconv.FormatInt(i, 10) }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// profileArgs appends the put_profile.lua arguments for p to args: the
// counters mode, then the descriptive fields. A zero p.UpdatedAt is stamped
// now.
func profileArgs(args []any, mode string, p Profile, now time.Time) []any {
	updated := p.UpdatedAt
	if updated.IsZero() {
		updated = now
	}
	args = append(args, mode,
		fMarket, p.Market,
		fAudience, p.Audience.String(),
		fUpdatedAt, formatInt(updated.UnixMilli()),
	)
	if p.Specialty != "" {
		args = append(args, fSpecialty, p.Specialty)
	}
	if p.Segment != "" {
		args = append(args, fSegment, p.Segment)
	}
	if p.TimeZone != "" {
		args = append(args, fTimeZone, p.TimeZone)
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
func counterArgs(args []any, c *Counters, nowMs int64) []any {
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
