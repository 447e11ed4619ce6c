package consent

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/arbiter-nba/arbiter"
)

// Default is what a market presumes on a channel when a recipient has no
// consent record for it.
type Default uint8

const (
	// OptInRequired: no record means no contact. The zero value, and the
	// default for every market and channel that is not configured.
	OptInRequired Default = iota
	// OptOutDefault: no record means contact is allowed until the recipient
	// opts out (US email, for instance), provided the recipient's consent
	// data is proven complete.
	OptOutDefault
)

// String returns the name used in policy files: "opt_in" or "opt_out".
func (d Default) String() string {
	switch d {
	case OptInRequired:
		return "opt_in"
	case OptOutDefault:
		return "opt_out"
	}
	return "invalid"
}

func parseDefault(s string) (Default, bool) {
	switch s {
	case "opt_in":
		return OptInRequired, true
	case "opt_out":
		return OptOutDefault, true
	}
	return OptInRequired, false
}

// Policy holds, per market and channel, the Default that applies when a
// recipient has no matching consent record. A nil or empty Policy requires
// opt-in everywhere. A Policy is immutable once built and safe for
// concurrent use.
type Policy struct {
	// markets maps a market code, compared exactly ("US", "EU"), to the
	// default per channel. Channels not configured hold the zero value,
	// OptInRequired, so one map lookup answers any channel.
	markets map[string]*MarketDefaults
	// none is the defaults of a market the policy does not configure:
	// OptInRequired everywhere.
	none MarketDefaults
}

// MarketDefaults are one market's default per channel.
type MarketDefaults [arbiter.NumChannels]Default

// Market returns market's defaults (OptInRequired everywhere for a market
// the policy does not configure). A decision looks its recipient's market
// up once and passes the result in every Query (Query.Defaults), instead of
// a map lookup per candidate.
func (p *Policy) Market(market string) *MarketDefaults {
	if p == nil {
		return nil
	}
	if d := p.markets[market]; d != nil {
		return d
	}
	return &p.none
}

// defaultFor returns the default for a market and channel: OptInRequired
// unless the policy configures OptOutDefault for exactly that pair.
func (p *Policy) defaultFor(market string, c arbiter.Channel) Default {
	if p == nil || !c.Valid() {
		return OptInRequired
	}
	if d := p.markets[market]; d != nil {
		return d[c]
	}
	return OptInRequired
}

//go:embed policy.json
var defaultPolicyJSON []byte

// DefaultPolicyJSON returns DefaultPolicy's file.
func DefaultPolicyJSON() []byte { return append([]byte(nil), defaultPolicyJSON...) }

// DefaultPolicy returns the demo policy embedded from policy.json: in the
// US, contacts other than SMS and push are opt-out by default; in the EU,
// only in-person, remote and MSL visits and direct mail are, and every
// electronic channel needs an opt-in. Other markets require opt-in.
func DefaultPolicy() *Policy {
	p, err := ParsePolicy(defaultPolicyJSON)
	if err != nil {
		// policy.json is compiled in and covered by a test.
		panic("consent: embedded policy.json: " + err.Error())
	}
	return p
}

// policyFile is the JSON form of a Policy:
//
//	{"markets": {"US": {"email": "opt_out", "sms": "opt_in"}}}
type policyFile struct {
	Markets map[string]map[string]string `json:"markets"`
}

// ParsePolicy reads a policy from JSON. Market codes must be non-empty and
// free of surrounding spaces; channel names are arbiter channel names
// ("email", "rep_visit"); values are "opt_in" or "opt_out". Unknown fields
// are rejected so that a typo cannot silently fall back to a default.
func ParsePolicy(data []byte) (*Policy, error) {
	var f policyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("consent: parse policy: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("consent: parse policy: unexpected data after the policy object")
	}
	p := &Policy{markets: make(map[string]*MarketDefaults, len(f.Markets))}
	// Sorted, so that the first error reported does not depend on map order.
	for _, market := range slices.Sorted(maps.Keys(f.Markets)) {
		if market == "" {
			return nil, fmt.Errorf("consent: parse policy: empty market code")
		}
		if strings.TrimSpace(market) != market {
			return nil, fmt.Errorf("consent: parse policy: market %q: code has surrounding spaces", market)
		}
		defaults := new(MarketDefaults)
		channels := f.Markets[market]
		for _, name := range slices.Sorted(maps.Keys(channels)) {
			c, ok := arbiter.ParseChannel(name)
			if !ok {
				return nil, fmt.Errorf("consent: parse policy: market %q: unknown channel %q", market, name)
			}
			d, ok := parseDefault(channels[name])
			if !ok {
				return nil, fmt.Errorf("consent: parse policy: market %q: channel %q: unknown default %q (want \"opt_in\" or \"opt_out\")", market, name, channels[name])
			}
			defaults[c] = d
		}
		p.markets[market] = defaults
	}
	return p, nil
}
