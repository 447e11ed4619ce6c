package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/definitions"
)

// Definitions in Redis. Not per recipient, so none of these keys carries a
// hash tag; each command touches one key.
//
//	<prefix>:defs:set:<version>  hash    a Set's files (file name -> bytes); never deleted
//	<prefix>:defs:active         string  the active Set's version
//	<prefix>:defs:log            list    every activation: "<unix ms>|<version>|<principal>",
//	                                     the principal escaped as in the consent ledger
//	<prefix>:defs:replicas       set     the ids of replicas that reported
//	<prefix>:defs:replica:<id>   string  the version replica id uses; expires after its
//	                                     live window unless reported again
//	<prefix>:defs                channel a publish announces the new version here
//
// Every Set that was ever active stays stored by its version, so that a
// decision can be replayed against the Set it used.
func (s *Store) defsKey(part string) string { return s.prefix + ":defs:" + part }

// StoreDefinitions stores set's files under its version. Storing the same
// Set again changes nothing.
func (s *Store) StoreDefinitions(ctx context.Context, set *definitions.Set) error {
	files := set.Files()
	args := make([]any, 0, 2*len(files))
	for name, data := range files {
		args = append(args, name, data)
	}
	if err := s.rdb.HSet(ctx, s.defsKey("set:"+set.Version), args...).Err(); err != nil {
		return storageErr("store definitions", err)
	}
	return nil
}

// ActivateDefinitions makes version the active Set and announces it to
// the replicas. The Set must have been stored.
func (s *Store) ActivateDefinitions(ctx context.Context, version string) error {
	n, err := s.rdb.Exists(ctx, s.defsKey("set:"+version)).Result()
	if err != nil {
		return storageErr("activate definitions", err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: activate definitions: %w", arbiter.ErrNotFound)
	}
	if err := s.rdb.Set(ctx, s.defsKey("active"), version, 0).Err(); err != nil {
		return storageErr("activate definitions", err)
	}
	if err := s.logActivation(ctx, version); err != nil {
		return err
	}
	// The announcement only hurries the replicas: each also reads the
	// active version every poll interval, so a lost message costs time,
	// not correctness.
	_ = s.rdb.Publish(ctx, s.DefinitionsChannel(), version).Err()
	return nil
}

// ActivateFirstDefinitions makes version the active Set only if there is
// none (SET NX), and returns the active version then: version, or the one
// another server activated first.
func (s *Store) ActivateFirstDefinitions(ctx context.Context, version string) (string, error) {
	won, err := s.rdb.SetNX(ctx, s.defsKey("active"), version, 0).Result()
	if err != nil {
		return "", storageErr("activate definitions", err)
	}
	if won {
		if err := s.logActivation(ctx, version); err != nil {
			return "", err
		}
	}
	return s.ActiveVersion(ctx)
}

// logActivation appends who made version active, and when, to the
// publish log.
func (s *Store) logActivation(ctx context.Context, version string) error {
	entry := strconv.FormatInt(s.now().UnixMilli(), 10) + "|" + version + "|" + principalEscaper.Replace(principalOf(ctx))
	if err := s.rdb.RPush(ctx, s.defsKey("log"), entry).Err(); err != nil {
		return storageErr("activate definitions", err)
	}
	return trailRecorded("the activation of "+version, s.AppendTrail(ctx, OpActivateDefinitions, version, ""))
}

// ActiveVersion returns the active Set's version, or "" when none was
// published.
func (s *Store) ActiveVersion(ctx context.Context) (string, error) {
	v, err := s.rdb.Get(ctx, s.defsKey("active")).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", storageErr("active definitions", err)
	}
	return v, nil
}

