package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/redisstore"
	"github.com/arbiter-nba/arbiter/rules"
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
//   - it reports every poll interval, as a key that Redis expires after
//     the replica's live window (ten polls), so that a publisher knows
//     which replicas are live and waits until each of them uses the new
//     Set (redisstore.PublishDefinitions);
//   - after each report it reads the active version again, and switches
//     and reports again until the two agree: a publisher sets the version
//     and then reads the reports, a replica reports and then reads the
//     version, so one of the two always sees the other, even for a
//     replica that starts during a publish (it subscribes before its first
//     read, too);
//   - a replica decides only while its last successful check is within
//     its live window and it uses the active Set: one that is behind (it
//     could not load the active Set) or has not been able to check refuses
//     decisions (Unavailable) and reports not ready (health NOT_SERVING)
//     rather than decide with definitions that may have been replaced:
//     content MLR withdrew must not be recommended. So a decision that
//     starts after a publish returned uses the new Set, or is refused.
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
	behind  atomic.Bool  // the active version could not be loaded
	checked atomic.Int64 // when the last check succeeded, unix ns
	mu      sync.Mutex   // serialises switches
	version string       // guarded by mu

	// paused is the journeys operators paused, as last read (nil: none),
	// given to every engine switched to.
	paused atomic.Pointer[map[string]bool]

	healthMu sync.Mutex
	healthOf []string // the services whose health follows the replica's
	ready    bool     // the last readiness set

	stop chan struct{}
	wg   sync.WaitGroup

	// engineOpts are given to every engine built (the decision id key,
	// the receipt encoder).
	engineOpts []decision.Option
	// kept holds engines of earlier sets, built for replays (EngineFor).
	keptMu sync.Mutex
	kept   map[string]*decision.Engine
}

// maxKeptEngines bounds the engines kept for replays of other sets.
const maxKeptEngines = 4

// newEngine builds the engine of a definitions set.
func (f *follower) newEngine(set *definitions.Set) (*decision.Engine, error) {
	opts := append([]decision.Option{decision.WithDefinitionsVersion(set.Version), decision.WithContactPolicy(set.Contact),
		decision.WithBooker(f.store), decision.WithRules(set.Rules)}, f.engineOpts...)
	return decision.New(f.loader, set.Model, set.Catalog, set.Policy, opts...)
}

// EngineFor is the engine of definitions set version: the one in use, or
// one built from the set as kept in the store (server.Replayer). Replays
// of one set share its engine.
func (f *follower) EngineFor(ctx context.Context, version string) (*decision.Engine, error) {
	if e := f.engine.Load(); e != nil && e.DefinitionsVersion() == version {
		return e, nil
	}
	f.keptMu.Lock()
	e, ok := f.kept[version]
	f.keptMu.Unlock()
	if ok {
		return e, nil
	}
	set, err := f.store.LoadDefinitions(ctx, version)
	if err != nil {
		return nil, err
	}
	if e, err = f.newEngine(set); err != nil {
		return nil, err
	}
	f.keptMu.Lock()
	defer f.keptMu.Unlock()
	if f.kept == nil || len(f.kept) >= maxKeptEngines {
		f.kept = make(map[string]*decision.Engine) // start again: replays come in runs of one set
	}
	f.kept[version] = e
	return e, nil
}

// liveWithin is how long a replica's report counts as live for a publish,
// and how long it decides without a successful check: ten poll intervals.
//
// Ten polls, not fewer: a replica that cannot check for that long refuses
// decisions, so the window must outlast a Redis failover (TestClusterFailover:
// about 4 s from a master's death to decisions recovering), during which
// decisions for the recipients of the other masters must go on.
func liveWithin(interval time.Duration) time.Duration { return 10 * interval }

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

// Decide decides with the engine of the Set in use, if this replica knows
// it is the active one (see the type's comment).
func (f *follower) Decide(ctx context.Context, req decision.Request) (*decision.Result, error) {
	if f.behind.Load() || time.Since(time.Unix(0, f.checked.Load())) > liveWithin(f.interval) {
		return nil, fmt.Errorf("decide: %w: this replica cannot confirm it has the active definitions", arbiter.ErrUnavailable)
	}
	return f.engine.Load().Decide(ctx, req)
}

