package redisstore

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The territory index: the recipients of each sales territory, so that a
// rep tool's suggestions (ListSuggestions) read a territory's recipients
// without scanning every profile.
//
//	<prefix>:terr:{<territory>}   zset   the recipients whose profile names the territory, each
//	                                     scored 0, so that they sort by id: TerritoryPage reads a
//	                                     page with ZRANGEBYLEX from where the last one ended
//
// Profile writes keep it (UpsertProfile, Import: territoryWrite), Migrate
// builds it for profiles written before it existed, Erase takes the
// recipient out. A territory's set lives in the territory's Cluster slot
// and the profile in the recipient's, so no script can write both: the
// index is written around the profile write instead, in an order that
// never leaves a recipient out of a territory its profile names once the
// writes are done:
//
//  1. before the profile write, the recipient joins its new territories;
//  2. the profile write (put_profile.lua) returns the territories the
//     profile named before;
//  3. when they changed, the recipient leaves the ones it no longer has
//     and joins its new ones again (a concurrent write, or Migrate's
//     clean-up, may have taken it out between 1 and 3); when it left
//     one, the profile's territories are read again and the recipient
//     joins those (a concurrent write that named the territory again
//     ran its step 3 before this one's removal).
//
// So the index may hold a recipient its profile no longer names (a write
// that stopped between 2 and 3, or two writes racing): TerritoryPage
// reads each page's profiles and leaves those out, and the decisions of
// the suggestions are scoped to the territory as well. Migrate removes
// them.

// territoryKey is territory t's set of recipients.
func (s *Store) territoryKey(t string) string { return s.prefix + ":terr:{" + t + "}" }

// territoryWrite is one profile write, for the territory index: the
// recipient, the territories its profile named before (the stored
// comma-separated field, "" for none) and the ones it names now.
type territoryWrite struct {
	id  string
	old string
	new []string
}

