package hcpcache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
)

// A Cache keeps recently read recipients' state in the server's memory, so
// that a decision for a recipient read recently costs no Redis read. It
// wraps a Loader (the storage adapter's) and is one itself. It must never
// serve consent older than a change acknowledged before the decision
// started, whichever server acknowledged it.
//
// How it stays exact:
//
//   - One dedicated RESP3 connection turns on Redis's key tracking in
//     broadcast mode for the store's key prefix (CLIENT TRACKING ON BCAST
//     PREFIX). Every write to any of an HCP's keys, by any client, makes
//     Redis push an "invalidate" message naming the key on that connection,
//     before it replies to the writer.
//   - Before a decision uses a cached entry it waits for a barrier: a PING
//     sent on the tracking connection after the decision started. Redis
//     answers it after every invalidation it had queued for the connection,
//     and the reader applies messages in order, so when the PONG arrives
//     every write acknowledged before the decision started has evicted its
//     HCP. One PING serves every decision that arrived while the previous
//     one was in flight, so under load a barrier costs Redis almost nothing;
//     each decision still waits one round trip, as it did for its read.
//   - A miss needs no barrier: its read is fresh. It reserves its slot
//     before reading; an invalidation that arrives after that (for a write
//     before or after the read) removes the reservation, and the value read
//     is then not cached. So each decision is one round trip: the barrier's
//     or the read's.
//   - If the tracking connection fails, invalidations may have been lost:
//     the whole cache is dropped, barriers fail (decisions read Redis
//     directly) until a new connection has tracking on, and the cache is
//     dropped again before it is used.
//
// It needs a single Redis (not a cluster: one tracking connection per master
// would be needed, not built) that supports RESP3 and tracking (Redis 6+).
// The keys it must hear about are those of the read plan (Options.KeyPrefix
// and Suffixes, from redisstore.Store.ReadKeys): writes to a recipient's
// other keys (the ledger, the event history) leave its entry alone.

// cacheShards spreads the cache's locks; a power of two.
const cacheShards = 64

var errCacheDown = errors.New("hcpcache: tracking connection down")

// Loader loads a recipient's state in one round trip (decision.Loader). A
// zero time asks for the counters as stored (Counters.AsOf).
type Loader interface {
	Load(ctx context.Context, id string, at time.Time) (*recipient.State, error)
}

// Cache is a Loader that keeps recently loaded recipients. It is safe for
// concurrent use; Close stops it.
type Cache struct {
	inner       Loader
	halfLife    time.Duration
	dial        func(ctx context.Context) (net.Conn, error)
	user, pass  string
	trackPrefix string
	// watched are the key suffixes (after the HCP's "}") of the hashes the
	// cache holds; writes to an HCP's other keys (the ledger, the event
	// history) leave its entry alone.
	watched  []string
	perShard int
	seed     maphash.Seed
	shards   [cacheShards]cacheShard

	// gen changes whenever the tracking connection is lost or replaced; a
	// fill of a slot reserved under another generation is dropped.
	gen atomic.Uint64
	// tracking is whether the tracking connection is up. It changes only
	// under mu, and the decision path reads it without the lock: while
	// tracking is down, decisions do not use the cache.
	tracking atomic.Bool

	mu       sync.Mutex // guards everything below
	conn     net.Conn
	pingSent time.Time // when the PING in flight was started (its write follows, outside mu)
	// pingTimeout: a PING unanswered this long means the connection (or
	// Redis) is stuck; the cache is then given up as if the connection had
	// failed, so that decisions fall back to reading Redis and its own
	// deadlines instead of waiting on a barrier that may never pass.
	pingTimeout time.Duration
	next        *pingWait // waiting for a PING not yet sent; nil: nobody
	inflight    *pingWait // waiting for the PING in flight; nil: none in flight
	closed      bool
	done        chan struct{}
	wg          sync.WaitGroup
	opts        Options

	stats cacheCounters
}

