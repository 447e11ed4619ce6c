package hcpcache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
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
	"github.com/arbiter-nba/arbiter/redisstore"
)

// redisAddr is the single redis-server of this package's tests: the cache
// tracks one Redis, never a cluster.
var redisAddr string

func TestMain(m *testing.M) { os.Exit(redistest.Main(m, &redisAddr)) }

const (
	day      = 24 * time.Hour
	halfLife = 30 * day
	// waitFor bounds every wait of these tests: an event that has not
	// happened by then fails the test.
	waitFor = 10 * time.Second
)

// t0 is the start of every test's clock; the stores' clock is t0+day, so
// that changes can be captured after t0.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func now() time.Time { return t0.Add(day) }

// fixture is a Cache in front of a redisstore.Store, and, on a client of
// its own, a second Store with the same prefix: another server writing the
// same recipients.
type fixture struct {
	cache *Cache
	// store is the cache's Loader; hook counts its client's round trips.
	store *redisstore.Store
	hook  *redistest.RoundTrips
	// writer is the other server's store, other its client (also used for
	// INFO, CLIENT KILL, CLIENT PAUSE and raw writes).
	writer *redisstore.Store
	other  *redis.Client
	// keyPrefix is what every key of the store starts with, before the
	// recipient id (ReadKeys).
	keyPrefix string
	dialer    *dialer
	lost      chan error
	connected chan struct{}
}

// fixtureOptions change what newFixture builds.
type fixtureOptions struct {
	pingTimeout time.Duration // 0: the default
	maxHCPs     int           // 0: 1000
}

func newFixture(t *testing.T, fo fixtureOptions) *fixture {
	t.Helper()
	rdb, prefix := redistest.Client(t, redisAddr)
	f := &fixture{hook: &redistest.RoundTrips{}}
	rdb.AddHook(f.hook)
	// Dial now, for commands and for pipelines (go-redis pools them
	// apart): a new connection's handshake would count as round trips.
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	var err error
	f.store, err = redisstore.New(rdb, redisstore.WithPrefix(prefix), redisstore.WithClock(now), redisstore.WithHalfLife(halfLife))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.store.Close)

	f.other = redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { f.other.Close() })
	f.writer, err = redisstore.New(f.other, redisstore.WithPrefix(prefix), redisstore.WithClock(now), redisstore.WithHalfLife(halfLife))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.writer.Close)

	// The tracking connection is dialled as cmd/arbiter dials it: with
	// the client's own dialer and address.
	opt := rdb.Options()
	f.dialer = newDialer(func(ctx context.Context) (net.Conn, error) { return opt.Dialer(ctx, opt.Network, opt.Addr) })
	keyPrefix, suffixes := f.store.ReadKeys()
	f.keyPrefix = keyPrefix
	f.lost, f.connected = make(chan error, 8), make(chan struct{}, 8)
	maxHCPs := fo.maxHCPs
	if maxHCPs == 0 {
		maxHCPs = 1000
	}
	f.cache, err = New(ctx, f.store, Options{
		Dial:        f.dialer.Dial,
		Username:    opt.Username,
		Password:    opt.Password,
		KeyPrefix:   keyPrefix,
		Suffixes:    suffixes,
		HalfLife:    f.store.HalfLife(),
		MaxHCPs:     maxHCPs,
		PingTimeout: fo.pingTimeout,
		OnLoss:      func(err error) { f.lost <- err },
		OnConnect:   func() { f.connected <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.cache.Close)
	// Run before Close (cleanups run last first): nothing stays held.
	t.Cleanup(f.dialer.releaseAll)
	receive(t, f.connected, "first tracking connection")
	return f
}

// key returns the key of recipient id with the given suffix (":p").
func (f *fixture) key(id, suffix string) string { return f.keyPrefix + id + "}" + suffix }

// receive returns the next value of ch, and fails the test if none comes
// within waitFor.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("no %s within %v", what, waitFor)
		panic("unreachable")
	}
}

