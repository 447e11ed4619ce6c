package features

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// cachedPair returns a Store with the HCP cache on and, on its own client,
// a second Store with the same prefix: another server writing the same HCPs.
// hook counts the cached store's round trips. lost and connected receive
// the cache's connection events.
func cachedPair(t *testing.T) (cached, writer *Store, hook *countHook, lost chan error, connected chan struct{}) {
	t.Helper()
	b := backends[0] // a single Redis: the cache does not run on a cluster
	rdb, prefix := b.Client(t)
	hook = &countHook{}
	rdb.AddHook(hook)
	// Dial now, for commands and for pipelines (go-redis pools them
	// apart): a new connection's handshake would count as round trips.
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0.Add(day)} // changes are captured after t0, up to now
	cached = NewStore(rdb, WithPrefix(prefix), WithClock(clk.now), WithHalfLife(halfLife))
	lost, connected = make(chan error, 8), make(chan struct{}, 8)
	err := cached.EnableCache(ctx, CacheOptions{
		MaxHCPs:   1000,
		OnLoss:    func(err error) { lost <- err },
		OnConnect: func() { connected <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cached.Close)
	<-connected

	other := redis.NewClient(&redis.Options{Addr: b.Addrs[0]})
	t.Cleanup(func() { other.Close() })
	writer = NewStore(other, WithPrefix(prefix), WithClock(clk.now), WithHalfLife(halfLife))
	return cached, writer, hook, lost, connected
}

func importHCP(t *testing.T, s *Store, id string, recs ...consent.Record) {
	t.Helper()
	items := []ImportItem{{Profile: hcpProfile(id), Consent: recs, ConsentComplete: true, CapturedBy: "test"}}
	if err := s.Import(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

// emailStatus returns the status of the loaded email/promotional record.
func emailStatus(t *testing.T, s *Store, id string) consent.Status {
	t.Helper()
	snap, err := s.Load(context.Background(), id, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range snap.Consent.Records {
		if r.Channel == arbiter.Email && r.Purpose == arbiter.Promotional {
			return r.Status
		}
	}
	t.Fatalf("no email record loaded")
	return 0
}

// Every load is one round trip: a miss its read (no barrier), a hit the
// barrier's PING (no read).
func TestCacheServesRepeatReadsWithoutRedis(t *testing.T) {
	s, w, hook, _, _ := cachedPair(t)
	importHCP(t, w, "hcp-1", optIn(arbiter.Email, arbiter.Promotional, t0))
	settle(t, s)
	ctx := context.Background()
	before, pingsBefore := hook.n.Load(), pings(t, w.rdb)
	for range 3 {
		if _, err := s.Load(ctx, "hcp-1", t0); err != nil {
			t.Fatal(err)
		}
	}
	if n := hook.n.Load() - before; n != 1 {
		t.Errorf("3 loads of one HCP took %d round trips on the data connections, want 1 (then cached)", n)
	}
	if n := pings(t, w.rdb) - pingsBefore; n != 2 {
		t.Errorf("3 loads of one HCP sent %d barrier PINGs, want 2 (none for the miss)", n)
	}
	// An HCP with no profile is not cached: NotFound every time, each read.
	for range 2 {
		if _, err := s.Load(ctx, "hcp-404", t0); !errors.Is(err, arbiter.ErrNotFound) {
			t.Fatalf("Load(hcp-404) error = %v, want ErrNotFound", err)
		}
	}
	if n := hook.n.Load() - before; n != 3 {
		t.Errorf("round trips = %d, want 3", n)
	}
	if n := pings(t, w.rdb) - pingsBefore; n != 2 {
		t.Errorf("barrier PINGs = %d after two misses more, want still 2", n)
	}
	st, ok := s.CacheStats()
	want := CacheStats{Hits: 2, Misses: 3, Entries: 1, Up: true}
	if !ok || st != want {
		t.Errorf("CacheStats() = %+v, %v; want %+v", st, ok, want)
	}
}

// settle waits until the cache has heard of every write made so far. A miss
// does not wait for the barrier, so the invalidation of a write made just
// before it may still arrive after its read and drop the entry it filled:
// correct, but one more read than a test counting round trips expects.
func settle(t *testing.T, s *Store) {
	t.Helper()
	if err := s.cache.barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// pings returns how many PINGs the server has run (INFO commandstats). The
// tests of this package run one at a time and their clients send none, so
// a difference counts the cache's barriers.
func pings(t *testing.T, rdb redis.UniversalClient) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_ping:calls="); ok {
			n, _, _ := strings.Cut(rest, ",")
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("INFO commandstats: %q", line)
			}
			return v
		}
	}
	return 0
}

// The cache's promise: a change acknowledged by any server before a
// decision starts is seen by it. Each round caches the HCP, changes its
// consent through the other store, and loads again at once.
func TestCacheSeesEveryAcknowledgedWrite(t *testing.T) {
	s, w, hook, _, _ := cachedPair(t)
	importHCP(t, w, "hcp-1", optIn(arbiter.Email, arbiter.Promotional, t0))
	// Only for the round-trip count below: from here on each change's load
	// finds the entry of the round before, so it waits for the barrier, and
	// no invalidation can arrive after its read.
	settle(t, s)
	ctx := context.Background()
	const rounds = 300
	before := hook.n.Load()
	for i := range rounds {
		if got := emailStatus(t, s, "hcp-1"); i > 0 && got != statusOfRound(i-1) {
			t.Fatalf("round %d: cached load = %v, want %v", i, got, statusOfRound(i-1))
		}
		r := optIn(arbiter.Email, arbiter.Promotional, t0.Add(time.Duration(i+1)*time.Second))
		r.Status = statusOfRound(i)
		if _, err := w.consent.Set(ctx, "hcp-1", r, false); err != nil {
			t.Fatal(err)
		}
		if got := emailStatus(t, s, "hcp-1"); got != r.Status {
			t.Fatalf("round %d: load right after the change = %v, want %v", i, got, r.Status)
		}
	}
	// Each round: the write's load reads Redis, the next round's first
	// load is a hit.
	if n := hook.n.Load() - before; n > rounds+1 {
		t.Errorf("%d round trips for %d rounds: the cache served nothing", n, rounds)
	}

	// Events written elsewhere move the counters seen here.
	e := Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}
	if _, err := w.ApplyEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load(ctx, "hcp-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Counters.Engagement[arbiter.Email] != 1 {
		t.Errorf("engagement after an event elsewhere = %v, want 1", snap.Counters.Engagement[arbiter.Email])
	}
}

