// Package ordered runs jobs concurrently and hands their results on in
// order, within a bounded window: the batch paths of the server (one
// decision per HCP of a DecideBatch) and of the CLI (one call per slice of
// a list) share it.
package ordered

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/arbiter-nba/arbiter/internal/workers"
)

// Run calls job(ctx, i) for i = 0 to n-1 on up to parallel goroutines, and
// emit(i) for each i in order once job i has returned. Job i starts only
// once emit(i-ahead) has returned, so however slow emit is, at most ahead
// finished jobs wait for it (ahead >= 1).
//
// The first error from emit, or the end of ctx, stops Run: no further job
// starts and nothing more is emitted, the context the running jobs were
// given is cancelled, and Run returns that error once they have returned. A job reports its own
// outcome through whatever emit reads (job i happens before emit(i)).
func Run(ctx context.Context, n, parallel, ahead int, job func(ctx context.Context, i int), emit func(i int) error) error {
	if n <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // workers waiting for room stop
		wg.Wait()
	}()
	done := make([]chan struct{}, n)
	for i := range done {
		done[i] = make(chan struct{})
	}
	// room holds one token per job that may start: job i takes one, and
	// emit(i) gives one back for job i+ahead.
	room := make(chan struct{}, ahead)
	for range min(ahead, n) {
		room <- struct{}{}
	}
	var next atomic.Int64
	for range min(parallel, n) {
		wg.Add(1)
		// Long-lived goroutines: a decision grows its stack, and a worker
		// keeps it grown for the next job (package workers).
		workers.Go(func() {
			defer wg.Done()
			for {
				select {
				case <-room:
				case <-ctx.Done():
					return
				}
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				job(ctx, i)
				close(done[i])
			}
		})
	}
	for i := range n {
		select {
		case <-done[i]:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(i); err != nil {
			return err
		}
		if i+ahead < n {
			room <- struct{}{}
		}
	}
	return nil
}
