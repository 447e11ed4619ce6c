package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
)

// Limits bound what one request may ask for.
type Limits struct {
	// MaxLimit is the most recommendations one Decide may ask for.
	MaxLimit int
	// MaxCandidates is the most candidate ids one Decide may name.
	MaxCandidates int
	// MaxHistory is the most ledger entries one history page may return.
	MaxHistory int
	// MaxBatch is the most HCPs one DecideBatch may name.
	MaxBatch int
}

// DefaultLimits returns the limits used when none are configured.
func DefaultLimits() Limits {
	return Limits{MaxLimit: 50, MaxCandidates: 1000, MaxHistory: 1000, MaxBatch: 1000}
}

const (
	defaultDecideLimit  = 3
	defaultHistoryLimit = 100
	maxIDLength         = 128
)

// checker accumulates field violations.
type checker struct{ arbiter.InvalidError }

func (c *checker) hcpID(field, id string) {
	if badUTF8(id) {
		c.Add(field, "must be valid UTF-8")
		return
	}
	if err := recipient.ValidID(id); err != nil {
		c.Add(field, err.Error())
	}
}

// id checks an identifier: required or not, at most maxIDLength bytes,
// valid UTF-8, no control characters.
func (c *checker) id(field, v string, required bool) {
	if problem := idProblem(v, required); problem != "" {
		c.Add(field, problem)
	}
}

// idProblem says what is wrong with an identifier, or "" when nothing is.
// It does not allocate for a valid one, so it can run on every candidate.
func idProblem(v string, required bool) string {
	switch {
	case v == "" && required:
		return "required"
	case len(v) > maxIDLength:
		return fmt.Sprintf("must be at most %d bytes, got %d", maxIDLength, len(v))
	}
	// One pass; ids are nearly always printable ASCII.
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return "must not contain control characters"
		} else if c >= utf8.RuneSelf {
			if badUTF8(v) {
				return "must be valid UTF-8"
			}
			if strings.ContainsFunc(v, unicode.IsControl) {
				return "must not contain control characters"
			}
			return ""
		}
	}
	return ""
}

func (c *checker) channel(field string, ch nbapb.Channel) {
	if !fromChannel(ch).Valid() {
		c.Add(field, "must be a known channel other than CHANNEL_UNSPECIFIED")
	}
}

// badUTF8 reports invalid UTF-8, including the U+FFFD that the codec puts
// in place of invalid bytes.
func badUTF8(s string) bool {
	return !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError)
}

// decideOptions are the fields a Decide and a DecideBatch request share.
type decideOptions interface {
	GetLimit() int32
	GetCandidates() []string
	GetCandidateSet() string
	GetContext() *nbapb.DecisionContext
	GetExplain() bool
}

func (s *Server) validateDecide(req *nbapb.DecideRequest) error {
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	s.checkDecideOptions(&c, req)
	return c.Err()
}

func (s *Server) validateDecideBatch(req *nbapb.DecideBatchRequest) error {
	var c checker
	if n := len(req.GetHcpIds()); n == 0 || n > s.limits.MaxBatch {
		c.Add("hcp_ids", fmt.Sprintf("must name 1 to %d HCPs, got %d", s.limits.MaxBatch, n))
	} else {
		for i, id := range req.GetHcpIds() {
			c.hcpID(fmt.Sprintf("hcp_ids[%d]", i), id)
		}
	}
	s.checkDecideOptions(&c, req)
	return c.Err()
}

func (s *Server) checkDecideOptions(c *checker, req decideOptions) {
	if l := req.GetLimit(); l < 0 || int(l) > s.limits.MaxLimit {
		c.Add("limit", fmt.Sprintf("must be between 1 and %d (0 means %d), got %d", s.limits.MaxLimit, defaultDecideLimit, l))
	}
	if n := len(req.GetCandidates()); n > s.limits.MaxCandidates {
		c.Add("candidates", fmt.Sprintf("at most %d candidates, got %d", s.limits.MaxCandidates, n))
	} else {
		for i, id := range req.GetCandidates() {
			if problem := idProblem(id, true); problem != "" {
				c.Add(fmt.Sprintf("candidates[%d]", i), problem)
			}
		}
	}
	// Whether the set exists, and is not given with ids, is the engine's
	// to say (decision.Engine.resolve); here only its shape.
	if set := req.GetCandidateSet(); set != "" {
		c.id("candidate_set", set, true)
	}
	if ctx := req.GetContext(); ctx != nil {
		if _, ok := nbapb.CallerKind_name[int32(ctx.GetCaller())]; !ok {
			c.Add("context.caller", "unknown caller kind")
		}
		if t := ctx.GetDecisionTime(); t != nil {
			now := time.Now()
			switch {
			case t.CheckValid() != nil:
				c.Add("context.decision_time", "not a valid timestamp")
			case t.AsTime().Before(now.Add(-decision.MaxPastPlan)):
				// The past is WhyNot's and the decision log's: a decision
				// is made with what the server knows now.
				c.Add("context.decision_time", "must not be more than 5 minutes in the past; for the past, ask WhyNot with a time or replay a logged decision")
			case t.AsTime().After(now.Add(decision.MaxFuturePlan)):
				c.Add("context.decision_time", "must be within a year")
			}
		}
		if len(ctx.GetChannels()) > arbiter.NumChannels {
			c.Add("context.channels", "too many channels")
		} else {
			for i, ch := range ctx.GetChannels() {
				c.channel(fmt.Sprintf("context.channels[%d]", i), ch)
			}
		}
	}
}

// addresses checks a profile's address list: a known channel each, and
// each channel once (the domain keeps one address per channel).
func (c *checker) addresses(field string, addrs []*nbapb.ChannelAddress) {
	seen := map[nbapb.Channel]int{}
	for i, a := range addrs {
		name := field + "[" + strconv.Itoa(i) + "]"
		c.channel(name+".channel", a.GetChannel())
		if j, dup := seen[a.GetChannel()]; dup {
			c.Add(name+".channel", "repeats the channel of "+field+"["+strconv.Itoa(j)+"]")
		}
		seen[a.GetChannel()] = i
	}
}

// addressPaths rewrites the domain's violations of an address,
// "...addresses.<channel>", into the request's path,
// "...addresses[i].address_ref", i being that channel's entry in addrs.
func addressPaths(err error, addrs []*nbapb.ChannelAddress) error {
	var inv *arbiter.InvalidError
	if !errors.As(err, &inv) {
		return err
	}
	out := &arbiter.InvalidError{}
	for _, v := range inv.Violations {
		if head, ch, ok := strings.Cut(v.Field, "addresses."); ok && !strings.Contains(ch, ".") {
			for i, a := range addrs {
				if fromChannel(a.GetChannel()).String() == ch {
					v.Field = head + "addresses[" + strconv.Itoa(i) + "].address_ref"
				}
			}
		}
		out.Add(v.Field, v.Description)
	}
	return out
}
