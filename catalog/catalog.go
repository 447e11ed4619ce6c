package catalog

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/arbiter-nba/arbiter"
)

// ApprovalStatus is the MLR review state of a piece of content.
type ApprovalStatus uint8

const (
	ApprovalMissing ApprovalStatus = iota
	ApprovalPending
	ApprovalApproved
	ApprovalWithdrawn
	ApprovalRejected
)

var approvalNames = map[string]ApprovalStatus{
	"pending": ApprovalPending, "approved": ApprovalApproved,
	"withdrawn": ApprovalWithdrawn, "rejected": ApprovalRejected,
}

func (s ApprovalStatus) String() string {
	for name, v := range approvalNames {
		if v == s {
			return name
		}
	}
	return "missing"
}

// Approval is the MLR approval of an action's content.
type Approval struct {
	Status ApprovalStatus
	// ID is the approval's reference in the MLR system (e.g. a Vault
	// PromoMats document number), quoted back to auditors.
	ID string
	// ValidFrom and ValidUntil bound the approval: valid at t when
	// ValidFrom <= t < ValidUntil. A zero ValidFrom means "from approval".
	ValidFrom  time.Time
	ValidUntil time.Time
	// Markets the approval covers. Content is approved per market.
	Markets []string
}

// Action is something Arbiter can recommend.
type Action struct {
	ID        string
	Channel   arbiter.Channel
	ContentID string // empty for actions without content (a visit)
	Topic     string
	Purpose   arbiter.Purpose
	Audience  arbiter.Audience
	// Specialties the action is for; empty: any.
	Specialties []string
	// Markets the action may be used in; empty: any.
	Markets []string
	// Value is the business value of the action succeeding, > 0.
	Value float64
	// Approval is the content's MLR approval; ignored when ContentID is empty.
	Approval Approval
	// TopicIndex is the index of Topic in Catalog.Topics (-1: no topic).
	TopicIndex int
	// Index is the action's index in Catalog.Actions.
	Index int32
	// Critical marks a service message that must reach the recipient
	// ("appointment cancelled"): it bypasses the contact policy's caps,
	// gaps and quiet hours, never consent, and still counts as a touch.
	// Only a service-purpose action can be critical.
	Critical bool
	// Format and Depth tag the content for rules: format "video",
	// "article" or "visual"; depth "awareness", "efficacy", "trial_data" or
	// "advanced". Empty: not tagged.
	Format string
	Depth  string
	// Title is how a rep tool names the action in a suggestion ("Email:
	// Cardiolex efficacy"); empty: made from the channel and the topic
	// (decision.Title).
	Title string
}

// maxTitleLen bounds an action's title, in bytes.
const maxTitleLen = 120

// Formats and Depths are the content tags an action may carry.
var (
	Formats = []string{"video", "article", "visual"}
	Depths  = []string{"awareness", "efficacy", "trial_data", "advanced"}
)

// Catalog is a parsed, validated set of actions plus the contact policy.
type Catalog struct {
	Version string
	Actions []Action
	// Topics lists the distinct topics of all actions; Action.TopicIndex
	// points into it.
	Topics []string
	// MinGap is the contact policy: the least time between two contacts
	// on a channel (zero: no gap enforced).
	MinGap [arbiter.NumChannels]time.Duration
	// sets are named candidate sets (a campaign, a channel's programme): a
	// Decide may name one instead of listing its action ids. Each holds
	// catalog indexes, in the file's order, without repeats.
	sets map[string][]int32

	byID map[string]int
}

// Set returns the actions of the named candidate set.
func (c *Catalog) Set(name string) ([]int32, bool) {
	s, ok := c.sets[name]
	return s, ok
}

// Lookup returns the index of the action with the given id.
func (c *Catalog) Lookup(id string) (int, bool) {
	i, ok := c.byID[id]
	return i, ok
}

//go:embed demo_catalog.json
var demoCatalog []byte

// DemoJSON returns the demo catalog's file, as Demo parses it.
func DemoJSON() []byte { return append([]byte(nil), demoCatalog...) }

// Demo returns the catalog that ships with Arbiter for the demo population.
func Demo() *Catalog {
	c, err := Parse(demoCatalog)
	if err != nil {
		panic("catalog: embedded demo catalog is invalid: " + err.Error())
	}
	return c
}

type fileApproval struct {
	Status     string    `json:"status"`
	ID         string    `json:"id"`
	ValidFrom  time.Time `json:"valid_from"`
	ValidUntil time.Time `json:"valid_until"`
	Markets    []string  `json:"markets"`
}

