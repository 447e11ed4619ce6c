package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/redisstore"
)

// How replicas follow the active definitions set.
//
// Each replica holds one decision.Engine, built from one Set, behind an
// atomic pointer: a decision loads the pointer once, so it never mixes two
// Sets. The follower keeps it on the active Set:
//
//   - it reads the active version every poll interval, and at once when a
//     publish announces one (Redis pub/sub; the poll covers a lost
//     message);
//   - on a new version it loads the Set, builds an engine, swaps it in, and
//     only then reports the version it uses (redisstore.ReportReplica);
//   - it reports every poll interval, so that a publisher knows which
//     replicas are live (reported within the live window) and waits until
//     each of them uses the new Set (redisstore.PublishDefinitions): a
//     decision that starts after a publish returned uses the new Set on
//     every confirmed replica;
//   - a replica that knows it is behind (it could not load the active Set)
//     or cannot reach Redis to check marks itself not ready (health
//     NOT_SERVING), and a replica behind refuses decisions (Unavailable)
//     rather than decide with definitions that were replaced: content MLR
//     withdrew must not be recommended.
//
// The decision path is untouched: no Redis command per decision, and
// still one round trip for the recipient's state.
type follower struct {
	store    *redisstore.Store
	loader   decision.Loader
	health   *health.Server
	log      *slog.Logger
	id       string
	interval time.Duration

	engine  atomic.Pointer[decision.Engine]
	behind  atomic.Bool // the active version could not be loaded
	mu      sync.Mutex  // serialises switches
	version string      // guarded by mu

	stop chan struct{}
	wg   sync.WaitGroup
}

// liveWithin is how recently a replica must have reported to count as
// live for a publish: three poll intervals.
func liveWithin(interval time.Duration) time.Duration { return 3 * interval }

func newFollower(store *redisstore.Store, loader decision.Loader, log *slog.Logger, interval time.Duration) *follower {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	return &follower{
		store: store, loader: loader, log: log, interval: interval,
		id:   fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:])),
		stop: make(chan struct{}),
	}
}

// Decide decides with the engine of the Set in use.
func (f *follower) Decide(ctx context.Context, req decision.Request) (*decision.Result, error) {
	if f.behind.Load() {
		return nil, fmt.Errorf("decide: %w: this replica could not load the active definitions", arbiter.ErrUnavailable)
	}
	return f.engine.Load().Decide(ctx, req)
}

// Version is the version of the Set in use.
func (f *follower) Version() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

// Engine is the engine in use.
func (f *follower) Engine() *decision.Engine { return f.engine.Load() }

// start makes the active Set the one in use: bootstrap, when Redis has no
// active Set, is published first (the files the server was started with,
// or the demo's). Files that differ from an active Set are not used:
// changing the definitions of a running fleet is a publish, never a
// restart with other files.
func (f *follower) start(ctx context.Context, bootstrap *definitions.Set) error {
	active, err := f.store.ActiveVersion(ctx)
	if err != nil {
		return err
	}
	switch {
	case active == "" && bootstrap == nil:
		return errors.New("no definitions: Redis has no active set; publish one (arbiter definitions publish DIR) or start with -catalog, -model and -consent-policy")
	case active == "":
		if err := f.store.StoreDefinitions(ctx, bootstrap); err != nil {
			return err
		}
		if err := f.store.ActivateDefinitions(ctx, bootstrap.Version); err != nil {
			return err
		}
		active = bootstrap.Version
		f.log.Info("definitions: published the start-up files as the first active set", "version", active)
	case bootstrap != nil && bootstrap.Version != active:
		f.log.Warn("definitions: the start-up files differ from the active set and are not used; publish them to change the fleet's definitions",
			"files_version", bootstrap.Version, "active_version", active)
	}
	if err := f.switchTo(ctx, active); err != nil {
		return err
	}
	f.wg.Add(1)
	go f.run()
	return nil
}

// switchTo makes version the Set in use and reports it.
func (f *follower) switchTo(ctx context.Context, version string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if version == f.version {
		return nil
	}
	set, err := f.store.LoadDefinitions(ctx, version)
	if err == nil {
		var e *decision.Engine
		e, err = decision.New(f.loader, set.Model, set.Catalog, set.Policy, decision.WithDefinitionsVersion(set.Version))
		if err == nil {
			f.engine.Store(e)
			f.version = version
			f.behind.Store(false)
			f.log.Info("definitions: in use", "version", version, "catalog", set.Catalog.Version, "model", set.Model.Version)
		}
	}
	if err != nil {
		if f.engine.Load() != nil {
			f.behind.Store(true)
		}
		return fmt.Errorf("definitions %s: %w", version, err)
	}
	return f.store.ReportReplica(ctx, f.id, version)
}

// setHealth marks the replica serving or not.
func (f *follower) setHealth(ok bool) {
	if f.health == nil {
		return
	}
	st := healthpb.HealthCheckResponse_SERVING
	if !ok {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	f.health.SetServingStatus("", st)
}

// run follows the active version until close.
func (f *follower) run() {
	defer f.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-f.stop
		cancel()
	}()
	sub := f.store.SubscribeDefinitions(ctx)
	defer sub.Close()
	announced := sub.Channel()
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-announced:
		case <-tick.C:
		}
		f.check(ctx)
	}
}

// check reads the active version, switches to it if it changed, and
// reports the version in use.
func (f *follower) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, f.interval)
	defer cancel()
	active, err := f.store.ActiveVersion(cctx)
	if err == nil && active != "" && active != f.Version() {
		err = f.switchTo(cctx, active)
	}
	if err == nil {
		err = f.store.ReportReplica(cctx, f.id, f.Version())
	}
	if err != nil && ctx.Err() == nil {
		f.log.Warn("definitions: cannot follow the active set; not ready until it can", "err", err)
	}
	f.setHealth(err == nil && !f.behind.Load())
}

// close stops following and removes the replica from the live ones.
func (f *follower) close() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	f.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = f.store.ForgetReplica(ctx, f.id)
}