// engineInUse is the engine, if this replica knows it is the active one.
func (f *follower) engineInUse(what string) (*decision.Engine, error) {
	if f.behind.Load() || time.Since(time.Unix(0, f.checked.Load())) > liveWithin(f.interval) {
		return nil, fmt.Errorf("%s: %w: this replica cannot confirm it has the active definitions", what, arbiter.ErrUnavailable)
	}
	return f.engine.Load(), nil
}

// CheckSend checks a send with the engine in use (server.Sender).
func (f *follower) CheckSend(ctx context.Context, req decision.SendRequest) (*decision.SendResult, error) {
	e, err := f.engineInUse("check send")
	if err != nil {
		return nil, err
	}
	return e.CheckSend(ctx, req)
}

// Release releases a reservation (server.Sender).
func (f *follower) Release(ctx context.Context, hcpID, reservationID string) error {
	e, err := f.engineInUse("release")
	if err != nil {
		return err
	}
	return e.Release(ctx, hcpID, reservationID)
}

// ActionPurpose is the purpose of an action of the catalog in use.
func (f *follower) ActionPurpose(actionID string) (arbiter.Purpose, bool) {
	if e := f.engine.Load(); e != nil {
		return e.ActionPurpose(actionID)
	}
	return arbiter.PurposeUnspecified, false
}

// CheckAll asks every gate about req's candidates with the engine in use,
// and names its definitions (server.Explainer).
func (f *follower) CheckAll(ctx context.Context, req decision.Request) ([]decision.CandidateCheck, string, error) {
	e, err := f.engineInUse("why not")
	if err != nil {
		return nil, "", err
	}
	out, err := e.CheckAll(ctx, req)
	return out, e.DefinitionsVersion(), err
}

// Journeys derives one recipient's journey progress with the engine in
// use (server.Journeyer).
func (f *follower) Journeys(ctx context.Context, req decision.Request) (*decision.JourneyResult, error) {
	e, err := f.engineInUse("journeys")
	if err != nil {
		return nil, err
	}
	return e.Journeys(ctx, req)
}

// Journey is the journey of the definitions in use with the given id.
func (f *follower) Journey(id string) (*rules.Journey, bool) {
	if e := f.engine.Load(); e != nil {
		return e.Journey(id)
	}
	return nil, false
}

// JourneySteps names the journeys an action is a step of, in the
// definitions in use.
func (f *follower) JourneySteps(actionID string) []string {
	if e := f.engine.Load(); e != nil {
		return e.JourneySteps(actionID)
	}
	return nil
}

// FirstStepAt names the journeys whose first step waits for a time of the
// profile, in the definitions in use (decision.Engine.FirstStepAt).
func (f *follower) FirstStepAt(attrs map[string]float64) map[string]time.Time {
	if e := f.engine.Load(); e != nil {
		return e.FirstStepAt(attrs)
	}
	return nil
}

// Persona is the recipient's dynamic persona now, with the engine in use.
func (f *follower) Persona(ctx context.Context, id string) (string, error) {
	res, err := f.Journeys(ctx, decision.Request{HCPID: id})
	if err != nil {
		return "", err
	}
	return res.Persona, nil
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
		// Two servers starting at once: the first to activate wins, and
		// the other follows it.
		if err := f.store.StoreDefinitions(ctx, bootstrap); err != nil {
			return err
		}
		if active, err = f.store.ActivateFirstDefinitions(ctx, bootstrap.Version); err != nil {
			return err
		}
		if active == bootstrap.Version {
			f.log.Info("definitions: published the start-up files as the first active set", "version", active)
		}
	case bootstrap != nil && bootstrap.Version != active:
		f.log.Warn("definitions: the start-up files differ from the active set and are not used; publish them to change the fleet's definitions",
			"files_version", bootstrap.Version, "active_version", active)
	}
	// Subscribed before the first check, so that no announcement falls
	// between the two.
	sub := f.store.SubscribeDefinitions(context.Background())
	if err := f.sync(ctx, active); err != nil {
		sub.Close()
		return err
	}
	if err := f.followPauses(ctx); err != nil {
		sub.Close()
		return err
	}
	f.wg.Add(1)
	go f.run(sub)
	return nil
}