type fileAction struct {
	ID          string        `json:"id"`
	Channel     string        `json:"channel"`
	ContentID   string        `json:"content_id"`
	Topic       string        `json:"topic"`
	Purpose     string        `json:"purpose"`
	Audience    string        `json:"audience"`
	Specialties []string      `json:"specialties"`
	Markets     []string      `json:"markets"`
	Value       float64       `json:"value"`
	Approval    *fileApproval `json:"approval"`
	Critical    bool          `json:"critical"`
	Format      string        `json:"format"`
	Depth       string        `json:"depth"`
	Title       string        `json:"title"`
}

type file struct {
	Version       string            `json:"version"`
	ContactPolicy map[string]string `json:"min_gap"`
	Actions       []fileAction      `json:"actions"`
	// CandidateSets maps a set's name to its action ids.
	CandidateSets map[string][]string `json:"candidate_sets"`
}

// Parse reads a catalog from JSON and validates it. Every problem found is
// reported, each prefixed with where it is ("actions[3] (email-efficacy): ...").
func Parse(data []byte) (*Catalog, error) {
	var f file
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("catalog: parse: %w", err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := &Catalog{Version: f.Version, byID: make(map[string]int, len(f.Actions))}
	if f.Version == "" {
		bad("version: required")
	}
	if len(f.Actions) == 0 {
		bad("actions: at least one action is required")
	}
	for name, gap := range f.ContactPolicy {
		ch, ok := arbiter.ParseChannel(name)
		if !ok {
			bad("min_gap: unknown channel %q", name)
			continue
		}
		d, err := time.ParseDuration(gap)
		if err != nil || d < 0 {
			bad("min_gap.%s: %q is not a non-negative duration", name, gap)
			continue
		}
		c.MinGap[ch] = d
	}
	topics := map[string]int{}
	for i, fa := range f.Actions {
		where := fmt.Sprintf("actions[%d] (%s)", i, fa.ID)
		a := Action{
			ID: fa.ID, ContentID: fa.ContentID, Topic: fa.Topic,
			Specialties: fa.Specialties, Markets: fa.Markets, Value: fa.Value, TopicIndex: -1,
			Index: int32(i), Critical: fa.Critical, Format: fa.Format, Depth: fa.Depth, Title: fa.Title,
		}
		if !validTitle(fa.Title) {
			bad("%s: title must be at most %d bytes of printable UTF-8", where, maxTitleLen)
		}
		if fa.Format != "" && !slices.Contains(Formats, fa.Format) {
			bad("%s: format %q is not one of %s", where, fa.Format, strings.Join(Formats, ", "))
		}
		if fa.Depth != "" && !slices.Contains(Depths, fa.Depth) {
			bad("%s: depth %q is not one of %s", where, fa.Depth, strings.Join(Depths, ", "))
		}
		if fa.ID == "" || len(fa.ID) > 64 {
			bad("%s: id must be 1 to 64 characters", where)
		} else if _, dup := c.byID[fa.ID]; dup {
			bad("%s: duplicate id", where)
		}
		var ok bool
		if a.Channel, ok = arbiter.ParseChannel(fa.Channel); !ok {
			bad("%s: unknown channel %q", where, fa.Channel)
		}
		if a.Purpose, ok = arbiter.ParsePurpose(fa.Purpose); !ok {
			bad("%s: unknown purpose %q", where, fa.Purpose)
		}
		if a.Audience, ok = arbiter.ParseAudience(fa.Audience); !ok {
			bad("%s: unknown audience %q", where, fa.Audience)
		}
		if fa.Critical && a.Purpose != arbiter.Service {
			bad("%s: only a service action can be critical", where)
		}
		if !(fa.Value > 0) || fa.Value > 1e6 {
			bad("%s: value must be > 0 and <= 1e6, got %v", where, fa.Value)
		}
		if fa.ContentID != "" {
			if fa.Approval == nil {
				bad("%s: content %q needs an approval block (use status \"pending\" if not yet approved)", where, fa.ContentID)
			} else {
				a.Approval = Approval{ID: fa.Approval.ID, ValidFrom: fa.Approval.ValidFrom,
					ValidUntil: fa.Approval.ValidUntil, Markets: fa.Approval.Markets}
				if a.Approval.Status, ok = approvalNames[fa.Approval.Status]; !ok {
					bad("%s: unknown approval status %q", where, fa.Approval.Status)
				}
				if a.Approval.Status == ApprovalApproved {
					if a.Approval.ValidUntil.IsZero() {
						bad("%s: an approved content needs valid_until", where)
					} else if !a.Approval.ValidUntil.After(a.Approval.ValidFrom) {
						bad("%s: valid_until must be after valid_from", where)
					}
					if len(a.Approval.Markets) == 0 {
						bad("%s: an approved content needs the markets it is approved for", where)
					}
				}
			}
		} else if fa.Approval != nil {
			bad("%s: approval given but no content_id", where)
		}
		if fa.Topic != "" {
			idx, seen := topics[fa.Topic]
			if !seen {
				idx = len(c.Topics)
				topics[fa.Topic] = idx
				c.Topics = append(c.Topics, fa.Topic)
			}
			a.TopicIndex = idx
		}
		c.byID[fa.ID] = len(c.Actions)
		c.Actions = append(c.Actions, a)
	}
	for name, ids := range f.CandidateSets {
		where := fmt.Sprintf("candidate_sets[%q]", name)
		if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			bad("%s: a name must be 1 to 64 characters, without spaces or control characters", where)
		}
		if len(ids) == 0 {
			bad("%s: at least one action id is required", where)
		}
		set := make([]int32, 0, len(ids))
		seen := make(map[int]bool, len(ids))
		for i, id := range ids {
			ai, ok := c.byID[id]
			switch {
			case !ok:
				bad("%s[%d]: unknown action id %q", where, i, id)
			case seen[ai]:
				bad("%s[%d]: duplicate action id %q", where, i, id)
			default:
				seen[ai] = true
				set = append(set, int32(ai))
			}
		}
		if c.sets == nil {
			c.sets = make(map[string][]int32, len(f.CandidateSets))
		}
		c.sets[name] = set
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("catalog: invalid: %w", errors.Join(errs...))
	}
	return c, nil
}

