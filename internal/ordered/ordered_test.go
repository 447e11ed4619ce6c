package ordered

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

// Every job runs once, they are emitted in order whatever order they
// finish in, and no job starts more than ahead places beyond the last one
// emitted.
func TestRunEmitsInOrderWithinTheWindow(t *testing.T) {
	const n, workers, ahead = 50, 4, 6
	var (
		mu      sync.Mutex
		emitted = -1 // the last index emitted
		started []int
		order   []int
	)
	job := func(ctx context.Context, i int) {
		mu.Lock()
		if i > emitted+ahead {
			t.Errorf("job %d started while only %d was emitted (window %d)", i, emitted, ahead)
		}
		started = append(started, i)
		mu.Unlock()
	}
	emit := func(i int) error {
		mu.Lock()
		emitted = i
		order = append(order, i)
		mu.Unlock()
		return nil
	}
	if err := Run(context.Background(), n, workers, ahead, job, emit); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(order, want) {
		t.Errorf("emitted %v, want 0 to %d in order", order, n-1)
	}
	slices.Sort(started)
	if !slices.Equal(started, want) {
		t.Errorf("started %v, want every job once", started)
	}
}

// An error from emit stops Run with that error: the jobs running see their
// context end, no later job starts, and Run returns only after the running
// ones have.
func TestRunStopsAtTheFirstEmitError(t *testing.T) {
	const n, workers, ahead = 100, 3, 3
	boom := errors.New("boom")
	var (
		mu      sync.Mutex
		started []int
		running int
	)
	job := func(ctx context.Context, i int) {
		mu.Lock()
		started = append(started, i)
		running++
		mu.Unlock()
		if i > 2 {
			<-ctx.Done() // held until Run stops
		}
		mu.Lock()
		running--
		mu.Unlock()
	}
	emit := func(i int) error {
		if i == 2 {
			return boom
		}
		return nil
	}
	if err := Run(context.Background(), n, workers, ahead, job, emit); !errors.Is(err, boom) {
		t.Fatalf("Run() = %v, want %v", err, boom)
	}
	mu.Lock()
	defer mu.Unlock()
	if running != 0 {
		t.Errorf("%d jobs still running after Run returned", running)
	}
	// Emitting 0 and 1 made room for 3 and 4; the failure at 2 made none
	// for 5.
	for _, i := range started {
		if i >= 2+ahead {
			t.Errorf("job %d started after the failure at 2 (window %d)", i, ahead)
		}
	}
}

// A context that ends stops Run with its error, and nothing is emitted
// after it ended.
func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	job := func(_ context.Context, i int) {
		if i == 0 {
			cancel()
		}
	}
	emit := func(i int) error {
		t.Errorf("emit(%d) after the context ended", i)
		return nil
	}
	if err := Run(ctx, 10, 2, 4, job, emit); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run() = %v, want context.Canceled", err)
	}
}

func TestRunNothing(t *testing.T) {
	called := false
	err := Run(context.Background(), 0, 4, 4, func(context.Context, int) { called = true }, func(int) error { called = true; return nil })
	if err != nil || called {
		t.Errorf("Run(n=0) = %v, called %v; want nil, nothing called", err, called)
	}
}
