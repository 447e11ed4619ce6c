package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// Journeys in storage. A recipient's progress in a journey is never stored:
// decisions derive it from the touch ledger and the recent events (package
// rules). What is stored:
//
//	<prefix>:{id}:p                 field j:<journey>  an operator's move of the recipient (MoveInJourney)
//	<prefix>:journey:<id>:members   zset  recipients sent one of the journey's steps, scored by
//	                                      the latest such send (ms); what ListDue and the KPIs read
//	<prefix>:journeys:paused        hash  paused journey -> "<principal>|<ms>"
//
// The move lives in the profile hash so that a decision reads it with the
// profile, in the same round trip, at no extra command.

func (s *Store) membersKey(journey string) string {
	return s.prefix + ":journey:" + journey + ":members"
}
func (s *Store) pausedKey() string { return s.prefix + ":journeys:paused" }

// moveScript writes an operator's move into an existing profile only: a
// move for an unknown recipient creates nothing.
var moveScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// MoveInJourney records an operator's move of recipient id in a journey:
// to the step with id step (due at once from at) or out of it (step ""),
// with the caller's principal. It replaces an earlier move in that
// journey. An unknown recipient is arbiter.ErrNotFound.
func (s *Store) MoveInJourney(ctx context.Context, id, journey, step string, at time.Time) error {
	if err := recipient.ValidID(id); err != nil {
		return fmt.Errorf("redisstore: move in journey: %w", arbiter.Invalid("recipient_id", err.Error()))
	}
	v := encodeOverride(recipient.JourneyOverride{Step: step, At: at, Principal: principalOf(ctx)})
	n, err := moveScript.Run(ctx, s.rdb, []string{s.key(id, suffixProfile)}, pJourney+journey, v).Int()
	if err != nil {
		return storageErr("move in journey", err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: move in journey: %w", arbiter.ErrNotFound)
	}
	return trailRecorded("the move", s.AppendTrail(ctx, OpMoveInJourney, journey, id+" to "+orExit(step)))
}

func orExit(step string) string {
	if step == "" {
		return "exit"
	}
	return step
}

// JourneyMember is a recipient to index as a member of a journey, scored
// by at.
type JourneyMember struct {
	Journey, ID string
	At          time.Time
}

// AddJourneyMember records that recipient id was sent a step of each of
// journeys at at: ListDue and the KPIs read the members. The score only
// moves forward (ZADD GT), so a replayed or late event changes nothing.
func (s *Store) AddJourneyMember(ctx context.Context, journeys []string, id string, at time.Time) error {
	ms := make([]JourneyMember, len(journeys))
	for i, j := range journeys {
		ms[i] = JourneyMember{Journey: j, ID: id, At: at}
	}
	return s.AddJourneyMembers(ctx, ms)
}

// AddJourneyMembers is AddJourneyMember for many at once, in one pipeline.
func (s *Store) AddJourneyMembers(ctx context.Context, ms []JourneyMember) error {
	if len(ms) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range ms {
			p.ZAddGT(ctx, s.membersKey(m.Journey), redis.Z{Score: float64(m.At.UnixMilli()), Member: m.ID})
		}
		return nil
	})
	if err != nil {
		return storageErr("add journey member", err)
	}
	return nil
}

// JourneyMembers calls fn with the members of journey last sent a step at
// or after since, in pages of at most page ids, until fn returns an error
// or they run out. It reads them in one command, a snapshot: scores that
// move meanwhile (a member's new event) skip or repeat no one. Members
// last sent a step more than keep before the store's clock are dropped
// first: no run of the journey can concern them any more (the caller's
// times never decide what is deleted).
func (s *Store) JourneyMembers(ctx context.Context, journey string, since time.Time, keep time.Duration, page int, fn func(ids []string) error) error {
	key := s.membersKey(journey)
	cutoff := s.now().Add(-keep).UnixMilli()
	if err := s.rdb.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(cutoff, 10)).Err(); err != nil {
		return storageErr("journey members", err)
	}
	ids, err := s.rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: strconv.FormatInt(since.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return storageErr("journey members", err)
	}
	for len(ids) > 0 {
		n := min(page, len(ids))
		if err := fn(ids[:n]); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// SetJourneyPaused pauses or resumes a journey for every replica, with the
// caller's principal, and announces it on the definitions channel so that
// replicas pick it up at once (their poll covers a lost announcement).
func (s *Store) SetJourneyPaused(ctx context.Context, journey string, paused bool) error {
	var err error
	if paused {
		err = s.rdb.HSet(ctx, s.pausedKey(), journey, principalOf(ctx)+"|"+strconv.FormatInt(s.now().UnixMilli(), 10)).Err()
	} else {
		err = s.rdb.HDel(ctx, s.pausedKey(), journey).Err()
	}
	if err != nil {
		return storageErr("pause journey", err)
	}
	_ = s.rdb.Publish(ctx, s.DefinitionsChannel(), "journeys").Err()
	op := OpResumeJourney
	if paused {
		op = OpPauseJourney
	}
	return trailRecorded("the "+op, s.AppendTrail(ctx, op, journey, ""))
}

// PausedJourneys returns the paused journeys' ids.
func (s *Store) PausedJourneys(ctx context.Context) (map[string]bool, error) {
	ids, err := s.rdb.HKeys(ctx, s.pausedKey()).Result()
	if err != nil {
		return nil, storageErr("paused journeys", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
