package features

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

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter/consent"
)

// The HCP cache keeps recently read HCPs' profile and consent hashes in the
// server's memory, so that a decision for an HCP read recently costs no
// Redis read. It must never serve consent older than a change acknowledged
// before the decision started, whichever server acknowledged it.
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

// cacheShards spreads the cache's locks; a power of two.
const cacheShards = 64

var errCacheDown = errors.New("features: HCP cache: tracking connection down")

// cachePingTimeout is hcpCache.pingTimeout (a variable for tests).
var cachePingTimeout = time.Second

type hcpCache struct {
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
	opts        CacheOptions

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

// cacheCounters count what the cache did, for CacheStats.
type cacheCounters struct {
	hits, misses, bypassed, invalidations, losses atomic.Uint64
}

// CacheStats is what the HCP cache has done since it was enabled.
type CacheStats struct {
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

// CacheStats reports the HCP cache's counters; ok is false when the cache
// is not enabled.
func (s *Store) CacheStats() (st CacheStats, ok bool) {
	c := s.cache
	if c == nil {
		return CacheStats{}, false
	}
	st = CacheStats{
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
	return st, true
}

// CacheOptions configure the HCP cache.
type CacheOptions struct {
	// MaxHCPs bounds how many HCPs are kept (at least 1), in 64 shards of
	// max(1, MaxHCPs/64) each: the bound is rounded down to a multiple of
	// 64, and is at least 64. Past it, an arbitrary entry of the shard
	// makes room.
	MaxHCPs int
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

// cacheEntry is a reserved slot (st nil) or an HCP's decoded hashes. An
// entry never changes once it is in a shard's map (fill puts a new one in
// place of the slot), so readers need the lock only to find it; what st
// holds is read by decisions concurrently and never modified.
type cacheEntry struct {
	gen uint64
	st  *stable
}

// EnableCache turns the HCP cache on. It connects the tracking connection
// now and fails if Redis cannot track (a Redis Cluster client, a server
// without RESP3 or CLIENT TRACKING); after that, a lost connection is
// re-established in the background. Call it before the Store is used;
// Close stops it.
func (s *Store) EnableCache(ctx context.Context, o CacheOptions) error {
	if o.MaxHCPs < 1 {
		return errors.New("features: HCP cache: size must be at least 1")
	}
	client, ok := s.rdb.(*redis.Client)
	if !ok {
		return fmt.Errorf("features: HCP cache: needs a single Redis, not %T", s.rdb)
	}
	opt := client.Options()
	// A Sentinel client (go-redis names its address so) moves its data
	// connections to a new master on failover; the tracking connection
	// would stay on the old one, answering barriers while the writes it
	// must hear about go elsewhere.
	if opt.Addr == "FailoverClient" {
		return errors.New("features: HCP cache: not with a Sentinel failover client (the tracking connection would not follow a failover)")
	}
	c := newHCPCache(s.prefix+":{", o.MaxHCPs,
		strings.TrimPrefix(s.profileKey(""), s.prefix+":{}"),
		strings.TrimPrefix(consent.Key(s.prefix, ""), s.prefix+":{}"))
	c.dial = func(ctx context.Context) (net.Conn, error) { return opt.Dialer(ctx, opt.Network, opt.Addr) }
	c.user, c.pass, c.opts = opt.Username, opt.Password, o
	if err := c.connect(ctx); err != nil {
		return err
	}
	s.cache = c
	return nil
}

// newHCPCache returns an empty, unconnected cache for keys starting with
// trackPrefix, bounded to about maxHCPs entries, that an HCP's entry leaves
// when one of its keys ending in a watched suffix is written.
func newHCPCache(trackPrefix string, maxHCPs int, watched ...string) *hcpCache {
	c := &hcpCache{
		trackPrefix: trackPrefix,
		watched:     watched,
		perShard:    max(1, maxHCPs/cacheShards),
		seed:        maphash.MakeSeed(),
		done:        make(chan struct{}),
		pingTimeout: cachePingTimeout,
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheEntry)
	}
	return c
}

// connect opens a tracking connection and, on success, makes it current.
func (c *hcpCache) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return fmt.Errorf("features: HCP cache: connect: %w", err)
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
			return fmt.Errorf("features: HCP cache: %s: %w", strings.Join(cmd[:2], " "), err)
		}
	}
	conn.SetDeadline(time.Time{})

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return errors.New("features: HCP cache: closed")
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
func (c *hcpCache) read(r *bufio.Reader, gen uint64) {
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
func (c *hcpCache) watch(gen uint64) {
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
func (c *hcpCache) barrier(ctx context.Context) error {
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
func (c *hcpCache) startPingLocked() {
	c.inflight, c.next = c.next, nil
	c.pingSent = time.Now()
}

// sendPing writes a PING on conn, the connection of generation gen. PINGs
// go out one at a time: the next starts only when this one's PONG has
// come, so after its bytes reached Redis.
func (c *hcpCache) sendPing(conn net.Conn, gen uint64) {
	conn.SetWriteDeadline(time.Now().Add(c.pingTimeout))
	if _, err := conn.Write(pingCommand); err != nil {
		c.fail(gen, err)
	}
}

// pong releases the decisions waiting for the PING in flight, and sends the
// next PING if any are waiting for one.
func (c *hcpCache) pong(gen uint64) {
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

func (c *hcpCache) fail(gen uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(gen, err)
}

// failLocked gives up the connection of generation gen: waiters fail, the
// cache is dropped and a reconnect starts.
func (c *hcpCache) failLocked(gen uint64, err error) {
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
func (c *hcpCache) reconnect() {
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

func (c *hcpCache) close() {
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

func (c *hcpCache) shard(hcpID string) *cacheShard {
	return &c.shards[maphash.String(c.seed, hcpID)&(cacheShards-1)]
}

// lookup returns the cached state of hcpID, or nil.
func (c *hcpCache) lookup(hcpID string) *stable {
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
func (c *hcpCache) reserve(hcpID string, gen uint64) *cacheEntry {
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
func (c *hcpCache) fill(hcpID string, e *cacheEntry, st *stable) {
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
func (c *hcpCache) release(hcpID string, e *cacheEntry) {
	sh := c.shard(hcpID)
	sh.mu.Lock()
	if sh.m[hcpID] == e {
		delete(sh.m, hcpID)
	}
	sh.mu.Unlock()
}

// invalidate drops the HCP a written key belongs to, if the key is one of
// the hashes the cache holds.
func (c *hcpCache) invalidate(key string) {
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
func (c *hcpCache) dropAll() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
}

// cached returns hcpID's decoded state through the cache, calling load
// (which reads Redis and decodes) on a miss. load returns nil and no error
// for what must not be cached (no such HCP, a legacy counter form); cached
// then returns nil too, and the caller has what load read. ok is false
// when the cache cannot be used now (tracking down): the caller reads
// Redis itself. Errors are load's, or the context's while waiting.
//
// Either way a decision costs one round trip: a hit waits for the barrier
// (a PING shared with the other decisions in flight), a miss only for its
// read, which is fresh by itself. The slot a miss reserves before reading
// is removed by the invalidation of any write the read may not have seen,
// and an entry filled while tracking is down is dropped when it is back.
func (c *hcpCache) cached(ctx context.Context, hcpID string, load func() (*stable, error)) (st *stable, ok bool, err error) {
	if !c.tracking.Load() {
		// Nothing held now could be trusted, and nothing read now kept
		// (the reconnection empties the cache): read Redis directly.
		c.stats.bypassed.Add(1)
		return nil, false, nil
	}
	if c.lookup(hcpID) != nil {
		// Held, unless a write acknowledged before now is still to be
		// heard of: the barrier settles that.
		if err := c.barrier(ctx); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, true, storageErr("load", ctxErr)
			}
			c.stats.bypassed.Add(1)
			return nil, false, nil
		}
		if st := c.lookup(hcpID); st != nil {
			c.stats.hits.Add(1)
			return st, true, nil
		}
	}
	c.stats.misses.Add(1)
	slot := c.reserve(hcpID, c.gen.Load())
	st, err = load()
	if err != nil || st == nil {
		c.release(hcpID, slot)
		return nil, true, err
	}
	c.fill(hcpID, slot, st)
	return st, true, nil
}
