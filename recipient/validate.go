package recipient

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/contact"
)

// Limits on stored values. Topics and address references have the same
// limits as in consent records, which they are matched against.
const (
	maxHCPIDLen   = 64
	maxEventIDLen = 128
	maxRefLen     = 128 // action, message ids
	// maxDecisionIDLen bounds a decision id: a sealed one carries the
	// recipient id (decision/ids.go).
	maxDecisionIDLen = 200
	maxTopicLen      = 128
	maxAddressLen    = 128
	maxTextLen       = 64 // specialty, segment
	maxMarketLen     = 32
	maxTimeZoneLen   = 64
	maxAttrNameLen   = 64
	maxAttributes    = 128
	maxTerritories   = 32
	maxFuture        = 5 * time.Minute
	maxImportConsent = 1000
	maxNoteLen       = 256
)

var (
	errHCPIDLength = errors.New("must be 1 to 64 characters")
	errHCPIDChars  = errors.New("may contain only letters, digits, '.', '_', ':' and '-'")
)

// ValidID checks an HCP id: 1 to 64 characters of [A-Za-z0-9._:-]. The
// id is a Redis Cluster hash tag in every key, so it can never contain a
// brace. The error describes the rule and never echoes the id; callers put
// it in a field violation of their own.
func ValidID(id string) error {
	if len(id) == 0 || len(id) > maxHCPIDLen {
		return errHCPIDLength
	}
	for i := 0; i < len(id); i++ {
		if !isIDByte(id[i]) {
			return errHCPIDChars
		}
	}
	return nil
}

func isIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// Validate checks p before it is stored. It returns an *arbiter.InvalidError
// listing every violation, with field paths relative to the profile:
// "hcp_id", "market", "audience", "specialty", "segment", "time_zone",
// "addresses.<channel>" and "attributes" (the gRPC boundary adds the
// request's prefix). Specialty is required for the HCP audience only.
// Descriptions never echo the values.
func (p Profile) Validate() error {
	e := &arbiter.InvalidError{}
	p.validate(e, "")
	return e.Err()
}

func (p Profile) validate(e *arbiter.InvalidError, name string) {
	if err := ValidID(p.HCPID); err != nil {
		e.Add(join(name, "hcp_id"), err.Error())
	}
	if !isToken(p.Market, maxMarketLen, false) {
		e.Add(join(name, "market"), "is required: 1 to 32 letters, digits, '_' or '-'")
	}
	if !p.Audience.Valid() {
		e.Add(join(name, "audience"), "must be hcp or patient")
	}
	switch {
	case p.Specialty == "" && p.Audience == arbiter.HCP:
		e.Add(join(name, "specialty"), "is required for an hcp")
	case !isText(p.Specialty, maxTextLen):
		e.Add(join(name, "specialty"), "must be at most 64 bytes of printable UTF-8 without '|'")
	}
	if !isText(p.Segment, maxTextLen) {
		e.Add(join(name, "segment"), "must be at most 64 bytes of printable UTF-8 without '|'")
	}
	if p.TimeZone != "" && !isToken(p.TimeZone, maxTimeZoneLen, true) {
		e.Add(join(name, "time_zone"), "must be an IANA time zone name")
	}
	if p.Addresses[arbiter.ChannelUnspecified] != "" {
		e.Add(join(name, "addresses.unspecified"), "must be empty")
	}
	for ch := 1; ch < arbiter.NumChannels; ch++ {
		switch a := p.Addresses[ch]; {
		case !isText(a, maxAddressLen):
			e.Add(join(name, "addresses."+arbiter.Channel(ch).String()), "must be at most 128 bytes of printable UTF-8 without '|'")
		case strings.Contains(a, "@"):
			e.Add(join(name, "addresses."+arbiter.Channel(ch).String()), arbiter.AddressRefProblem)
		}
	}
	if len(p.Territories) > maxTerritories {
		e.Add(join(name, "territories"), "must have at most 32 entries")
	}
	for _, t := range p.Territories {
		if !isToken(t, maxMarketLen*2, false) {
			e.Add(join(name, "territories"), "each must be 1 to 64 letters, digits, '_' or '-'")
			break
		}
	}
	if len(p.Attributes) > maxAttributes {
		e.Add(join(name, "attributes"), "must have at most 128 entries")
	}
	for k, v := range p.Attributes {
		if !isDottedToken(k) {
			e.Add(join(name, "attributes"), "names must be 1 to 64 letters, digits, '.', '_' or '-'")
			break
		}
		if !finite(v) {
			e.Add(join(name, "attributes"), "values must be finite numbers")
			break
		}
	}
	if !p.UpdatedAt.IsZero() && p.UpdatedAt.UnixMilli() <= 0 {
		e.Add(join(name, "updated_at"), "must be after 1970-01-01")
	}
}