// LoadDefinitions returns the stored Set of version, checked against its
// version (a stored Set whose files do not hash to it is corrupt).
func (s *Store) LoadDefinitions(ctx context.Context, version string) (*definitions.Set, error) {
	m, err := s.rdb.HGetAll(ctx, s.defsKey("set:"+version)).Result()
	if err != nil {
		return nil, storageErr("load definitions", err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("redisstore: load definitions: %w", arbiter.ErrNotFound)
	}
	files := make(map[string][]byte, len(m))
	for k, v := range m {
		files[k] = []byte(v)
	}
	set, err := definitions.Parse(files)
	if err != nil || set.Version != version {
		return nil, fmt.Errorf("redisstore: load definitions: %w: the stored set does not match its version", arbiter.ErrCorrupt)
	}
	return set, nil
}

// DefinitionsChannel is the channel publishes are announced on.
func (s *Store) DefinitionsChannel() string { return s.prefix + ":defs" }

// SubscribeDefinitions returns the announcements of new active versions.
// Close the subscription when done.
func (s *Store) SubscribeDefinitions(ctx context.Context) *redis.PubSub {
	return s.rdb.Subscribe(ctx, s.DefinitionsChannel())
}

// ReportReplica records that replica id now uses version, for the next
// live window: the report is a key that Redis expires after live (the
// replica's own window, by Redis's clock: no clock skew between machines
// decides who is live), and the id is kept in a set of replicas.
func (s *Store) ReportReplica(ctx context.Context, id, version string, live time.Duration) error {
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, s.defsKey("replica:"+id), version, live)
	pipe.SAdd(ctx, s.defsKey("replicas"), id)
	if _, err := pipe.Exec(ctx); err != nil {
		return storageErr("report replica", err)
	}
	return nil
}

// ForgetReplica removes replica id (on a clean shutdown).
func (s *Store) ForgetReplica(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.defsKey("replica:"+id)).Err(); err != nil {
		return storageErr("forget replica", err)
	}
	if err := s.rdb.SRem(ctx, s.defsKey("replicas"), id).Err(); err != nil {
		return storageErr("forget replica", err)
	}
	return nil
}

// Replica is what one live replica last reported.
type Replica struct {
	ID      string
	Version string
}

// Replicas returns the live replicas (whose last report has not expired),
// by id; the ids of expired ones are dropped from the set.
func (s *Store) Replicas(ctx context.Context) ([]Replica, error) {
	ids, err := s.rdb.SMembers(ctx, s.defsKey("replicas")).Result()
	if err != nil {
		return nil, storageErr("replicas", err)
	}
	sort.Strings(ids)
	out := make([]Replica, 0, len(ids))
	for _, id := range ids {
		// One GET each: on a Cluster the reports live in different slots.
		v, err := s.rdb.Get(ctx, s.defsKey("replica:"+id)).Result()
		switch {
		case errors.Is(err, redis.Nil):
			_ = s.rdb.SRem(ctx, s.defsKey("replicas"), id).Err() // silent: not live
		case err != nil:
			return nil, storageErr("replicas", err)
		default:
			out = append(out, Replica{ID: id, Version: v})
		}
	}
	return out, nil
}

// PublishResult is what a publish achieved.
type PublishResult struct {
	Version string
	// Confirmed are the live replicas that use the new version.
	Confirmed []string
	// Unconfirmed are the live replicas that did not say they use it
	// within the wait. They mark themselves not ready (health NOT_SERVING)
	// when they cannot follow the active version.
	Unconfirmed []string
}

// PublishDefinitions stores set, makes it active, and waits (at most wait,
// and never past ctx's deadline) until every live replica says it uses it.
// A decision that starts on a confirmed replica after this returns uses
// the new Set; a replica that is live but unconfirmed, or that stops being
// live, refuses decisions until it has the new Set (cmd/arbiter/follow.go).
func (s *Store) PublishDefinitions(ctx context.Context, set *definitions.Set, wait time.Duration) (PublishResult, error) {
	res := PublishResult{Version: set.Version}
	if err := s.StoreDefinitions(ctx, set); err != nil {
		return res, err
	}
	if err := s.ActivateDefinitions(ctx, set.Version); err != nil {
		return res, err
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Add(-200*time.Millisecond).Before(deadline) {
		deadline = d.Add(-200 * time.Millisecond) // answer with what is known rather than time out
	}
	for {
		replicas, err := s.Replicas(ctx)
		if err != nil {
			return res, err
		}
		res.Confirmed, res.Unconfirmed = res.Confirmed[:0], res.Unconfirmed[:0]
		for _, r := range replicas {
			if r.Version == set.Version {
				res.Confirmed = append(res.Confirmed, r.ID)
			} else {
				res.Unconfirmed = append(res.Unconfirmed, r.ID)
			}
		}
		if len(res.Unconfirmed) == 0 || !time.Now().Before(deadline) {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, storageErr("publish definitions", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