func statusOfRound(i int) consent.Status {
	if i%2 == 0 {
		return consent.OptOut
	}
	return consent.OptIn
}

// When the tracking connection dies, invalidations may be lost: nothing
// cached before is served again, loads go to Redis until it is back, and
// then the cache works again.
func TestCacheTrackingConnectionLoss(t *testing.T) {
	s, w, hook, lost, connected := cachedPair(t)
	importHCP(t, w, "hcp-1", optIn(arbiter.Email, arbiter.Promotional, t0))
	ctx := context.Background()
	if got := emailStatus(t, s, "hcp-1"); got != consent.OptIn {
		t.Fatalf("first load = %v", got)
	}
	killTracking(t, w.rdb)
	<-lost
	// A change while the cache cannot hear about it.
	r := optIn(arbiter.Email, arbiter.Promotional, t0.Add(time.Hour))
	r.Status = consent.OptOut
	if _, err := w.consent.Set(ctx, "hcp-1", r, false); err != nil {
		t.Fatal(err)
	}
	if got := emailStatus(t, s, "hcp-1"); got != consent.OptOut {
		t.Fatalf("load after a change made while tracking was down = %v, want opt_out", got)
	}
	<-connected
	if got := emailStatus(t, s, "hcp-1"); got != consent.OptOut {
		t.Fatalf("load after reconnecting = %v, want opt_out", got)
	}
	before := hook.n.Load()
	if got := emailStatus(t, s, "hcp-1"); got != consent.OptOut {
		t.Fatalf("second load after reconnecting = %v, want opt_out", got)
	}
	if n := hook.n.Load() - before; n != 0 {
		t.Errorf("load after reconnecting took %d round trips, want 0 (cached again)", n)
	}
}