// splitTerritories splits the profile's territories field.
func splitTerritories(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// changed reports whether the write changes the recipient's territories.
func (w *territoryWrite) changed() bool {
	old := splitTerritories(w.old)
	for _, t := range old {
		if !slices.Contains(w.new, t) {
			return true
		}
	}
	for _, t := range w.new {
		if !slices.Contains(old, t) {
			return true
		}
	}
	return false
}

// enterTerritories is step 1: each write's recipient joins its new
// territories, in one pipeline.
func (s *Store) enterTerritories(ctx context.Context, ws []territoryWrite) error {
	pipe := s.rdb.Pipeline()
	for i := range ws {
		for _, t := range ws[i].new {
			pipe.ZAdd(ctx, s.territoryKey(t), redis.Z{Member: ws[i].id})
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	_, err := pipe.Exec(ctx)
	return err
}

// settleTerritories is step 3, for the writes that changed territories:
// one pipeline, and when a recipient left a territory, one more to read
// the profiles again and one to join what they name.
func (s *Store) settleTerritories(ctx context.Context, ws []territoryWrite) error {
	pipe := s.rdb.Pipeline()
	var again []string
	for i := range ws {
		w := &ws[i]
		if !w.changed() {
			continue
		}
		left := false
		for _, t := range splitTerritories(w.old) {
			if !slices.Contains(w.new, t) {
				pipe.ZRem(ctx, s.territoryKey(t), w.id)
				left = true
			}
		}
		for _, t := range w.new {
			pipe.ZAdd(ctx, s.territoryKey(t), redis.Z{Member: w.id})
		}
		if left {
			again = append(again, w.id)
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	_, err := s.rejoinTerritories(ctx, again)
	return err
}

// rejoinTerritories reads the territories the profiles of ids name now
// and puts each recipient in them. It returns how many entries it added
// (a recipient that was in a territory already adds none).
func (s *Store) rejoinTerritories(ctx context.Context, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, s.key(id, suffixProfile), fTerritories)
	}
	if err := execIgnoringNil(ctx, pipe, cmds); err != nil {
		return 0, err
	}
	pipe = s.rdb.Pipeline()
	var adds []*redis.IntCmd
	for i, c := range cmds {
		for _, t := range splitTerritories(c.Val()) {
			adds = append(adds, pipe.ZAdd(ctx, s.territoryKey(t), redis.Z{Member: ids[i]}))
		}
	}
	if pipe.Len() == 0 {
		return 0, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	n := 0
	for _, a := range adds {
		n += int(a.Val())
	}
	return n, nil
}

// TerritoryMember is a recipient of a territory, with the time zone its
// profile names ("" for none).
type TerritoryMember struct {
	ID       string
	TimeZone string
}

// TerritoryPage reads the next page of the recipients of any of
// territories: up to n ids of the index, in id order, after after (""
// from the first). It returns those whose profile names one of the
// territories now (the index may hold a few it no longer does), with
// their time zones, and next, the last id read, from which the following
// page starts: "" when this page was the last. Two round trips (on Redis
// Cluster, pipelines per node): the index, then the page's profiles.
func (s *Store) TerritoryPage(ctx context.Context, territories []string, after string, n int) (members []TerritoryMember, next string, err error) {
	if n < 1 || len(territories) == 0 {
		return nil, "", nil
	}
	from := "-"
	if after != "" {
		from = "(" + after
	}
	pipe := s.rdb.Pipeline()
	ranges := make([]*redis.StringSliceCmd, len(territories))
	for i, t := range territories {
		ranges[i] = pipe.ZRangeByLex(ctx, s.territoryKey(t), &redis.ZRangeBy{Min: from, Max: "+", Count: int64(n + 1)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, "", storageErr("territory page", err)
	}
	var ids []string
	for _, r := range ranges {
		ids = append(ids, r.Val()...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > n {
		ids = ids[:n]
		next = ids[n-1]
	}
	if len(ids) == 0 {
		return nil, "", nil
	}
	pipe = s.rdb.Pipeline()
	profiles := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		profiles[i] = pipe.HMGet(ctx, s.key(id, suffixProfile), fTerritories, fTimeZone)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, "", storageErr("territory page", err)
	}
	for i, c := range profiles {
		v := c.Val()
		terr, _ := v[0].(string)
		tz, _ := v[1].(string)
		if slices.ContainsFunc(splitTerritories(terr), func(t string) bool { return slices.Contains(territories, t) }) {
			members = append(members, TerritoryMember{ID: ids[i], TimeZone: tz})
		}
	}
	return members, next, nil
}

// indexTerritories adds the recipients of ids to the territories their
// profiles name (Migrate), in two pipelines, and returns how many entries
// it added.
func (s *Store) indexTerritories(ctx context.Context, ids []string) (int, error) {
	return s.rejoinTerritories(ctx, ids)
}

// pruneTerritories takes out of every territory's set the recipients
// whose profile does not name it (gone, moved, erased), on the single
// Redis or every master: each is removed, then its profile read again and
// put back if a write named the territory meanwhile. It returns how many
// were removed for good.
func (s *Store) pruneTerritories(ctx context.Context) (int, error) {
	removed := 0
	match := globEscape(s.prefix) + ":terr:{*}"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 100).Iterator()
		for it.Next(ctx) {
			key := it.Val()
			t := strings.TrimSuffix(strings.TrimPrefix(key, s.prefix+":terr:{"), "}")
			n, err := s.pruneTerritory(ctx, t)
			if err != nil {
				return err
			}
			removed += n
		}
		return it.Err()
	}
	err := forEachNode(ctx, s.rdb, scan)
	return removed, err
}

// pruneTerritory is pruneTerritories for one territory, a page of 500
// members at a time.
func (s *Store) pruneTerritory(ctx context.Context, t string) (int, error) {
	key := s.territoryKey(t)
	removed := 0
	after := "-"
	for {
		ids, err := s.rdb.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: after, Max: "+", Count: 500}).Result()
		if err != nil || len(ids) == 0 {
			return removed, err
		}
		after = "(" + ids[len(ids)-1]
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.HGet(ctx, s.key(id, suffixProfile), fTerritories)
		}
		if err := execIgnoringNil(ctx, pipe, cmds[:len(ids)]); err != nil {
			return removed, err
		}
		var stale []string
		for i, c := range cmds {
			if !slices.Contains(splitTerritories(c.Val()), t) {
				stale = append(stale, ids[i])
			}
		}
		if len(stale) == 0 {
			continue
		}
		if err := s.rdb.ZRem(ctx, key, toAny(stale)...).Err(); err != nil {
			return removed, err
		}
		// A write may have named the territory since it was read: the
		// recipient is put back (the write's own step 3 does too, if it
		// comes later).
		pipe = s.rdb.Pipeline()
		for i, id := range stale {
			cmds[i] = pipe.HGet(ctx, s.key(id, suffixProfile), fTerritories)
		}
		if err := execIgnoringNil(ctx, pipe, cmds[:len(stale)]); err != nil {
			return removed, err
		}
		pipe = s.rdb.Pipeline()
		for i, id := range stale {
			if slices.Contains(splitTerritories(cmds[i].Val()), t) {
				pipe.ZAdd(ctx, key, redis.Z{Member: id})
			} else {
				removed++
			}
		}
		if pipe.Len() > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return removed, err
			}
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// execIgnoringNil runs a pipeline of HGETs in which a missing profile
// (redis.Nil) is an answer, not a failure. Exec reports only the first
// command's error, so a Nil there could hide a real failure (a Cluster
// node down) later in the pipeline: each command's own error is checked.
func execIgnoringNil(ctx context.Context, pipe redis.Pipeliner, cmds []*redis.StringCmd) error {
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}
