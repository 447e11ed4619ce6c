package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// recentEvents is how many of the history list's newest entries a decision
// reads (recipient.State.Recent): what rules react to.
const recentEvents = 20

func lrangeRecent(ctx context.Context, p redis.Pipeliner, key string) redis.Cmder {
	return p.LRange(ctx, key, 0, recentEvents-1)
}

// decodeRecentEntry decodes the history list's newest entries (see
// historyEntry), newest first by the time they occurred. An entry that
// does not decode is skipped: rules then see no such event. The window is
// the newest 20 by arrival: a backfill of old events can push recent ones
// out of it (a known limit: the configurable window and age are
// still to come).
func decodeRecentEntry(cmd redis.Cmder, st *recipient.State, _ *decoder) error {
	raw := cmd.(*redis.StringSliceCmd).Val()
	if len(raw) == 0 {
		return nil
	}
	out := make([]recipient.RecentEvent, 0, len(raw))
	for _, s := range raw {
		if e, ok := decodeHistory(s); ok {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b recipient.RecentEvent) int { return b.At.Compare(a.At) })
	st.Recent = out
	return nil
}

// decodeHistory decodes one history entry (historyEntry):
// "<occurred ms>|<type>|<channel>|<action id>|<topic>[|<principal>[|<purpose>]]".
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
	if _, purpose, ok := strings.Cut(rest, "|"); ok && purpose != "" {
		pu, ok := arbiter.ParsePurpose(purpose)
		if !ok {
			return e, false
		}
		e.Purpose = pu
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