// settle waits until the cache has heard of every write made so far. A miss
// does not wait for the barrier, so the invalidation of a write made just
// before it may still arrive after its read and drop the entry it filled:
// correct, but one more read than a test counting round trips expects.
func settle(t *testing.T, c *Cache) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.barrier(ctx); err != nil {
		t.Fatalf("barrier: %v", err)
	}
}

// dialer dials the tracking connection. A test can hold new dials (the
// cache then stays disconnected until it releases them), hold what the
// connections read (the cache then hears nothing: invalidations and PONGs
// wait), and find the address of the last connection, to kill it.
type dialer struct {
	dial func(ctx context.Context) (net.Conn, error)

	mu        sync.Mutex
	dialsHeld chan struct{} // not nil: dials wait until it is closed
	readsHeld chan struct{} // not nil: reads wait until it is closed
	last      net.Conn
	dials     int
}

func newDialer(dial func(ctx context.Context) (net.Conn, error)) *dialer {
	return &dialer{dial: dial}
}

func (d *dialer) Dial(ctx context.Context) (net.Conn, error) {
	d.mu.Lock()
	held := d.dialsHeld
	d.dials++
	d.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	conn, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	gc := &gatedConn{Conn: conn, d: d, closed: make(chan struct{})}
	d.mu.Lock()
	d.last = gc
	d.mu.Unlock()
	return gc, nil
}

// holdDials makes new dials wait until the returned function is called.
func (d *dialer) holdDials() (release func()) {
	ch := make(chan struct{})
	d.mu.Lock()
	d.dialsHeld = ch
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			if d.dialsHeld == ch {
				d.dialsHeld = nil
			}
			d.mu.Unlock()
			close(ch)
		})
	}
}

// holdReads makes what the tracking connections receive wait, once read
// from the socket, until the returned function is called.
func (d *dialer) holdReads() (release func()) {
	ch := make(chan struct{})
	d.mu.Lock()
	d.readsHeld = ch
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			if d.readsHeld == ch {
				d.readsHeld = nil
			}
			d.mu.Unlock()
			close(ch)
		})
	}
}

// releaseAll releases whatever is held.
func (d *dialer) releaseAll() {
	d.mu.Lock()
	dials, reads := d.dialsHeld, d.readsHeld
	d.dialsHeld, d.readsHeld = nil, nil
	d.mu.Unlock()
	for _, ch := range []chan struct{}{dials, reads} {
		if ch != nil {
			close(ch)
		}
	}
}

// lastAddr is the local address of the last tracking connection: the
// client address Redis knows it by.
func (d *dialer) lastAddr(t *testing.T) string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		t.Fatal("no tracking connection dialled")
	}
	return d.last.LocalAddr().String()
}

func (d *dialer) dialCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials
}

// gatedConn is a tracking connection whose reads the dialer can hold.
type gatedConn struct {
	net.Conn
	d         *dialer
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.d.mu.Lock()
	held := c.d.readsHeld
	c.d.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-c.closed:
		}
	}
	return n, err
}