// A Redis that stops answering (here CLIENT PAUSE) must not hold decisions
// on a barrier that cannot pass: the unanswered PING gives the cache up,
// and loads read Redis under their own deadlines.
func TestCacheStuckRedis(t *testing.T) {
	old := cachePingTimeout
	cachePingTimeout = 50 * time.Millisecond
	defer func() { cachePingTimeout = old }()
	s, w, _, lost, connected := cachedPair(t)
	importHCP(t, w, "hcp-1", optIn(arbiter.Email, arbiter.Promotional, t0))
	settle(t, s) // so that the first load's entry stays, and the next load is a hit that needs the barrier
	ctx := context.Background()
	if got := emailStatus(t, s, "hcp-1"); got != consent.OptIn {
		t.Fatalf("first load = %v", got)
	}
	if s.cache.lookup("hcp-1") == nil {
		t.Fatal("hcp-1 not cached after its first load")
	}
	if err := w.rdb.Do(ctx, "CLIENT", "PAUSE", "500", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	// The load waits out the pause (Redis answers nothing meanwhile) but
	// must not fail: the barrier gives up, the read goes to Redis.
	if got := emailStatus(t, s, "hcp-1"); got != consent.OptIn {
		t.Fatalf("load during the pause = %v", got)
	}
	if err := <-lost; err == nil || !strings.Contains(err.Error(), "PING unanswered") {
		t.Errorf("loss reported as %v, want the unanswered PING", err)
	}
	if st, _ := s.CacheStats(); st.Losses < 1 || st.Bypassed < 1 {
		t.Errorf("after the pause: CacheStats() = %+v, want the loss counted and the load bypassed", st)
	}
	<-connected
	if got := emailStatus(t, s, "hcp-1"); got != consent.OptIn {
		t.Fatalf("load after reconnecting = %v", got)
	}
}

// killTracking closes every HCP cache tracking connection on the server.
func killTracking(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+trackingName+" ") {
			continue
		}
		idField, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
		id, err := strconv.ParseInt(idField, 10, 64)
		if err != nil {
			t.Fatalf("CLIENT LIST line %q: %v", line, err)
		}
		if err := rdb.ClientKillByFilter(ctx, "ID", strconv.FormatInt(id, 10)).Err(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	if killed == 0 {
		t.Fatal("no tracking connection found in CLIENT LIST")
	}
}

func TestEnableCacheRefuses(t *testing.T) {
	b := backends[0]
	rdb, prefix := b.Client(t)
	s := NewStore(rdb, WithPrefix(prefix))
	if err := s.EnableCache(context.Background(), CacheOptions{}); err == nil {
		t.Error("EnableCache with no size: no error")
	}
	// A Sentinel client: refused before any dial (the sentinel address is
	// never contacted).
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}})
	defer fc.Close()
	if err := NewStore(fc, WithPrefix(prefix)).EnableCache(context.Background(), CacheOptions{MaxHCPs: 10}); err == nil || !strings.Contains(err.Error(), "Sentinel") {
		t.Errorf("EnableCache on a Sentinel client: %v, want a refusal naming Sentinel", err)
	}
	var cb redistest.Backend
	for _, x := range backends {
		if x.Cluster {
			cb = x
		}
	}
	crdb, cprefix := cb.Client(t)
	cs := NewStore(crdb, WithPrefix(cprefix))
	if err := cs.EnableCache(context.Background(), CacheOptions{MaxHCPs: 10}); err == nil {
		t.Error("EnableCache on a Redis Cluster client: no error")
	}
}

// The race a miss can lose: an invalidation that arrives while its read is
// in flight. The read's result must not be cached.
func TestCacheFillAfterInvalidationIsDropped(t *testing.T) {
	c := newHCPCache("p:{", 10*cacheShards, ":p", ":consent")
	st := &stable{profile: Profile{Market: "DE"}}
	slot := c.reserve("hcp-1", 0)
	c.invalidate("p:{hcp-1}:consent")
	c.fill("hcp-1", slot, st)
	if c.lookup("hcp-1") != nil {
		t.Error("a read overtaken by an invalidation was cached")
	}
	slot = c.reserve("hcp-1", 0)
	c.gen.Add(1) // the tracking connection was lost meanwhile
	c.fill("hcp-1", slot, st)
	if c.lookup("hcp-1") != nil {
		t.Error("a read from before a connection loss was cached")
	}
	slot = c.reserve("hcp-1", 1)
	c.invalidate("other:{hcp-1}:p")          // another prefix: not ours
	c.invalidate("p:{hcp-1}:consent-ledger") // not a hash the cache holds
	c.fill("hcp-1", slot, st)
	if c.lookup("hcp-1") != st {
		t.Error("an undisturbed read was not cached")
	}
	// The size bound: a cache of one entry per shard, filled with ten
	// times that many HCPs, keeps one per shard.
	small := newHCPCache("p:{", cacheShards, ":p", ":consent")
	small.gen.Store(1)
	for i := range 10 * cacheShards {
		id := "h" + strconv.Itoa(i)
		small.fill(id, small.reserve(id, 1), st)
	}
	n := 0
	for i := range small.shards {
		if l := len(small.shards[i].m); l > 1 {
			t.Errorf("shard %d holds %d entries, bound 1", i, l)
		}
		n += len(small.shards[i].m)
	}
	if n == 0 {
		t.Error("the bounded cache holds nothing")
	}
}

