package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// The read plan: the per-recipient keys a decision reads, each with the
// command that reads it and the decoder that puts the reply into the
// recipient's State. The plain load (Load), the auto-pipeliner
// (pipeline.go) and the HCP cache (package hcpcache, through ReadKeys) all
// follow it, so a new per-recipient key that decisions need is one entry
// here (plus its suffix in keys.go), and a decision stays one round trip:
// every entry's command goes in the same pipeline. Keys of one recipient
// share a hash tag, so on Redis Cluster the pipeline goes to one node.
//
// TestOneRedisRoundTripPerDecide (cmd/arbiter) proves the round trip on a
// single Redis and on Cluster; TestReadPlan (plan_test.go) that every entry
// is read and decoded.

// planEntry is one key of the read plan.
type planEntry struct {
	suffix string
	// read queues the entry's command for key on p, as s is set.
	read func(s *Store, ctx context.Context, p redis.Pipeliner, key string) redis.Cmder
	// decode puts the entry's reply into st, with counters decayed as d
	// says. An error fails the load; an entry whose data may be unreadable
	// without failing the decision (consent: unknown means deny) records
	// that in st instead.
	decode func(cmd redis.Cmder, st *recipient.State, d *decoder) error
}

// decoder carries what decoding needs besides the replies.
type decoder struct {
	// at is the time counters are decayed to; zero: as stored.
	at       time.Time
	halfLife time.Duration
	// recentMaxAge drops recent events older than at minus it.
	recentMaxAge time.Duration
}

func hgetall(_ *Store, ctx context.Context, p redis.Pipeliner, key string) redis.Cmder {
	return p.HGetAll(ctx, key)
}

// readPlan is the plan. The profile comes first: it alone decides whether
// the recipient exists.
var readPlan = [...]planEntry{
	{suffix: suffixProfile, read: hgetall, decode: decodeProfileEntry},
	{suffix: suffixConsent, read: hgetall, decode: decodeConsentEntry},
	{suffix: suffixTouches, read: lrangeAll, decode: decodeTouchesEntry},
	{suffix: suffixHistory, read: lrangeRecent, decode: decodeRecentEntry},
}

// planSize is the number of commands one load sends.
const planSize = len(readPlan)

func decodeProfileEntry(cmd redis.Cmder, st *recipient.State, d *decoder) error {
	fields := cmd.(*redis.MapStringStringCmd).Val()
	if len(fields) == 0 {
		return arbiter.ErrNotFound
	}
	return decodeProfile(fields, d, &st.Profile, &st.Counters, &st.JourneyOverrides, &st.Dismissals)
}

func decodeConsentEntry(cmd redis.Cmder, st *recipient.State, _ *decoder) error {
	cs, err := decodeConsent(cmd.(*redis.MapStringStringCmd).Val())
	if err != nil {
		st.ConsentErr = err // the zero State: not complete, denies everything
		return nil
	}
	st.Consent = cs
	return nil
}

// queuePlan queues every entry's command for recipient id on p, into cmds.
func (s *Store) queuePlan(ctx context.Context, p redis.Pipeliner, id string, cmds *[planSize]redis.Cmder) {
	for i := range readPlan {
		cmds[i] = readPlan[i].read(s, ctx, p, s.key(id, readPlan[i].suffix))
	}
}

// decodePlan builds recipient id's State from the replies of queuePlan's
// commands. A failed command fails the load (classified); so does a
// decoder's error.
func (s *Store) decodePlan(id string, cmds *[planSize]redis.Cmder, at time.Time) (*recipient.State, error) {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return nil, storageErr("load", err)
		}
	}
	st := &recipient.State{}
	st.Profile.HCPID = id
	d := decoder{at: at, halfLife: s.halfLife, recentMaxAge: s.RecentEvents().MaxAge}
	for i := range readPlan {
		if err := readPlan[i].decode(cmds[i], st, &d); err != nil {
			return nil, fmt.Errorf("redisstore: load: %w", err)
		}
	}
	return st, nil
}

// ReadKeys describes the keys a decision reads, for a cache that must hear
// of every write to them: every such key starts with keyPrefix followed by
// the recipient id, then "}" and one of suffixes.
func (s *Store) ReadKeys() (keyPrefix string, suffixes []string) {
	suffixes = make([]string, len(readPlan))
	for i := range readPlan {
		suffixes[i] = readPlan[i].suffix
	}
	return s.prefix + ":{", suffixes
}
