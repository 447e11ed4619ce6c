package hcpcache

import (
	"context"
	"errors"
	"hash/maphash"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// Every load is one round trip: a miss its read (no barrier), a hit the
// barrier's PING (no read).
func TestCacheServesRepeatReadsWithoutRedis(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	importHCPs(t, f.writer, "hcp-1")
	settle(t, f.cache)
	ctx := context.Background()
	before, pingsBefore := f.hook.N(), pings(t, f.other)
	for range 3 {
		if _, err := f.cache.Load(ctx, "hcp-1", t0); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := f.hook.N()-before, int64(1); got != want {
		t.Errorf("3 loads of one HCP took %d round trips on the data connections, want %d (then cached)", got, want)
	}
	if got, want := pings(t, f.other)-pingsBefore, int64(2); got != want {
		t.Errorf("3 loads of one HCP sent %d barrier PINGs, want %d (none for the miss)", got, want)
	}
	// An HCP with no profile is not cached: NotFound every time, each a
	// read.
	for range 2 {
		if _, err := f.cache.Load(ctx, "hcp-404", t0); !errors.Is(err, arbiter.ErrNotFound) {
			t.Fatalf("Load(hcp-404) error = %v, want ErrNotFound", err)
		}
	}
	if got, want := f.hook.N()-before, int64(3); got != want {
		t.Errorf("round trips = %d, want %d", got, want)
	}
	if got, want := pings(t, f.other)-pingsBefore, int64(2); got != want {
		t.Errorf("barrier PINGs = %d after two misses more, want still %d", got, want)
	}
	if got, want := f.cache.Stats(), (Stats{Hits: 2, Misses: 3, Entries: 1, Up: true}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// spyCtx reports when Done is first called: in Load's hit path that is
// when the decision waits for its barrier, having joined a PING (and, for
// the first, sent it).
type spyCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (c *spyCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// Decisions that arrive while a barrier PING is in flight share the next
// one: however many they are, they cost one PING between them.
func TestCacheSharesBarrierPing(t *testing.T) {
	// A PING held below is not a stuck Redis.
	f := newFixture(t, fixtureOptions{pingTimeout: time.Minute})
	importHCPs(t, f.writer, "hcp-1")
	settle(t, f.cache)
	if _, err := f.cache.Load(context.Background(), "hcp-1", t0); err != nil { // the miss that caches it
		t.Fatal(err)
	}
	if f.cache.lookup("hcp-1") == nil {
		t.Fatal("hcp-1 not cached after its first load")
	}
	pingsBefore := pings(t, f.other)

	// While reads are held the first PONG cannot arrive: the first
	// decision's PING stays in flight, and every later one waits for the
	// next PING.
	release := f.dialer.holdReads()
	defer release()
	results := make(chan error, 16)
	start := func() <-chan struct{} {
		base, cancel := context.WithTimeout(context.Background(), waitFor)
		t.Cleanup(cancel)
		ctx := &spyCtx{Context: base, waiting: make(chan struct{})}
		go func() {
			st, err := f.cache.Load(ctx, "hcp-1", t0)
			if err == nil && st.Profile.HCPID != "hcp-1" {
				err = errors.New("loaded " + st.Profile.HCPID)
			}
			results <- err
		}()
		return ctx.waiting
	}
	receive(t, start(), "first decision waiting for its barrier")
	const later = 8
	waiting := make([]<-chan struct{}, later)
	for i := range waiting {
		waiting[i] = start()
	}
	for i := range waiting {
		receive(t, waiting[i], "later decision waiting for its barrier")
	}
	release()
	for range 1 + later {
		if err := receive(t, results, "load result"); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	// One PING for the first decision, one shared by the later ones.
	if got, want := pings(t, f.other)-pingsBefore, int64(2); got != want {
		t.Errorf("%d concurrent hits sent %d PINGs, want %d", 1+later, got, want)
	}
	if got, want := f.cache.Stats(), (Stats{Hits: 1 + later, Misses: 1, Entries: 1, Up: true}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// The cache's promise: a change acknowledged by any server before a
// decision starts is seen by it. Each round caches the HCP, changes its
// consent through the other store, and loads again at once.
func TestCacheSeesEveryAcknowledgedWrite(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	importHCPs(t, f.writer, "hcp-1")
	// Only for the counts below: from here on each change's load either
	// finds the entry of the round before, and waits for the barrier, or
	// finds it already invalidated; either way no invalidation can arrive
	// after its read.
	settle(t, f.cache)
	ctx := context.Background()
	const rounds = 300
	before := f.hook.N()
	for i := range rounds {
		if got := emailStatus(t, f.cache, "hcp-1"); i > 0 && got != statusOfRound(i-1) {
			t.Fatalf("round %d: cached load = %v, want %v", i, got, statusOfRound(i-1))
		}
		setEmail(t, f.writer, "hcp-1", statusOfRound(i), t0.Add(time.Duration(i+1)*time.Second))
		if got, want := emailStatus(t, f.cache, "hcp-1"), statusOfRound(i); got != want {
			t.Fatalf("round %d: load right after the change = %v, want %v", i, got, want)
		}
	}
	// Each round: the change's load reads Redis, the next round's first
	// load is a hit (the very first is a miss).
	if got, want := f.hook.N()-before, int64(rounds+1); got != want {
		t.Errorf("%d rounds took %d round trips, want %d", rounds, got, want)
	}
	st := f.cache.Stats()
	if got, want := st.Hits, uint64(rounds-1); got != want {
		t.Errorf("hits = %d, want %d", got, want)
	}
	if got, want := st.Invalidations, uint64(rounds); got != want {
		t.Errorf("invalidations = %d, want %d (one per change)", got, want)
	}

	// Events written elsewhere move the counters seen here.
	e := recipient.Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}
	if _, err := f.writer.ApplyEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := f.cache.Load(ctx, "hcp-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.writer.Load(ctx, "hcp-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Counters.Engagement[arbiter.Email] <= 0 {
		t.Errorf("engagement after an event elsewhere = %v, want it moved", got.Counters.Engagement[arbiter.Email])
	}
	if d := diffCounters(got.Counters, want.Counters); d != "" {
		t.Errorf("after an event elsewhere: %s", d)
	}
}

func statusOfRound(i int) consent.Status {
	if i%2 == 0 {
		return consent.OptOut
	}
	return consent.OptIn
}

// A write to one of the hashes a decision reads evicts the recipient, and
// the next load sees it; a write to the recipient's other keys, or to keys
// the cache does not track, leaves the entry alone.
func TestCacheInvalidation(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	importHCPs(t, f.writer, "hcp-1")
	ctx := context.Background()
	tests := []struct {
		name        string
		write       func(t *testing.T)
		invalidates bool
		// check is what the load after the write must see (nil: nothing
		// particular).
		check func(t *testing.T, st *recipient.State)
	}{
		{
			name: "profile upsert",
			write: func(t *testing.T) {
				p := hcpProfile("hcp-1")
				p.Specialty = "cardiology"
				if err := f.writer.UpsertProfile(ctx, p); err != nil {
					t.Fatal(err)
				}
			},
			invalidates: true,
			check: func(t *testing.T, st *recipient.State) {
				if got, want := st.Profile.Specialty, "cardiology"; got != want {
					t.Errorf("specialty = %q, want %q", got, want)
				}
			},
		},
		{
			name:        "consent change",
			write:       func(t *testing.T) { setEmail(t, f.writer, "hcp-1", consent.OptOut, t0.Add(time.Hour)) },
			invalidates: true,
			check: func(t *testing.T, st *recipient.State) {
				if got, want := emailOf(st), consent.OptOut; got != want {
					t.Errorf("email consent = %v, want %v", got, want)
				}
			},
		},
		{
			name: "event",
			write: func(t *testing.T) {
				e := recipient.Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventClicked, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}
				if _, err := f.writer.ApplyEvent(ctx, e); err != nil {
					t.Fatal(err)
				}
			},
			invalidates: true,
			check: func(t *testing.T, st *recipient.State) {
				want, err := f.writer.Load(ctx, "hcp-1", t0)
				if err != nil {
					t.Fatal(err)
				}
				if st.Counters.Topics["efficacy"] <= 0 {
					t.Errorf("topic engagement = %v, want it moved", st.Counters.Topics["efficacy"])
				}
				if d := diffCounters(st.Counters, want.Counters); d != "" {
					t.Error(d)
				}
			},
		},
		{
			// Decisions read the newest events (rules react to them).
			name: "event history only",
			write: func(t *testing.T) {
				if err := f.other.LPush(ctx, f.key("hcp-1", ":h"), "x").Err(); err != nil {
					t.Fatal(err)
				}
			},
			invalidates: true,
		},
		{
			name: "dedup set only",
			write: func(t *testing.T) {
				if err := f.other.ZAdd(ctx, f.key("hcp-1", ":ev"), redis.Z{Score: 1, Member: "e1"}).Err(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "consent ledger only",
			write: func(t *testing.T) {
				if err := f.other.RPush(ctx, f.key("hcp-1", ":consent-log"), "x").Err(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "another recipient whose id starts with this one's",
			write: func(t *testing.T) {
				if err := f.other.HSet(ctx, f.key("hcp-10", ":p"), "mk", "DE").Err(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "same recipient under another prefix",
			write: func(t *testing.T) {
				if err := f.other.HSet(ctx, "other"+f.key("hcp-1", ":p"), "mk", "DE").Err(); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			settle(t, f.cache)
			if _, err := f.cache.Load(ctx, "hcp-1", t0); err != nil {
				t.Fatal(err)
			}
			settle(t, f.cache)
			if f.cache.lookup("hcp-1") == nil {
				t.Fatal("hcp-1 not cached before the write")
			}
			statsBefore, before := f.cache.Stats(), f.hook.N()
			tc.write(t)
			if !tc.invalidates {
				// Let any message the write caused arrive: it must be
				// ignored.
				settle(t, f.cache)
			}
			st, err := f.cache.Load(ctx, "hcp-1", t0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
			wantInval, wantRT := uint64(0), int64(0)
			if tc.invalidates {
				wantInval, wantRT = 1, 1
			}
			if got := f.cache.Stats().Invalidations - statsBefore.Invalidations; got != wantInval {
				t.Errorf("invalidations = %d, want %d", got, wantInval)
			}
			if got := f.hook.N() - before; got != wantRT {
				t.Errorf("the load after the write took %d round trips, want %d", got, wantRT)
			}
		})
	}
}

// FLUSHDB (or FLUSHALL) invalidates every key at once: Redis says so with
// an invalidation naming no key, and the cache drops everything.
func TestCacheFlushDropsEverything(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	importHCPs(t, f.writer, "hcp-1", "hcp-2")
	settle(t, f.cache)
	ctx := context.Background()
	for _, id := range []string{"hcp-1", "hcp-2"} {
		if _, err := f.cache.Load(ctx, id, t0); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := f.cache.Stats().Entries, 2; got != want {
		t.Fatalf("entries = %d, want %d", got, want)
	}
	// The tests of this package run one at a time, each on data of its
	// own: flushing the server touches no other test.
	if err := f.other.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"hcp-1", "hcp-2"} {
		if _, err := f.cache.Load(ctx, id, t0); !errors.Is(err, arbiter.ErrNotFound) {
			t.Errorf("Load(%s) after FLUSHDB: error %v, want ErrNotFound", id, err)
		}
	}
	if got, want := f.cache.Stats().Entries, 0; got != want {
		t.Errorf("entries after FLUSHDB = %d, want %d", got, want)
	}
}

// When the tracking connection dies, invalidations may have been lost:
// nothing cached before is served again, loads go to Redis until it is
// back, and then the cache works again.
func TestCacheTrackingConnectionLoss(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	importHCPs(t, f.writer, "hcp-1")
	settle(t, f.cache)
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptIn; got != want {
		t.Fatalf("first load = %v, want %v", got, want)
	}
	// Keep it down while the test looks.
	releaseDials := f.dialer.holdDials()
	defer releaseDials()
	killTracking(t, f)
	if err := receive(t, f.lost, "loss report"); err == nil {
		t.Error("loss reported with a nil error")
	}
	if got, want := f.cache.Stats(), (Stats{Misses: 1, Losses: 1}); got != want {
		t.Errorf("Stats() while down = %+v, want %+v (nothing held, not up)", got, want)
	}
	// A change while the cache cannot hear about it.
	setEmail(t, f.writer, "hcp-1", consent.OptOut, t0.Add(time.Hour))
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptOut; got != want {
		t.Fatalf("load after a change made while tracking was down = %v, want %v", got, want)
	}
	if got, want := f.cache.Stats(), (Stats{Misses: 1, Bypassed: 1, Losses: 1}); got != want {
		t.Errorf("Stats() after a load while down = %+v, want %+v (bypassed, nothing kept)", got, want)
	}

	releaseDials()
	receive(t, f.connected, "reconnection")
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptOut; got != want {
		t.Fatalf("load after reconnecting = %v, want %v", got, want)
	}
	before := f.hook.N()
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptOut; got != want {
		t.Fatalf("second load after reconnecting = %v, want %v", got, want)
	}
	if got := f.hook.N() - before; got != 0 {
		t.Errorf("second load after reconnecting took %d round trips, want 0 (cached again)", got)
	}
	if got, want := f.cache.Stats(), (Stats{Hits: 1, Misses: 2, Bypassed: 1, Losses: 1, Entries: 1, Up: true}); got != want {
		t.Errorf("Stats() after reconnecting = %+v, want %+v", got, want)
	}
}

// A Redis that stops answering (here CLIENT PAUSE) must not hold decisions
// on a barrier that cannot pass: the unanswered PING gives the cache up,
// and loads read Redis under their own deadlines.
func TestCacheStuckRedis(t *testing.T) {
	const pingTimeout = 100 * time.Millisecond
	f := newFixture(t, fixtureOptions{pingTimeout: pingTimeout})
	importHCPs(t, f.writer, "hcp-1")
	settle(t, f.cache) // so that the first load's entry stays, and the next load is a hit that needs the barrier
	ctx := context.Background()
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptIn; got != want {
		t.Fatalf("first load = %v, want %v", got, want)
	}
	if f.cache.lookup("hcp-1") == nil {
		t.Fatal("hcp-1 not cached after its first load")
	}
	// Ten times the PING timeout: the barrier gives up long before.
	if err := f.other.Do(ctx, "CLIENT", "PAUSE", strconv.Itoa(int(10*pingTimeout/time.Millisecond)), "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	// The load waits out the pause (Redis answers nothing meanwhile) but
	// must not fail: the barrier gives up, the read goes to Redis.
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptIn; got != want {
		t.Fatalf("load during the pause = %v, want %v", got, want)
	}
	if err := receive(t, f.lost, "loss report"); err == nil || !strings.Contains(err.Error(), "PING unanswered") {
		t.Errorf("loss reported as %v, want the unanswered PING", err)
	}
	if st := f.cache.Stats(); st.Losses != 1 || st.Bypassed != 1 || st.Hits != 0 {
		t.Errorf("after the pause: Stats() = %+v, want the loss counted, the load bypassed and no hit", st)
	}
	receive(t, f.connected, "reconnection")
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptIn; got != want {
		t.Fatalf("load after reconnecting = %v, want %v", got, want)
	}
}

// New checks its options before it dials.
func TestNewRefusesBadOptions(t *testing.T) {
	var dials int
	dial := func(context.Context) (net.Conn, error) {
		dials++
		return nil, errors.New("dialled")
	}
	loader := loaderFunc(func(context.Context, string, time.Time) (*recipient.State, error) { return nil, errNoLoad })
	valid := func() Options {
		return Options{Dial: dial, KeyPrefix: "p:{", Suffixes: []string{":p"}, HalfLife: halfLife, MaxHCPs: 64}
	}
	tests := []struct {
		name    string
		loader  Loader
		change  func(o *Options)
		wantErr string
	}{
		{name: "nil loader", change: func(*Options) {}, wantErr: "nil loader"},
		{name: "no dialer", loader: loader, change: func(o *Options) { o.Dial = nil }, wantErr: "no dialer"},
		{name: "no key prefix", loader: loader, change: func(o *Options) { o.KeyPrefix = "" }, wantErr: "no keys"},
		{name: "no suffixes", loader: loader, change: func(o *Options) { o.Suffixes = nil }, wantErr: "no keys"},
		{name: "zero half-life", loader: loader, change: func(o *Options) { o.HalfLife = 0 }, wantErr: "half-life"},
		{name: "negative half-life", loader: loader, change: func(o *Options) { o.HalfLife = -time.Hour }, wantErr: "half-life"},
		{name: "MaxHCPs 0", loader: loader, change: func(o *Options) { o.MaxHCPs = 0 }, wantErr: "size"},
		{name: "negative MaxHCPs", loader: loader, change: func(o *Options) { o.MaxHCPs = -1 }, wantErr: "size"},
		{name: "negative ping timeout", loader: loader, change: func(o *Options) { o.PingTimeout = -time.Second }, wantErr: "ping timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dials = 0
			o := valid()
			tc.change(&o)
			c, err := New(context.Background(), tc.loader, o)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New() error = %v, want one about %q", err, tc.wantErr)
			}
			if c != nil {
				t.Errorf("New() = %p, want nil with the error", c)
				c.Close()
			}
			if dials != 0 {
				t.Errorf("New() dialled %d times, want 0 (refused first)", dials)
			}
		})
	}
}

// New fails when it cannot set up tracking: the dial fails, or Redis
// refuses the handshake.
func TestNewConnectFailures(t *testing.T) {
	_, prefix := redistest.Client(t, redisAddr)
	errDial := errors.New("no route")
	tcp := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", redisAddr)
	}
	tests := []struct {
		name    string
		change  func(o *Options)
		wantErr func(err error) bool
	}{
		{
			name:    "dial fails",
			change:  func(o *Options) { o.Dial = func(context.Context) (net.Conn, error) { return nil, errDial } },
			wantErr: func(err error) bool { return errors.Is(err, errDial) },
		},
		{
			name:    "unknown user",
			change:  func(o *Options) { o.Username, o.Password = "no-such-user", "secret" },
			wantErr: func(err error) bool { return err != nil && strings.Contains(err.Error(), "HELLO") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Dial: tcp, KeyPrefix: prefix + ":{", Suffixes: []string{":p"}, HalfLife: halfLife, MaxHCPs: 64}
			tc.change(&o)
			loader := loaderFunc(func(context.Context, string, time.Time) (*recipient.State, error) { return nil, errNoLoad })
			c, err := New(context.Background(), loader, o)
			if !tc.wantErr(err) {
				t.Errorf("New() error = %v", err)
			}
			if c != nil {
				t.Errorf("New() = %p, want nil with the error", c)
				c.Close()
			}
		})
	}
}

// Close stops tracking without reporting a loss; loads then go to the
// Loader, and a second Close does nothing.
func TestCacheClose(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	importHCPs(t, f.writer, "hcp-1")
	settle(t, f.cache)
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptIn; got != want {
		t.Fatalf("load = %v, want %v", got, want)
	}
	f.cache.Close()
	f.cache.Close()
	setEmail(t, f.writer, "hcp-1", consent.OptOut, t0.Add(time.Hour))
	if got, want := emailStatus(t, f.cache, "hcp-1"), consent.OptOut; got != want {
		t.Errorf("load after Close = %v, want %v (read through)", got, want)
	}
	if got, want := f.cache.Stats(), (Stats{Misses: 1, Bypassed: 1}); got != want {
		t.Errorf("Stats() after Close = %+v, want %+v (no loss counted, nothing held)", got, want)
	}
	select {
	case err := <-f.lost:
		t.Errorf("Close reported a loss: %v", err)
	default:
	}
	if got, want := f.dialer.dialCount(), 1; got != want {
		t.Errorf("dials = %d, want %d (no reconnection after Close)", got, want)
	}
}

// MaxHCPs bounds the cache: max(1, MaxHCPs/64) recipients in each of 64
// shards, and past that a load's entry takes an older one's place.
func TestCacheSizeBound(t *testing.T) {
	_, prefix := redistest.Client(t, redisAddr)
	loader := loaderFunc(func(context.Context, string, time.Time) (*recipient.State, error) { return nil, errNoLoad })
	for _, tc := range []struct{ maxHCPs, wantPerShard int }{
		{1, 1}, {63, 1}, {64, 1}, {127, 1}, {128, 2}, {1000, 15},
	} {
		c, err := New(context.Background(), loader, Options{
			Dial:      func(ctx context.Context) (net.Conn, error) { return new(net.Dialer).DialContext(ctx, "tcp", redisAddr) },
			KeyPrefix: prefix + ":{", Suffixes: []string{":p"}, HalfLife: halfLife, MaxHCPs: tc.maxHCPs,
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.perShard != tc.wantPerShard {
			t.Errorf("MaxHCPs %d: %d per shard, want %d", tc.maxHCPs, c.perShard, tc.wantPerShard)
		}
		c.Close()
	}

	// One per shard, and three times as many recipients loaded.
	f := newFixture(t, fixtureOptions{maxHCPs: cacheShards})
	ids := make([]string, 3*cacheShards)
	for i := range ids {
		ids[i] = "hcp-" + strconv.Itoa(i)
	}
	importHCPs(t, f.writer, ids...)
	settle(t, f.cache)
	for _, id := range ids {
		st, err := f.cache.Load(context.Background(), id, t0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Profile.HCPID != id {
			t.Fatalf("Load(%s) returned %s", id, st.Profile.HCPID)
		}
	}
	st := f.cache.Stats()
	if st.Entries == 0 || st.Entries > cacheShards {
		t.Errorf("entries = %d, want 1 to %d", st.Entries, cacheShards)
	}
	for i := range f.cache.shards {
		sh := &f.cache.shards[i]
		sh.mu.RLock()
		n := len(sh.m)
		sh.mu.RUnlock()
		if n > 1 {
			t.Errorf("shard %d holds %d entries, bound 1", i, n)
		}
	}
}

// offlineCache is a Cache with no tracking connection, for the tests of its
// slots alone.
func offlineCache(keyPrefix string, maxHCPs int, suffixes ...string) *Cache {
	c := &Cache{
		halfLife:    halfLife,
		trackPrefix: keyPrefix,
		watched:     suffixes,
		perShard:    max(1, maxHCPs/cacheShards),
		seed:        maphash.MakeSeed(),
		done:        make(chan struct{}),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheEntry)
	}
	return c
}

// The race a miss can lose: an invalidation that arrives while its read is
// in flight. The read's result must not be cached.
func TestCacheFillAfterInvalidationIsDropped(t *testing.T) {
	st := &recipient.State{Profile: recipient.Profile{HCPID: "hcp-1", Market: "DE"}}
	tests := []struct {
		name string
		// between runs between the reservation (made in generation 1)
		// and the fill.
		between func(c *Cache)
		cached  bool
	}{
		{"undisturbed", func(*Cache) {}, true},
		{"invalidated profile", func(c *Cache) { c.invalidate("p:{hcp-1}:p") }, false},
		{"invalidated consent", func(c *Cache) { c.invalidate("p:{hcp-1}:consent") }, false},
		{"connection lost", func(c *Cache) { c.gen.Add(1) }, false},
		{"everything dropped", func(c *Cache) { c.dropAll() }, false},
		{"another read reserved the slot", func(c *Cache) { c.reserve("hcp-1", 1) }, false},
		{"another prefix", func(c *Cache) { c.invalidate("other:{hcp-1}:p") }, true},
		{"a key the cache does not hold", func(c *Cache) { c.invalidate("p:{hcp-1}:consent-log") }, true},
		{"another recipient", func(c *Cache) { c.invalidate("p:{hcp-10}:p") }, true},
		{"not a recipient's key", func(c *Cache) { c.invalidate("p:{hcp-1") }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := offlineCache("p:{", 10*cacheShards, ":p", ":consent")
			c.gen.Store(1)
			slot := c.reserve("hcp-1", 1)
			tc.between(c)
			c.fill("hcp-1", slot, st)
			if got := c.lookup("hcp-1") == st; got != tc.cached {
				t.Errorf("cached = %v, want %v", got, tc.cached)
			}
		})
	}

	// A released slot goes; one that another read took stays.
	c := offlineCache("p:{", 10*cacheShards, ":p", ":consent")
	slot := c.reserve("hcp-1", 0)
	c.release("hcp-1", slot)
	if got := c.Stats().Entries; got != 0 {
		t.Errorf("entries after a release = %d, want 0", got)
	}
	old := c.reserve("hcp-1", 0)
	c.reserve("hcp-1", 0)
	c.release("hcp-1", old)
	if got := c.Stats().Entries; got != 1 {
		t.Errorf("entries after releasing a replaced slot = %d, want 1 (the other read's)", got)
	}

	// The size bound: a cache of one entry per shard, filled with ten
	// times that many recipients, keeps one per shard.
	small := offlineCache("p:{", cacheShards, ":p", ":consent")
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
	f := newFixture(t, fixtureOptions{})
	importHCPs(t, f.writer, "hcp-1")
	ctx := context.Background()
	const loaders = 4
	done := make(chan struct{})
	errs := make(chan error, loaders)
	for range loaders {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if _, err := f.cache.Load(ctx, "hcp-1", t0); err != nil {
					errs <- err
					return
				}
				if _, err := f.cache.Load(ctx, "hcp-unknown", t0); !errors.Is(err, arbiter.ErrNotFound) {
					errs <- errors.New("Load(hcp-unknown): " + errString(err) + ", want ErrNotFound")
					return
				}
			}
		}()
	}
	var last consent.Status
	for i := range 100 {
		last = statusOfRound(i)
		setEmail(t, f.writer, "hcp-1", last, t0.Add(time.Duration(i+1)*time.Second))
	}
	close(done)
	for range loaders {
		if err := receive(t, errs, "concurrent loader's end"); err != nil {
			t.Fatalf("concurrent load: %v", err)
		}
	}
	if got := emailStatus(t, f.cache, "hcp-1"); got != last {
		t.Errorf("after the writes: %v, want %v", got, last)
	}
	sh := f.cache.shard("hcp-unknown")
	sh.mu.RLock()
	_, slot := sh.m["hcp-unknown"]
	sh.mu.RUnlock()
	if slot {
		t.Error("a load of an unknown HCP left its slot behind")
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// A lookup may find a slot that another read is about to fill; the fill
// must not write to what the lookup reads (the race detector checks).
func TestCacheLookupDuringFill(t *testing.T) {
	c := offlineCache("p:{", 10*cacheShards, ":p", ":consent")
	st := &recipient.State{Profile: recipient.Profile{HCPID: "hcp-1", Market: "DE"}}
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
			if got.Profile.Market != "DE" {
				t.Fatalf("a hit returned %+v", got.Profile)
			}
			hits++
		}
	}
}

// The cache keeps counters as of their stored time and decays them per
// decision: a hit gives exactly what a read would, at any decision time.
// Counters in the per-counter-stamp form of earlier versions are refused
// by the store as corrupt: through the cache too, and nothing is kept.
func TestCacheDecaysPerDecision(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	importHCPs(t, f.writer, "hcp-1")
	ctx := context.Background()
	open := recipient.Event{ID: "e1", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, Topic: "efficacy", OccurredAt: t0}
	if _, err := f.writer.ApplyEvent(ctx, open); err != nil {
		t.Fatal(err)
	}
	settle(t, f.cache)
	if _, err := f.cache.Load(ctx, "hcp-1", t0); err != nil { // cache it
		t.Fatal(err)
	}
	before := f.hook.N()
	for _, at := range []time.Time{t0.Add(halfLife), t0.Add(2 * halfLife), t0.Add(-day)} {
		got, err := f.cache.Load(ctx, "hcp-1", at)
		if err != nil {
			t.Fatal(err)
		}
		want, err := f.writer.Load(ctx, "hcp-1", at)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffCounters(got.Counters, want.Counters); d != "" {
			t.Errorf("at %v: cached %s", at, d)
		}
		if got.Profile.HCPID != "hcp-1" || got.Profile.Market != want.Profile.Market || len(got.Consent.Records) != len(want.Consent.Records) {
			t.Errorf("at %v: cached profile or consent differs from a read", at)
		}
	}
	if got := f.hook.N() - before; got != 0 {
		t.Errorf("cached loads took %d round trips, want 0", got)
	}

	// A legacy counter: every load is a read that fails, and leaves no
	// slot.
	importHCPs(t, f.writer, "hcp-2")
	if err := f.other.HSet(ctx, f.key("hcp-2", ":p"), "e:sms", "4|"+strconv.FormatInt(t0.UnixMilli(), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.writer.Load(ctx, "hcp-2", t0); !errors.Is(err, arbiter.ErrCorrupt) {
		t.Fatalf("the store's own Load of a legacy counter: %v, want ErrCorrupt", err)
	}
	settle(t, f.cache)
	before = f.hook.N()
	for _, at := range []time.Time{t0.Add(halfLife), t0.Add(2 * halfLife)} {
		if _, err := f.cache.Load(ctx, "hcp-2", at); !errors.Is(err, arbiter.ErrCorrupt) {
			t.Errorf("Load(hcp-2) at %v: %v, want ErrCorrupt", at, err)
		}
	}
	if got, want := f.hook.N()-before, int64(2); got != want {
		t.Errorf("loads of an HCP with a legacy counter took %d round trips, want %d (not cached)", got, want)
	}
	sh := f.cache.shard("hcp-2")
	sh.mu.RLock()
	_, slot := sh.m["hcp-2"]
	sh.mu.RUnlock()
	if slot {
		t.Error("a failed load left its slot behind")
	}
}

// A state cached by a miss at one decision time and served at another has
// its counters decayed exactly as the store's own Load at that time gives
// them: same values bit for bit, same times.
func TestCacheDecayAtLaterDecisionTime(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	c := &recipient.Counters{Topics: map[string]float64{"efficacy": 3, "safety": 0.25}}
	c.Engagement[arbiter.Email] = 5
	c.Engagement[arbiter.SMS] = 1.5
	c.Sent[arbiter.Email] = 2
	c.LastContact[arbiter.Email] = t0
	c.LastEngagement = t0.Add(-time.Hour)
	item := recipient.ImportItem{
		Profile: hcpProfile("hcp-1"), Counters: c,
		Consent: []consent.Record{optIn(arbiter.Email, arbiter.Promotional, t0)}, ConsentComplete: true,
	}
	if err := f.writer.Import(ctx, []recipient.ImportItem{item}); err != nil {
		t.Fatal(err)
	}
	asOf := now() // Import stamps the counters with the store's clock
	settle(t, f.cache)

	t1 := asOf.Add(time.Hour)
	got, err := f.cache.Load(ctx, "hcp-1", t1) // the miss
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.store.Load(ctx, "hcp-1", t1)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffCounters(got.Counters, want.Counters); d != "" {
		t.Errorf("the miss at t1: %s", d)
	}
	if got.Counters.Engagement[arbiter.Email] >= 5 {
		t.Errorf("email engagement at t1 = %v, want it decayed from 5", got.Counters.Engagement[arbiter.Email])
	}

	tests := []struct {
		name string
		at   time.Time
	}{
		{"t1 again", t1},
		{"a millisecond later", t1.Add(time.Millisecond)},
		{"a half-life later", t1.Add(halfLife)},
		{"three half-lives and a fraction of a millisecond later", t1.Add(3*halfLife + 456789*time.Nanosecond)},
		{"a day later, in another time zone", t1.Add(day).In(time.FixedZone("UTC+5", 5*3600))},
		{"at the counters' time", asOf},
		{"before the counters' time", asOf.Add(-day)},
		{"zero: as stored", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hits, before := f.cache.Stats().Hits, f.hook.N()
			got, err := f.cache.Load(ctx, "hcp-1", tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if n := f.hook.N() - before; n != 0 || f.cache.Stats().Hits != hits+1 {
				t.Errorf("the load was not a hit (%d round trips)", n)
			}
			want, err := f.store.Load(ctx, "hcp-1", tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffCounters(got.Counters, want.Counters); d != "" {
				t.Errorf("cached: %s", d)
			}
		})
	}
}