// pingWait is what the decisions waiting for one PING share: done is
// closed when its PONG arrives, or when the connection is given up, and
// err is set before that.
type pingWait struct {
	done chan struct{}
	err  error
}

// pingCommand is PING in RESP.
var pingCommand = []byte("*1\r\n$4\r\nPING\r\n")

// cacheCounters count what the cache did, for Stats.
type cacheCounters struct {
	hits, misses, bypassed, invalidations, losses atomic.Uint64
}

// Stats is what the cache has done since it was made.
type Stats struct {
	// Hits are loads served from the cache (after the barrier).
	Hits uint64
	// Misses are loads that read Redis for an HCP the cache did not hold
	// (unknown HCPs and failed reads included); a successful read is kept.
	Misses uint64
	// Bypassed are loads that read Redis without the cache because
	// tracking was down (or was lost while they waited for the barrier).
	Bypassed uint64
	// Invalidations are HCPs dropped because one of their cached hashes
	// was written.
	Invalidations uint64
	// Losses are tracking connections lost or given up (each drops the
	// whole cache until the connection is back).
	Losses uint64
	// Entries is how many HCPs (and reserved slots) the cache holds now.
	Entries int
	// Up reports whether the tracking connection is up, so that the cache
	// is in use.
	Up bool
}

// Stats reports the cache's counters.
func (c *Cache) Stats() Stats {
	st := Stats{
		Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(), Bypassed: c.stats.bypassed.Load(),
		Invalidations: c.stats.invalidations.Load(), Losses: c.stats.losses.Load(),
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		st.Entries += len(sh.m)
		sh.mu.RUnlock()
	}
	st.Up = c.tracking.Load()
	return st
}

// Options configure a Cache.
type Options struct {
	// Dial opens a connection to the single Redis the Loader reads (the
	// tracking connection); Username and Password authenticate it.
	Dial               func(ctx context.Context) (net.Conn, error)
	Username, Password string
	// KeyPrefix and Suffixes name the keys the Loader reads: KeyPrefix,
	// the recipient id, "}" and a suffix (redisstore.Store.ReadKeys).
	KeyPrefix string
	Suffixes  []string
	// HalfLife is the half-life of the Loader's counters
	// (redisstore.Store.HalfLife): a cached state is decayed to each
	// decision's time with it.
	HalfLife time.Duration
	// MaxHCPs bounds how many recipients are kept (at least 1), in 64
	// shards of max(1, MaxHCPs/64) each: the bound is rounded down to a
	// multiple of 64, and is at least 64. Past it, an arbitrary entry of
	// the shard makes room.
	MaxHCPs int
	// PingTimeout: a barrier PING unanswered this long means the
	// connection (or Redis) is stuck; the cache is then given up as if the
	// connection had failed (default 1s).
	PingTimeout time.Duration
	// OnLoss, if set, is called when the tracking connection is lost (the
	// cache is then bypassed until it is back); OnConnect each time it is
	// (re)established, the first time included. Both run on the cache's own
	// goroutines and must not block.
	OnLoss    func(error)
	OnConnect func()
}

// trackingName is the tracking connection's client name (CLIENT LIST).
const trackingName = "arbiter-hcp-cache"

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*cacheEntry
}

// cacheEntry is a reserved slot (st nil) or a recipient's state as stored
// (counters as of their AsOf). An
// entry never changes once it is in a shard's map (fill puts a new one in
// place of the slot), so readers need the lock only to find it; what st
// holds is read by decisions concurrently and never modified.
type cacheEntry struct {
	gen uint64
	st  *recipient.State
}