func (c *gatedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// killTracking closes the cache's tracking connection from the server's
// side (CLIENT KILL of its address only: other tests' connections, closed
// or not, are left alone).
func killTracking(t *testing.T, f *fixture) {
	t.Helper()
	n, err := f.other.ClientKillByFilter(context.Background(), "ADDR", f.dialer.lastAddr(t)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("CLIENT KILL of the tracking connection killed %d clients, want 1", n)
	}
}

// pings returns how many PINGs the server has run (INFO commandstats). The
// tests of this package run one at a time and, once their fixture is
// made, their clients send none: a difference counts the cache's
// barriers.
func pings(t *testing.T, rdb *redis.Client) int64 {
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

func hcpProfile(id string) recipient.Profile {
	p := recipient.Profile{
		HCPID:      id,
		Specialty:  "oncology",
		Market:     "DE",
		Audience:   arbiter.HCP,
		Segment:    "scientific_first",
		TimeZone:   "Europe/Berlin",
		Attributes: map[string]float64{"decile": 7},
		UpdatedAt:  t0.Add(-day),
	}
	p.Addresses[arbiter.Email] = "addr-e-1"
	return p
}

func optIn(ch arbiter.Channel, purpose arbiter.Purpose, at time.Time) consent.Record {
	return consent.Record{
		Channel: ch, Purpose: purpose, Status: consent.OptIn,
		CapturedAt: at, Source: "veeva", CapturedBy: "crm-sync",
	}
}

// importHCPs imports recipients with an email opt-in and complete consent.
func importHCPs(t *testing.T, s *redisstore.Store, ids ...string) {
	t.Helper()
	items := make([]recipient.ImportItem, len(ids))
	for i, id := range ids {
		items[i] = recipient.ImportItem{
			Profile:         hcpProfile(id),
			Consent:         []consent.Record{optIn(arbiter.Email, arbiter.Promotional, t0)},
			ConsentComplete: true,
			CapturedBy:      "test",
		}
	}
	if err := s.Import(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

// emailStatus returns the status of the email/promotional record l loads.
func emailStatus(t *testing.T, l Loader, id string) consent.Status {
	t.Helper()
	st, err := l.Load(context.Background(), id, t0)
	if err != nil {
		t.Fatalf("Load(%s): %v", id, err)
	}
	return emailOf(st)
}

// emailOf returns the status of st's email/promotional record
// (StatusUnspecified: none).
func emailOf(st *recipient.State) consent.Status {
	for _, r := range st.Consent.Records {
		if r.Channel == arbiter.Email && r.Purpose == arbiter.Promotional {
			return r.Status
		}
	}
	return consent.StatusUnspecified
}

// setEmail changes id's email/promotional consent through s.
func setEmail(t *testing.T, s *redisstore.Store, id string, status consent.Status, capturedAt time.Time) {
	t.Helper()
	r := optIn(arbiter.Email, arbiter.Promotional, capturedAt)
	r.Status = status
	if _, err := s.SetConsent(context.Background(), id, r, false); err != nil {
		t.Fatal(err)
	}
}

// diffCounters describes how got differs from want, "" when they are
// identical: floats bit for bit, times as instants.
func diffCounters(got, want recipient.Counters) string {
	var d []string
	if !got.AsOf.Equal(want.AsOf) {
		d = append(d, fmt.Sprintf("as of %v, want %v", got.AsOf, want.AsOf))
	}
	for ch := range arbiter.NumChannels {
		name := arbiter.Channel(ch).String()
		if !sameFloat(got.Engagement[ch], want.Engagement[ch]) {
			d = append(d, fmt.Sprintf("engagement[%s] = %v, want %v", name, got.Engagement[ch], want.Engagement[ch]))
		}
		if !sameFloat(got.Sent[ch], want.Sent[ch]) {
			d = append(d, fmt.Sprintf("sent[%s] = %v, want %v", name, got.Sent[ch], want.Sent[ch]))
		}
		if !got.LastContact[ch].Equal(want.LastContact[ch]) {
			d = append(d, fmt.Sprintf("last contact[%s] = %v, want %v", name, got.LastContact[ch], want.LastContact[ch]))
		}
	}
	if !got.LastEngagement.Equal(want.LastEngagement) {
		d = append(d, fmt.Sprintf("last engagement = %v, want %v", got.LastEngagement, want.LastEngagement))
	}
	if len(got.Topics) != len(want.Topics) {
		d = append(d, fmt.Sprintf("topics = %v, want %v", got.Topics, want.Topics))
	} else {
		for k, w := range want.Topics {
			if g, ok := got.Topics[k]; !ok || !sameFloat(g, w) {
				d = append(d, fmt.Sprintf("topics[%s] = %v, want %v", k, g, w))
			}
		}
	}
	return strings.Join(d, "; ")
}

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// loaderFunc is a Loader made of a function.
type loaderFunc func(ctx context.Context, id string, at time.Time) (*recipient.State, error)

func (f loaderFunc) Load(ctx context.Context, id string, at time.Time) (*recipient.State, error) {
	return f(ctx, id, at)
}

var errNoLoad = errors.New("no load expected")