// validate checks counters given to Import.
func (c *Counters) validate(e *arbiter.InvalidError, name string) {
	if c.Engagement[0] != 0 || c.Sent[0] != 0 || !c.LastContact[0].IsZero() {
		e.Add(name, "the unspecified channel must have no counters")
	}
	for ch := 1; ch < arbiter.NumChannels; ch++ {
		cn := arbiter.Channel(ch).String()
		if !finite(c.Engagement[ch]) {
			e.Add(name+".engagement."+cn, "must be a finite number")
		}
		if !finite(c.Sent[ch]) || c.Sent[ch] < 0 {
			e.Add(name+".sent."+cn, "must be a finite number, not negative")
		}
		if t := c.LastContact[ch]; !t.IsZero() && t.UnixMilli() <= 0 {
			e.Add(name+".last_contact."+cn, "must be after 1970-01-01")
		}
	}
	if t := c.LastEngagement; !t.IsZero() && t.UnixMilli() <= 0 {
		e.Add(join(name, "last_engagement"), "must be after 1970-01-01")
	}
	for topic, v := range c.Topics {
		if topic == "" || !isRef(topic, maxTopicLen) {
			e.Add(join(name, "topics"), "names must be 1 to 128 printable ASCII characters without '|'")
			break
		}
		if !finite(v) {
			e.Add(join(name, "topics"), "values must be finite numbers")
			break
		}
	}
}

// Validate checks e with time.Now as the clock; ValidateAt with the given
// one. It returns an *arbiter.InvalidError listing every violation, with
// field paths relative to the event, named as in the API: "event_id",
// "hcp_id", "type", "channel", "occurred_at", "action_id", "topic" and
// "decision_id" (the gRPC boundary adds the request's "event." prefix).
func (e Event) Validate() error { return e.ValidateAt(time.Now()) }

func (e Event) ValidateAt(now time.Time) error {
	inv := &arbiter.InvalidError{}
	if e.ID == "" || !isRef(e.ID, maxEventIDLen) {
		inv.Add("event_id", "is required: 1 to 128 printable ASCII characters without '|'")
	}
	if err := ValidID(e.HCPID); err != nil {
		inv.Add("hcp_id", err.Error())
	}
	if !e.Type.Valid() {
		inv.Add("type", "must be a known event type")
	}
	if !e.Channel.Valid() {
		inv.Add("channel", "must be a known channel")
	}
	switch {
	case e.OccurredAt.UnixMilli() <= 0:
		inv.Add("occurred_at", "is required and must be after 1970-01-01")
	case e.OccurredAt.After(now.Add(maxFuture)):
		inv.Add("occurred_at", "must not be more than 5 minutes in the future")
	}
	if !isRef(e.ActionID, maxRefLen) {
		inv.Add("action_id", "must be at most 128 printable ASCII characters without '|'")
	}
	if !isRef(e.Topic, maxTopicLen) {
		inv.Add("topic", "must be at most 128 printable ASCII characters without '|'")
	}
	if !isRef(e.DecisionID, maxDecisionIDLen) {
		inv.Add("decision_id", "must be at most 200 printable ASCII characters without '|'")
	}
	if !isRef(e.MessageID, maxRefLen) {
		inv.Add("message_id", "must be at most 128 printable ASCII characters without '|'")
	}
	if !isRef(e.ReservationID, maxRefLen) {
		inv.Add("reservation_id", "must be at most 128 printable ASCII characters without '|'")
	}
	if e.Purpose != arbiter.PurposeUnspecified && !e.Purpose.Valid() {
		inv.Add("purpose", "must be a known purpose")
	}
	feedback := e.Type == arbiter.EventDismissed || e.Type == arbiter.EventCompleted
	switch {
	case e.Type == arbiter.EventDismissed && !e.Dismissal.Valid():
		inv.Add("dismissal", "is required for a dismissal: not_relevant, already_done or other")
	case e.Type != arbiter.EventDismissed && e.Dismissal != arbiter.DismissUnspecified:
		inv.Add("dismissal", "is for a dismissal only")
	}
	if feedback && e.ActionID == "" {
		inv.Add("action_id", "is required for a suggestion's feedback")
	}
	switch {
	case e.Note != "" && !feedback:
		inv.Add("note", "is for a suggestion's feedback only")
	case !isText(e.Note, maxNoteLen):
		inv.Add("note", "must be at most 256 bytes of printable UTF-8 without '|'")
	}
	return inv.Err()
}