// Hits, misses and invalidations of one HCP at once, for the race
// detector, then the last change must be what a load sees; unknown ids
// leave no slot behind.
func TestCacheConcurrentLoads(t *testing.T) {
	s, w, _, _, _ := cachedPair(t)
	importHCP(t, w, "hcp-1", optIn(arbiter.Email, arbiter.Promotional, t0))
	ctx := context.Background()
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if _, err := s.Load(ctx, "hcp-1", t0); err != nil {
					errs <- err
					return
				}
				if _, err := s.Load(ctx, "hcp-unknown", t0); !errors.Is(err, arbiter.ErrNotFound) {
					errs <- err
					return
				}
			}
		}()
	}
	var last consent.Status
	for i := range 100 {
		r := optIn(arbiter.Email, arbiter.Promotional, t0.Add(time.Duration(i+1)*time.Second))
		r.Status = statusOfRound(i)
		if _, err := w.consent.Set(ctx, "hcp-1", r, false); err != nil {
			t.Fatal(err)
		}
		last = r.Status
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent load: %v", err)
		}
	}
	if got := emailStatus(t, s, "hcp-1"); got != last {
		t.Errorf("after the writes: %v, want %v", got, last)
	}
	if s.cache.lookup("hcp-unknown") != nil {
		t.Error("an unknown HCP was cached")
	}
	sh := s.cache.shard("hcp-unknown")
	sh.mu.RLock()
	_, slot := sh.m["hcp-unknown"]
	sh.mu.RUnlock()
	if slot {
		t.Error("a load of an unknown HCP left its slot behind")
	}
}

// A lookup may find a slot that another read is about to fill; the fill
// must not write to what the lookup reads (the race detector checks).
func TestCacheLookupDuringFill(t *testing.T) {
	c := newHCPCache("p:{", 10*cacheShards, ":p", ":consent")
	st := &stable{profile: Profile{Market: "DE"}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			c.fill("hcp-1", c.reserve("hcp-1", 0), st)
		}
	}()
	hits := 0
	for {
		select {
		case <-done:
			if hits == 0 {
				t.Log("no lookup hit a filled entry (timing); the race detector still saw the accesses")
			}
			return
		default:
		}
		if got := c.lookup("hcp-1"); got != nil {
			if got.profile.Market != "DE" {
				t.Fatalf("a hit returned %+v", got.profile)
			}
			hits++
		}
	}
}

// The cache keeps counters as of their stored time and decays them per
// decision: a hit gives exactly what a read would, at any decision time.
// Counters in the earlier per-counter-stamp form are not cached.
func TestCacheDecaysPerDecision(t *testing.T) {
	s, w, hook, _, _ := cachedPair(t)
	importHCP(t, w, "hcp-1", optIn(arbiter.Email, arbiter.Promotional, t0))
	ctx := context.Background()
	open := Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}
	if _, err := w.ApplyEvent(ctx, open); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	if _, err := s.Load(ctx, "hcp-1", t0); err != nil { // cache it
		t.Fatal(err)
	}
	before := hook.n.Load()
	for _, at := range []time.Time{t0.Add(halfLife), t0.Add(2 * halfLife), t0.Add(-day)} {
		got, err := s.Load(ctx, "hcp-1", at)
		if err != nil {
			t.Fatal(err)
		}
		want, err := w.Load(ctx, "hcp-1", at)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffCounters(got.Counters, want.Counters); d != "" {
			t.Errorf("at %v: cached %s", at, d)
		}
		if got.Counters.Engagement[arbiter.Email] != want.Counters.Engagement[arbiter.Email] ||
			got.Counters.Topics["efficacy"] != want.Counters.Topics["efficacy"] {
			t.Errorf("at %v: cached %v/%v, read %v/%v: not identical", at,
				got.Counters.Engagement[arbiter.Email], got.Counters.Topics["efficacy"],
				want.Counters.Engagement[arbiter.Email], want.Counters.Topics["efficacy"])
		}
		if got.Profile.HCPID != "hcp-1" || got.Profile.Market != want.Profile.Market || len(got.Consent.Records) != len(want.Consent.Records) {
			t.Errorf("at %v: cached profile or consent differs from a read", at)
		}
	}
	if n := hook.n.Load() - before; n != 0 {
		t.Errorf("cached loads took %d round trips, want 0", n)
	}

	// A legacy counter: loads stay right, and are reads, not hits.
	importHCP(t, w, "hcp-2", optIn(arbiter.Email, arbiter.Promotional, t0))
	if err := w.rdb.HSet(ctx, w.profileKey("hcp-2"), "e:sms", "4|"+ms(t0)).Err(); err != nil {
		t.Fatal(err)
	}
	before = hook.n.Load()
	for _, at := range []time.Time{t0.Add(halfLife), t0.Add(2 * halfLife)} {
		snap, err := s.Load(ctx, "hcp-2", at)
		if err != nil {
			t.Fatal(err)
		}
		want := 4 * math.Exp2(-float64(at.Sub(t0))/float64(halfLife))
		if !near(snap.Counters.Engagement[arbiter.SMS], want) {
			t.Errorf("legacy counter at %v = %v, want %v", at, snap.Counters.Engagement[arbiter.SMS], want)
		}
	}
	if n := hook.n.Load() - before; n != 2 {
		t.Errorf("loads of an HCP with a legacy counter took %d round trips, want 2 (not cached)", n)
	}
}