// New returns a Cache in front of inner. It connects the tracking
// connection now and fails if Redis cannot track (a server without RESP3
// or CLIENT TRACKING); after that, a lost connection is re-established in
// the background. The caller must not give it a Redis Cluster or a
// Sentinel-managed Redis: the one tracking connection would not hear of
// writes on other nodes, or follow a failover.
func New(ctx context.Context, inner Loader, o Options) (*Cache, error) {
	switch {
	case inner == nil:
		return nil, errors.New("hcpcache: nil loader")
	case o.Dial == nil:
		return nil, errors.New("hcpcache: no dialer for the tracking connection")
	case o.KeyPrefix == "" || len(o.Suffixes) == 0:
		return nil, errors.New("hcpcache: no keys to track")
	case o.HalfLife <= 0:
		return nil, errors.New("hcpcache: the half-life must be positive")
	case o.MaxHCPs < 1:
		return nil, errors.New("hcpcache: size must be at least 1")
	case o.PingTimeout < 0:
		return nil, errors.New("hcpcache: the ping timeout must not be negative")
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = time.Second
	}
	c := &Cache{
		inner:       inner,
		halfLife:    o.HalfLife,
		dial:        o.Dial,
		user:        o.Username,
		pass:        o.Password,
		trackPrefix: o.KeyPrefix,
		watched:     slices.Clone(o.Suffixes),
		perShard:    max(1, o.MaxHCPs/cacheShards),
		seed:        maphash.MakeSeed(),
		done:        make(chan struct{}),
		pingTimeout: o.PingTimeout,
		opts:        o,
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheEntry)
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// connect opens a tracking connection and, on success, makes it current.
func (c *Cache) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return fmt.Errorf("hcpcache: connect: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	hello := []string{"HELLO", "3", "SETNAME", trackingName}
	if c.pass != "" {
		user := c.user
		if user == "" {
			user = "default"
		}
		hello = append(hello, "AUTH", user, c.pass)
	}
	for _, cmd := range [][]string{hello, {"CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", c.trackPrefix}} {
		err := writeCommand(w, cmd...)
		var v respValue
		if err == nil {
			v, err = readRESP(r)
		}
		if err == nil && v.kind == '-' {
			err = errors.New(v.str)
		}
		if err != nil {
			conn.Close()
			return fmt.Errorf("hcpcache: %s: %w", strings.Join(cmd[:2], " "), err)
		}
	}
	conn.SetDeadline(time.Time{})

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return errors.New("hcpcache: closed")
	}
	// Anything cached before this connection tracked may have missed an
	// invalidation.
	c.gen.Add(1)
	c.dropAll()
	c.conn = conn
	c.tracking.Store(true)
	gen := c.gen.Load()
	c.wg.Add(2)
	go c.read(r, gen)
	go c.watch(gen)
	if c.opts.OnConnect != nil {
		go c.opts.OnConnect()
	}
	return nil
}

// read applies what the tracking connection receives, in order.
func (c *Cache) read(r *bufio.Reader, gen uint64) {
	defer c.wg.Done()
	for {
		v, err := readRESP(r)
		if err != nil {
			c.fail(gen, err)
			return
		}
		switch v.kind {
		case '>':
			if len(v.elems) == 2 && v.elems[0].str == "invalidate" {
				keys := v.elems[1]
				if keys.null {
					c.dropAll() // FLUSHALL, FLUSHDB
					continue
				}
				for _, k := range keys.elems {
					c.invalidate(k.str)
				}
			}
		case '+':
			c.pong(gen)
		case '-':
			c.fail(gen, errors.New(v.str))
			return
		}
	}
}

