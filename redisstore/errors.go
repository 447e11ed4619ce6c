package redisstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
)

// Error replies that this package's scripts raise themselves.
const (
	// replyCorrupt: a stored value does not decode (arbiter.ErrCorrupt).
	replyCorrupt = "ARBITERCORRUPT"
	// replyNotMigrated: the recipient still has data in a format of an
	// earlier version; run Migrate (arbiter.ErrUnavailable: retry later).
	replyNotMigrated = "ARBITERNOTMIGRATED"
)

// storageErr wraps a go-redis error for the caller: "redisstore: <op>: "
// and the classified cause.
func storageErr(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w", op, classify(err))
}

// classify wraps a go-redis error in the sentinel it means; it is the one
// classifier of this package.
//
//   - Not a reply from the server (connection refused or lost, timeout,
//     cancelled context, closed client, pool exhausted): the server did not
//     answer, arbiter.ErrUnavailable.
//   - A reply that says the server cannot serve now (loading, read-only,
//     busy, cluster down, try again, master down, max clients, no replicas,
//     out of memory, a slot moved) or that the data awaits migration:
//     arbiter.ErrUnavailable.
//   - A key of the wrong type, or a value a script could not decode:
//     arbiter.ErrCorrupt.
//   - Anything else (a script bug) wraps no sentinel: it is internal.
//
// Script errors are searched anywhere in the reply, because a server may
// prefix an error raised inside a script with the script's location. The
// cause stays wrapped for the server's log only; Redis errors and this
// package's scripts name no personal data (field values are never echoed).
func classify(err error) error {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return fmt.Errorf("%w: %w", arbiter.ErrUnavailable, err)
	}
	msg := reply.Error()
	switch {
	case strings.Contains(msg, "WRONGTYPE"), strings.Contains(msg, replyCorrupt):
		return fmt.Errorf("%w: %w", arbiter.ErrCorrupt, err)
	case strings.Contains(msg, replyNotMigrated):
		return fmt.Errorf("%w: stored data awaits migration (arbiter migrate): %w", arbiter.ErrUnavailable, err)
	}
	code, _, _ := strings.Cut(msg, " ")
	switch code {
	// MOVED and ASK reach here only from a command sent to one node (the
	// replica-acknowledged consent write): the slot moved, the script did
	// not run, and a retry goes to the new owner.
	case "LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "OOM", "NOREPLICAS", "MOVED", "ASK":
		return fmt.Errorf("%w: %w", arbiter.ErrUnavailable, err)
	}
	if redis.IsMaxClientsError(err) {
		return fmt.Errorf("%w: %w", arbiter.ErrUnavailable, err)
	}
	return err
}