// ValidateImport checks every item (ImportItem.ValidateAt, with paths
// "items[i]."...), and that no recipient appears twice.
func ValidateImport(items []ImportItem, now time.Time) error {
	inv := &arbiter.InvalidError{}
	seen := make(map[string]int, len(items))
	for i := range items {
		it := &items[i]
		name := "items[" + strconv.Itoa(i) + "]"
		it.validate(inv, name, now)
		if j, dup := seen[it.Profile.HCPID]; dup && it.Profile.HCPID != "" {
			inv.Add(name+".profile.hcp_id", "duplicates items["+strconv.Itoa(j)+"]")
		} else {
			seen[it.Profile.HCPID] = i
		}
	}
	return inv.Err()
}

// ValidateAt checks one import item with now as the clock. Paths are
// relative to the item, named as in the API: "profile.market",
// "consents[2].captured_at", "counters.sent.email". Consent records get the
// consent store's own checks (and its bound on capture times), so that no
// consent write can refuse an item after others were written.
func (it *ImportItem) ValidateAt(now time.Time) error {
	inv := &arbiter.InvalidError{}
	it.validate(inv, "", now)
	return inv.Err()
}

func (it *ImportItem) validate(inv *arbiter.InvalidError, name string, now time.Time) {
	it.Profile.validate(inv, join(name, "profile"))
	if it.Counters != nil {
		it.Counters.validate(inv, join(name, "counters"))
	}
	if len(it.Consent) > maxImportConsent {
		inv.Add(join(name, "consents"), "must have at most 1000 records")
	}
	if len(it.Touches) > maxImportTouches {
		inv.Add(join(name, "touches"), "must have at most 1000 touches")
	}
	for j := range it.Touches {
		validateTouch(inv, join(name, "touches["+strconv.Itoa(j)+"]"), &it.Touches[j], now)
	}
	for j, r := range it.Consent {
		if r.CapturedBy == "" {
			r.CapturedBy = it.CapturedBy
		}
		rname := join(name, "consents["+strconv.Itoa(j)+"]")
		r.Check(inv, rname)
		if strings.Contains(r.Address, "@") {
			inv.Add(rname+".address_ref", arbiter.AddressRefProblem)
		}
		if r.CapturedAt.After(now.Add(maxFuture)) {
			inv.Add(rname+".captured_at", "must not be in the future")
		}
	}
}

// isToken reports whether s is 1..max bytes of letters, digits, '_' and '-'
// (and '/' and '+' when path is set, for time zone names).
func isToken(s string, max int, path bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case path && (c == '/' || c == '+'):
		default:
			return false
		}
	}
	return true
}

// isDottedToken reports whether s is 1..64 bytes of letters, digits, '.',
// '_' and '-' (attribute names such as "rx.decile").
func isDottedToken(s string) bool {
	if len(s) == 0 || len(s) > maxAttrNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !isToken(s[i:i+1], 1, false) {
			return false
		}
	}
	return true
}

// isRef reports whether s is at most max bytes of printable ASCII other than
// '|' (empty is allowed: callers check presence).
func isRef(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '|' {
			return false
		}
	}
	return true
}

// isText reports whether s is at most max bytes of valid UTF-8 without
// control characters or '|' (empty is allowed).
func isText(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '|' || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// join is the path of field within name ("profile" and "market" give
// "profile.market"; an empty name gives "market").
func join(name, field string) string {
	if name == "" {
		return field
	}
	return name + "." + field
}

// maxImportTouches bounds the touches of one imported recipient.
const maxImportTouches = 1000

// validateTouch checks an imported touch: a past contact that happened.
func validateTouch(inv *arbiter.InvalidError, name string, t *contact.Touch, now time.Time) {
	if !t.Channel.Valid() {
		inv.Add(name+".channel", "must be a known channel")
	}
	if t.Purpose != arbiter.PurposeUnspecified && !t.Purpose.Valid() {
		inv.Add(name+".purpose", "must be a known purpose")
	}
	switch {
	case t.At.UnixMilli() <= 0:
		inv.Add(name+".at", "is required and must be after 1970-01-01")
	case t.At.After(now.Add(maxFuture)):
		inv.Add(name+".at", "must not be in the future")
	}
	if t.State != contact.Sent || t.ReservationID != "" || !t.ExpiresAt.IsZero() {
		inv.Add(name+".state", "an imported touch is a sent one, without a reservation")
	}
	for _, f := range []struct{ field, v string }{{"action_id", t.ActionID}, {"topic", t.Topic}, {"message_id", t.MessageID}} {
		if !isRef(f.v, maxRefLen) {
			inv.Add(name+"."+f.field, "must be at most 128 printable ASCII characters without '|'")
		}
	}
}
