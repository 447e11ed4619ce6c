package workers

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// Every job runs once, more jobs than workers included, and a job that
// blocks never keeps Go from returning.
func TestGoRunsEveryJobWithoutBlocking(t *testing.T) {
	const n = 3 * Max
	release := make(chan struct{})
	var wg sync.WaitGroup
	ran := make([]int, n)
	for i := range n {
		wg.Add(1)
		Go(func() { // returns although every job before it is blocked
			defer wg.Done()
			<-release
			ran[i]++
		})
	}
	close(release)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the jobs did not all finish")
	}
	for i, r := range ran {
		if r != 1 {
			t.Fatalf("job %d ran %d times", i, r)
		}
	}
	if l := live.Load(); l > Max {
		t.Errorf("%d workers live, want at most %d", l, Max)
	}
}

// A worker goes back to work: once every worker is idle, a job is given
// to one of them, not to a new goroutine. (A worker counted idle may not
// be at the channel yet, so a single try could miss: of ten, one must hit.)
func TestWorkersAreReused(t *testing.T) {
	done := make(chan struct{})
	reused := 0
	for range 10 {
		waitIdle(t)
		before := live.Load()
		Go(func() { done <- struct{}{} })
		<-done
		if live.Load() == before {
			reused++
		}
	}
	if reused == 0 {
		t.Error("no job of ten given while every worker was idle went to a worker")
	}
}

// waitIdle waits until every worker waits for a job.
func waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for idle.Load() != live.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("workers never all idle: %d of %d", idle.Load(), live.Load())
		}
		runtime.Gosched()
	}
}