// sync makes active the Set in use and reports it, then reads the active
// version again, and repeats until the version reported is the active
// one: the replica's half of the publish handshake.
func (f *follower) sync(ctx context.Context, active string) error {
	for {
		if err := f.switchTo(ctx, active); err != nil {
			return err
		}
		if err := f.store.ReportReplica(ctx, f.id, active, liveWithin(f.interval)); err != nil {
			return err
		}
		now, err := f.store.ActiveVersion(ctx)
		if err != nil {
			return err
		}
		if now == active || now == "" {
			f.checked.Store(time.Now().UnixNano())
			return nil
		}
		active = now
	}
}

// switchTo makes version the Set in use and reports it.
func (f *follower) switchTo(ctx context.Context, version string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if version == f.version {
		return nil
	}
	set, err := f.store.LoadDefinitions(ctx, version)
	if err == nil && set.Rules != nil {
		set.Rules.OnFailure = func(rule string) { ruleFailures.WithLabelValues(rule).Inc() }
	}
	if err == nil {
		var e *decision.Engine
		e, err = f.newEngine(set)
		if err == nil {
			f.store.SetTouchBounds(set.Contact.Bounds())
			recent := rules.DefaultRecent
			if set.Rules != nil {
				recent = set.Rules.Recent
			}
			f.store.SetRecentEvents(redisstore.RecentEvents{Count: recent.Count, MaxAge: recent.MaxAge})
			if p := f.paused.Load(); p != nil {
				e.SetPausedJourneys(*p)
			}
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
	return nil
}

// attachHealth makes the status of each of services in h (readiness)
// follow the replica's readiness from now on, starting with the present:
// NOT_SERVING while it cannot confirm the active definitions (Redis
// unreachable or stalled, a Set it cannot load), SERVING again by itself
// once it can. The server's own status, "" (liveness), is not among them:
// it stays SERVING while the process works, so that a Redis blip does not
// get every replica restarted.
func (f *follower) attachHealth(h *health.Server, services []string) {
	f.healthMu.Lock()
	defer f.healthMu.Unlock()
	f.health, f.healthOf = h, slices.DeleteFunc(slices.Clone(services), func(s string) bool { return s == "" })
	f.applyHealthLocked()
}

// setHealth marks the replica serving or not.
func (f *follower) setHealth(ok bool) {
	f.healthMu.Lock()
	defer f.healthMu.Unlock()
	f.ready = ok
	f.applyHealthLocked()
}

func (f *follower) applyHealthLocked() {
	if f.health == nil {
		return
	}
	st := healthpb.HealthCheckResponse_SERVING
	if !f.ready {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, s := range f.healthOf {
		f.health.SetServingStatus(s, st)
	}
}

// run follows the active version until close.
func (f *follower) run(sub *redis.PubSub) {
	defer f.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-f.stop
		cancel()
	}()
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

// check reads the active version and syncs to it (switch, report,
// re-read).
func (f *follower) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, f.interval)
	defer cancel()
	active, err := f.store.ActiveVersion(cctx)
	if err == nil {
		if active == "" {
			active = f.Version()
		}
		err = f.sync(cctx, active)
	}
	if err == nil {
		err = f.followPauses(cctx)
	}
	if err != nil && ctx.Err() == nil {
		f.log.Warn("definitions: cannot follow the active set; not ready until it can", "err", err)
	}
	f.setHealth(err == nil && !f.behind.Load())
}

// RefreshPauses reads the paused journeys now (server.Journeyer).
func (f *follower) RefreshPauses(ctx context.Context) error { return f.followPauses(ctx) }

// followPauses reads the paused journeys and gives them to the engine in
// use (and to the engines switched to later).
func (f *follower) followPauses(ctx context.Context) error {
	// Read under the lock: of two reads at once (a pause's and a poll's),
	// the later must be the one kept.
	f.mu.Lock()
	defer f.mu.Unlock()
	paused, err := f.store.PausedJourneys(ctx)
	if err != nil {
		return err
	}
	f.paused.Store(&paused)
	if e := f.engine.Load(); e != nil {
		e.SetPausedJourneys(paused)
	}
	return nil
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
