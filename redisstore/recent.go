package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// RecentEvents is how many of the history list's newest entries a decision
// reads (recipient.State.Recent), and how old they may be: what rules
// react to. The definitions set it (SetRecentEvents).
type RecentEvents struct {
	Count  int
	MaxAge time.Duration
}

// DefaultRecentEvents are the bounds until SetRecentEvents.
var DefaultRecentEvents = RecentEvents{Count: 20, MaxAge: 90 * 24 * time.Hour}

// MaxRecentEvents is the most a decision can read: the history list's
// length.
const MaxRecentEvents = historyLen

// SetRecentEvents sets the recent events decisions read (the rules of the
// definitions in use); a count out of 1..MaxRecentEvents or an age that is
// not positive keeps the defaults.
func (s *Store) SetRecentEvents(r RecentEvents) {
	if r.Count < 1 || r.Count > MaxRecentEvents || r.MaxAge <= 0 {
		r = DefaultRecentEvents
	}
	s.recent.Store(&r)
}

// RecentEvents returns what SetRecentEvents set.
func (s *Store) RecentEvents() RecentEvents {
	if r := s.recent.Load(); r != nil {
		return *r
	}
	return DefaultRecentEvents
}

func lrangeRecent(s *Store, ctx context.Context, p redis.Pipeliner, key string) redis.Cmder {
	return p.LRange(ctx, key, 0, int64(s.RecentEvents().Count)-1)
}

// decodeRecentEntry decodes the history list's newest entries (see
// historyEntry), newest first by the time they occurred. An entry that
// does not decode, or is older than the maximum age, is skipped: rules
// then see no such event. The window is the newest by arrival: a backfill
// of old events can push recent ones out of it.
func decodeRecentEntry(cmd redis.Cmder, st *recipient.State, d *decoder) error {
	raw := cmd.(*redis.StringSliceCmd).Val()
	if len(raw) == 0 {
		return nil
	}
	var oldest time.Time
	if !d.at.IsZero() && d.recentMaxAge > 0 {
		oldest = d.at.Add(-d.recentMaxAge)
	}
	out := make([]recipient.RecentEvent, 0, len(raw))
	for _, s := range raw {
		if e, ok := decodeHistory(s); ok && !e.At.Before(oldest) {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b recipient.RecentEvent) int { return b.At.Compare(a.At) })
	st.Recent = out
	return nil
}

// decodeHistory decodes one history entry (historyEntry):
// "<occurred ms>|<type>|<channel>|<action id>|<topic>[|<principal>[|<purpose>[|<dismissal>|<note>]]]".
// A suggestion's feedback (dismissal, note) is kept in the history only:
// decisions read dismissals from the profile (pDismissal).
func decodeHistory(s string) (recipient.RecentEvent, bool) {
	var e recipient.RecentEvent
	ms, rest, ok1 := strings.Cut(s, "|")
	typ, rest, ok2 := strings.Cut(rest, "|")
	ch, rest, ok3 := strings.Cut(rest, "|")
	action, rest, ok4 := strings.Cut(rest, "|")
	topic, rest, _ := strings.Cut(rest, "|")
	at, err := strconv.ParseInt(ms, 10, 64)
	if !ok1 || !ok2 || !ok3 || !ok4 || err != nil {
		return e, false
	}
	// The principal is escaped (no '|'); the purpose follows it.
	if _, tail, ok := strings.Cut(rest, "|"); ok {
		if purpose, _, _ := strings.Cut(tail, "|"); purpose != "" {
			pu, ok := arbiter.ParsePurpose(purpose)
			if !ok {
				return e, false
			}
			e.Purpose = pu
		}
	}
	var ok bool
	if e.Type, ok = arbiter.ParseEventType(typ); !ok {
		return e, false
	}
	if e.Channel, ok = arbiter.ParseChannel(ch); !ok {
		return e, false
	}
	e.At, e.ActionID, e.Topic = msTime(at), action, topic
	return e, true
}
