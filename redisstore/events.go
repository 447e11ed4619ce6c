package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// ApplyEvents applies a batch of events, each exactly as ApplyEvent does
// (validated alone, applied atomically by apply_event.lua, idempotent by
// id), and returns what became of each, in order. The events' scripts go
// to Redis in one pipeline (on Redis Cluster, go-redis sends one per node
// concurrently), not one round trip each; two events of one recipient are
// applied in their order in es (one recipient's keys share a slot, so a
// node runs them in the order sent). An unsubscribe's opt-out is written
// first, as ApplyEvent writes it, one round trip each, before the pipeline.
//
// An event that is invalid, whose recipient has no profile, or whose
// recipient's stored state cannot be read gets that error in its outcome
// (wrapping an *arbiter.InvalidError with the domain's field names,
// arbiter.ErrNotFound, arbiter.ErrCorrupt), and nothing of it is written.
// When Redis fails (an error wrapping arbiter.ErrUnavailable, or a
// script's unexpected error) the call returns the first such error as
// well: the events whose outcome carries one may or may not have been
// applied, and applying the batch again is safe.
func (s *Store) ApplyEvents(ctx context.Context, es []recipient.Event) ([]recipient.EventOutcome, error) {
	out := make([]recipient.EventOutcome, len(es))
	if len(es) == 0 {
		return out, nil
	}
	now := s.now()
	var first error // the first failure of the store's, not the event's
	fail := func(i int, err error) {
		out[i].Err = err
		if first == nil && !eventsOwnError(err) {
			first = err
		}
	}
	send := make([]bool, len(es))
	for i := range es {
		if err := es[i].ValidateAt(now); err != nil {
			out[i].Err = fmt.Errorf("redisstore: apply event: %w", err)
			continue
		}
		if first != nil {
			continue // Redis failed: no more writes (the outcome is set below)
		}
		if err := s.unsubscribeFirst(ctx, es[i], now); err != nil {
			fail(i, err)
			continue
		}
		send[i] = true
	}
	if first != nil {
		// Redis failed already: send nothing more.
		for i := range es {
			if out[i].Err == nil {
				out[i].Err = first
			}
		}
		return out, first
	}

	if !s.eventScriptLoaded.Load() {
		// Loaded on every master once, so that the pipeline can use
		// EVALSHA (the source is 13 kB: sending it with every event would
		// cost more than the event).
		if err := loadScript(ctx, s.rdb, applyEventScript); err != nil {
			err = storageErr("apply events", err)
			for i := range es {
				if send[i] {
					out[i].Err = err
				}
			}
			return out, err
		}
		s.eventScriptLoaded.Store(true)
	}
	b := s.TouchBounds()
	keys := make([][]string, len(es))
	args := make([][]any, len(es))
	cmds := make([]*redis.Cmd, len(es))
	pipe := s.rdb.Pipeline()
	for i := range es {
		if send[i] {
			keys[i], args[i] = s.eventScriptCall(ctx, es[i], now, b)
			cmds[i] = applyEventScript.EvalSha(ctx, pipe, keys[i], args[i]...)
		}
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx) // errors are read per command below
	}
	// The script cache can be flushed since it was loaded (a restart, a
	// failover, SCRIPT FLUSH): NOSCRIPT means the script did not run, so
	// the source goes again for those events alone, in their order.
	var retry redis.Pipeliner
	for i, c := range cmds {
		if c != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			if retry == nil {
				retry = s.rdb.Pipeline()
				s.eventScriptLoaded.Store(false)
			}
			cmds[i] = applyEventScript.Eval(ctx, retry, keys[i], args[i]...)
		}
	}
	if retry != nil {
		_, _ = retry.Exec(ctx)
	}
	for i, c := range cmds {
		if c == nil {
			continue
		}
		res, err := c.Int64()
		if err != nil {
			fail(i, storageErr("apply event", err))
			continue
		}
		dup, err := eventResult(res)
		if err != nil {
			fail(i, err)
			continue
		}
		out[i].Duplicate = dup
	}
	return out, first
}

// eventsOwnError reports whether err, an event's failure, is the event's
// own (invalid, an unknown recipient, its stored state unreadable): the
// batch's other events are not concerned. Anything else is the store's.
func eventsOwnError(err error) bool {
	var inv *arbiter.InvalidError
	return errors.As(err, &inv) || errors.Is(err, arbiter.ErrNotFound) || errors.Is(err, arbiter.ErrCorrupt)
}