// Ineligibility says why an action may not be used for a recipient.
type Ineligibility uint8

const (
	Eligible Ineligibility = iota
	// ContentNotApproved: MLR approval missing, pending, rejected,
	// withdrawn, or not for the recipient's market.
	ContentNotApproved
	// ContentExpired: the approval is not valid at the decision time
	// (expired, or not yet valid).
	ContentExpired
	// WrongAudience, WrongSpecialty, WrongMarket: the action is not for
	// this recipient.
	WrongAudience
	WrongSpecialty
	WrongMarket
)

// Recipient is what eligibility needs to know about the recipient.
type Recipient struct {
	Market    string
	Specialty string
	Audience  arbiter.Audience
}

// Check reports whether a may be used for r at time t.
// It does not allocate.
func (a *Action) Check(r Recipient, t time.Time) Ineligibility {
	if a.Audience != r.Audience {
		return WrongAudience
	}
	if len(a.Markets) > 0 && !slices.Contains(a.Markets, r.Market) {
		return WrongMarket
	}
	if len(a.Specialties) > 0 && !slices.Contains(a.Specialties, r.Specialty) {
		return WrongSpecialty
	}
	if a.ContentID == "" {
		return Eligible
	}
	ap := &a.Approval
	if ap.Status != ApprovalApproved || !slices.Contains(ap.Markets, r.Market) {
		return ContentNotApproved
	}
	if t.Before(ap.ValidFrom) || !t.Before(ap.ValidUntil) {
		return ContentExpired
	}
	return Eligible
}

// Explain returns a one-line detail for an ineligibility, for auditors and
// reps. It never contains personal data.
func (a *Action) Explain(why Ineligibility, r Recipient) string {
	ap := &a.Approval
	switch why {
	case ContentNotApproved:
		if ap.Status == ApprovalApproved {
			return fmt.Sprintf("content %s is not MLR-approved for market %s", a.ContentID, r.Market)
		}
		return fmt.Sprintf("content %s MLR approval is %s", a.ContentID, ap.Status)
	case ContentExpired:
		return fmt.Sprintf("content %s MLR approval %s is valid from %s until %s", a.ContentID, ap.ID,
			day(ap.ValidFrom), day(ap.ValidUntil))
	case WrongAudience:
		return fmt.Sprintf("action is for %s recipients", a.Audience)
	case WrongSpecialty:
		return "action is for " + strings.Join(a.Specialties, ", ")
	case WrongMarket:
		return "action is for markets " + strings.Join(a.Markets, ", ")
	}
	return ""
}

func day(t time.Time) string {
	if t.IsZero() {
		return "approval"
	}
	return t.UTC().Format("2006-01-02")
}

// validTitle reports whether t is at most maxTitleLen bytes of valid
// UTF-8 without control characters (empty is allowed).
func validTitle(t string) bool {
	if len(t) > maxTitleLen || !utf8.ValidString(t) {
		return false
	}
	for _, r := range t {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
