// Package workers runs short jobs on long-lived goroutines: the server's
// batch paths (a DecideBatch's decisions, a CheckSendBatch's checks) hand
// each item to one. A new goroutine starts with a small stack, and a
// decision's rules (CEL's recursive evaluation) grow it several times:
// with a goroutine per item, the runtime spent about a tenth of
// CheckSendBatch's CPU growing and copying stacks (runtime.newstack and
// copystack in its profile). A worker keeps its grown stack for the next
// item, as gRPC's own stream workers do for unary calls.
package workers

import "sync/atomic"

// Max is how many workers are kept; beyond it, a job runs on a goroutine
// of its own (Go never waits for a worker).
const Max = 256

var (
	work = make(chan func()) // unbuffered: a send succeeds only to an idle worker
	live atomic.Int32
	idle atomic.Int32 // workers waiting for a job (for the tests)
)

// Go runs f on an idle worker, or on a new one, or (past Max workers) on a
// goroutine of its own; it never blocks.
func Go(f func()) {
	select {
	case work <- f:
		return
	default:
	}
	if live.Add(1) <= Max {
		go loop(f)
		return
	}
	live.Add(-1)
	go f()
}

// loop runs f, then whatever job comes next, for the process's life; an
// idle worker costs its stack and nothing else.
func loop(f func()) {
	for {
		f()
		idle.Add(1)
		f = <-work
		idle.Add(-1)
	}
}