// watch gives up the connection of generation gen when a PING stays
// unanswered longer than pingTimeout. It ends with that generation.
func (c *Cache) watch(gen uint64) {
	defer c.wg.Done()
	tick := time.NewTicker(max(c.pingTimeout/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		if c.gen.Load() != gen || !c.tracking.Load() {
			c.mu.Unlock()
			return
		}
		if c.inflight != nil && time.Since(c.pingSent) > c.pingTimeout {
			c.failLocked(gen, fmt.Errorf("PING unanswered for %v", c.pingTimeout))
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// barrier returns once every invalidation Redis queued before the call has
// been applied, or an error (connection down, ctx done).
func (c *Cache) barrier(ctx context.Context) error {
	c.mu.Lock()
	if !c.tracking.Load() {
		c.mu.Unlock()
		return errCacheDown
	}
	if c.next == nil {
		c.next = &pingWait{done: make(chan struct{})}
	}
	w := c.next
	send := c.inflight == nil
	if send {
		c.startPingLocked()
	}
	conn, gen := c.conn, c.gen.Load()
	c.mu.Unlock()
	if send {
		c.sendPing(conn, gen)
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startPingLocked makes the waiters for the next PING those of the PING in
// flight. The caller then sends it with sendPing, after unlocking mu (the
// write is a system call, and decisions would queue for mu meanwhile), and
// must do so whatever happens: until that PING is answered, or the
// connection given up, no other PING starts.
func (c *Cache) startPingLocked() {
	c.inflight, c.next = c.next, nil
	c.pingSent = time.Now()
}

// sendPing writes a PING on conn, the connection of generation gen. PINGs
// go out one at a time: the next starts only when this one's PONG has
// come, so after its bytes reached Redis.
func (c *Cache) sendPing(conn net.Conn, gen uint64) {
	conn.SetWriteDeadline(time.Now().Add(c.pingTimeout))
	if _, err := conn.Write(pingCommand); err != nil {
		c.fail(gen, err)
	}
}

// pong releases the decisions waiting for the PING in flight, and sends the
// next PING if any are waiting for one.
func (c *Cache) pong(gen uint64) {
	c.mu.Lock()
	if c.gen.Load() != gen || c.inflight == nil {
		c.mu.Unlock()
		return
	}
	close(c.inflight.done)
	c.inflight = nil
	send := c.next != nil
	if send {
		c.startPingLocked()
	}
	conn := c.conn
	c.mu.Unlock()
	if send {
		c.sendPing(conn, gen)
	}
}

func (c *Cache) fail(gen uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(gen, err)
}

// failLocked gives up the connection of generation gen: waiters fail, the
// cache is dropped and a reconnect starts.
func (c *Cache) failLocked(gen uint64, err error) {
	if c.gen.Load() != gen || !c.tracking.Load() {
		return
	}
	c.tracking.Store(false)
	c.gen.Add(1)
	c.dropAll()
	c.conn.Close()
	if !c.closed {
		c.stats.losses.Add(1)
	}
	for _, w := range [...]*pingWait{c.inflight, c.next} {
		if w != nil {
			w.err = errCacheDown
			close(w.done)
		}
	}
	c.inflight, c.next = nil, nil
	if c.closed {
		return
	}
	if c.opts.OnLoss != nil {
		go c.opts.OnLoss(err)
	}
	c.wg.Add(1)
	go c.reconnect()
}

// reconnect retries the tracking connection with backoff until it is back
// or the cache is closed.
func (c *Cache) reconnect() {
	defer c.wg.Done()
	wait := 50 * time.Millisecond
	for {
		select {
		case <-c.done:
			return
		case <-time.After(wait):
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := c.connect(ctx)
		cancel()
		if err == nil {
			return
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Close stops the cache and its tracking connection; a second call does
// nothing. It does not close the Loader.
func (c *Cache) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	if c.tracking.Load() {
		c.failLocked(c.gen.Load(), errors.New("closed"))
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Cache) shard(hcpID string) *cacheShard {
	return &c.shards[maphash.String(c.seed, hcpID)&(cacheShards-1)]
}

// lookup returns the cached state of hcpID, or nil.
func (c *Cache) lookup(hcpID string) *recipient.State {
	sh := c.shard(hcpID)
	sh.mu.RLock()
	e := sh.m[hcpID]
	sh.mu.RUnlock()
	if e == nil {
		return nil
	}
	return e.st
}

// reserve puts an empty slot for hcpID, to be filled by fill after a read
// that starts after this call. A slot another read reserved is replaced:
// that read's result is then not cached, which is only a lost chance.
func (c *Cache) reserve(hcpID string, gen uint64) *cacheEntry {
	sh := c.shard(hcpID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, present := sh.m[hcpID]; !present && len(sh.m) >= c.perShard {
		for k := range sh.m { // an arbitrary victim
			delete(sh.m, k)
			break
		}
	}
	e := &cacheEntry{gen: gen}
	sh.m[hcpID] = e
	return e
}

// fill stores a read's result in the slot reserve returned, unless an
// invalidation or a connection loss has removed the slot since.
func (c *Cache) fill(hcpID string, e *cacheEntry, st *recipient.State) {
	sh := c.shard(hcpID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[hcpID] != e || c.gen.Load() != e.gen {
		return
	}
	sh.m[hcpID] = &cacheEntry{gen: e.gen, st: st}
}

// release removes the slot reserve returned, if it is still there:
// a read that failed or found no HCP leaves no slot taking room.
func (c *Cache) release(hcpID string, e *cacheEntry) {
	sh := c.shard(hcpID)
	sh.mu.Lock()
	if sh.m[hcpID] == e {
		delete(sh.m, hcpID)
	}
	sh.mu.Unlock()
}

// invalidate drops the HCP a written key belongs to, if the key is one of
// the hashes the cache holds.
func (c *Cache) invalidate(key string) {
	rest, ok := strings.CutPrefix(key, c.trackPrefix)
	if !ok {
		return
	}
	hcpID, suffix, ok := strings.Cut(rest, "}")
	if !ok || !slices.Contains(c.watched, suffix) {
		return
	}
	sh := c.shard(hcpID)
	sh.mu.Lock()
	if _, held := sh.m[hcpID]; held {
		delete(sh.m, hcpID)
		c.stats.invalidations.Add(1)
	}
	sh.mu.Unlock()
}

// dropAll empties the cache, reservations included.
func (c *Cache) dropAll() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
}

// Load returns recipient id's state with its counters decayed to at,
// through the cache: a hit is served from memory once the barrier has
// passed, a miss loads through the inner Loader (as stored) and keeps the
// result. While tracking is down the inner Loader serves every load.
//
// Either way a decision costs one round trip: a hit waits for the barrier
// (a PING shared with the other decisions in flight), a miss only for its
// read, which is fresh by itself. The slot a miss reserves before reading
// is removed by the invalidation of any write the read may not have seen,
// and an entry filled while tracking is down is dropped when it is back.
func (c *Cache) Load(ctx context.Context, id string, at time.Time) (*recipient.State, error) {
	if !c.tracking.Load() {
		// Nothing held now could be trusted, and nothing read now kept
		// (the reconnection empties the cache): read Redis directly.
		c.stats.bypassed.Add(1)
		return c.inner.Load(ctx, id, at)
	}
	if c.lookup(id) != nil {
		// Held, unless a write acknowledged before now is still to be
		// heard of: the barrier settles that.
		if err := c.barrier(ctx); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, fmt.Errorf("hcpcache: load: %w: %w", arbiter.ErrUnavailable, ctxErr)
			}
			c.stats.bypassed.Add(1)
			return c.inner.Load(ctx, id, at)
		}
		if st := c.lookup(id); st != nil {
			c.stats.hits.Add(1)
			return c.at(st, at), nil
		}
	}
	c.stats.misses.Add(1)
	slot := c.reserve(id, c.gen.Load())
	st, err := c.inner.Load(ctx, id, time.Time{})
	if err != nil {
		c.release(id, slot)
		return nil, err
	}
	c.fill(id, slot, st)
	return c.at(st, at), nil
}

// at returns a copy of the cached st with its counters decayed to at. The
// copy shares st's maps and consent records, which nothing modifies.
func (c *Cache) at(st *recipient.State, at time.Time) *recipient.State {
	out := *st
	if !at.IsZero() {
		// As the store's Load does: counters move in whole milliseconds,
		// and Counters.AsOf is then at in milliseconds, in UTC.
		at = time.UnixMilli(at.UnixMilli()).UTC()
	}
	out.Counters = st.Counters.DecayTo(at, c.halfLife)
	return &out
}
