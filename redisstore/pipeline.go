package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter/recipient"
)

// loader coalesces concurrent decision loads into shared pipelines
// ("auto-pipelining"). Each Load still costs exactly one round trip, but
// when many decisions are in flight their reads travel together: one write
// and one read system call on each side for a whole batch instead of one
// per decision. Measured on Redis (bench/CLUSTER.md, redis-benchmark with
// Decide's command mix): 16.6 us of Redis CPU per decision sent alone, 8.8
// us in batches. End to end on the 2-core bench machine, where Redis is not
// the bottleneck, the difference is within the noise (bench/RESULTS.md).
// Under low load a batch holds one load and nothing waits: a worker sends
// whatever is queued the moment it is free.
//
// In cluster mode a batch is sent as one pipeline per master it touches
// (execPerNode), so an error or a hang on one node fails only the loads
// routed to it.
type loader struct {
	rdb       redis.UniversalClient
	queue     chan *loadCall
	maxBatch  int
	timeout   time.Duration
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// loadCall is one Load waiting for a batch: the read plan's commands for
// one recipient; or, when eval is set, one script call (a booking) that
// travels in the same batches.
type loadCall struct {
	store *Store
	id    string
	cmds  [planSize]redis.Cmder
	eval  *evalCall
	done  chan struct{}
}

// evalCall is a script call sent in a batch (loader.eval).
type evalCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

var loadCalls = sync.Pool{New: func() any { return &loadCall{done: make(chan struct{}, 1)} }}

func newLoader(rdb redis.UniversalClient, workers, maxBatch int, timeout time.Duration) *loader {
	l := &loader{
		rdb: rdb, queue: make(chan *loadCall, workers*maxBatch),
		maxBatch: maxBatch, timeout: timeout, stop: make(chan struct{}),
	}
	l.wg.Add(workers)
	for range workers {
		go l.run()
	}
	return l
}

func (l *loader) close() {
	l.closeOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// load reads recipient id's read plan in the next batch and decodes it.
// The caller may give up (ctx done) while the batch is in flight; its call
// is then left to the garbage collector rather than reused.
func (l *loader) load(ctx context.Context, s *Store, id string, at time.Time) (*recipient.State, error) {
	// A caller that has given up already sends nothing (select would
	// otherwise pick the queue or the context at random).
	if err := ctx.Err(); err != nil {
		return nil, storageErr("load", err)
	}
	c := loadCalls.Get().(*loadCall)
	c.store, c.id = s, id
	select {
	case l.queue <- c:
	case <-ctx.Done():
		c.store = nil
		loadCalls.Put(c)
		return nil, storageErr("load", ctx.Err())
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, storageErr("load", ctx.Err())
	}
	st, err := s.decodePlan(id, &c.cmds, at)
	c.store, c.cmds = nil, [planSize]redis.Cmder{}
	loadCalls.Put(c)
	return st, err
}

// eval runs script in the next batch, as EVALSHA; when Redis does not
// have the script (a restart emptied its cache), it is sent whole, alone.
func (l *loader) eval(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	if err := ctx.Err(); err != nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	c := &loadCall{eval: &evalCall{script: script, keys: keys, args: args}, done: make(chan struct{}, 1)}
	select {
	case l.queue <- c:
	case <-ctx.Done():
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(ctx.Err())
		return cmd
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(ctx.Err())
		return cmd
	}
	if redis.HasErrorPrefix(c.eval.cmd.Err(), "NOSCRIPT") {
		return script.Run(ctx, l.rdb, keys, args...)
	}
	return c.eval.cmd
}

func (l *loader) run() {
	defer l.wg.Done()
	batch := make([]*loadCall, 0, l.maxBatch)
	for {
		select {
		case c := <-l.queue:
			batch = append(batch[:0], c)
		case <-l.stop:
			return
		}
	fill:
		for len(batch) < l.maxBatch {
			select {
			case c := <-l.queue:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		l.exec(batch)
	}
}

func (l *loader) exec(batch []*loadCall) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if cc, ok := l.rdb.(*redis.ClusterClient); ok && len(batch) > 1 {
		l.execPerNode(ctx, cc, batch)
	} else {
		l.execOne(ctx, batch)
	}
	for _, c := range batch {
		c.done <- struct{}{}
	}
}

// execOne sends the batch in one pipeline. Errors are per command.
func (l *loader) execOne(ctx context.Context, batch []*loadCall) {
	pipe := l.rdb.Pipeline()
	for _, c := range batch {
		if c.eval != nil {
			c.eval.cmd = c.eval.script.EvalSha(ctx, pipe, c.eval.keys, c.eval.args...)
			continue
		}
		c.store.queuePlan(ctx, pipe, c.id, &c.cmds)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
}

// execPerNode sends one pipeline per master, side by side. A single
// cluster pipeline would also be split by node, but when one node hangs
// and the batch's deadline cuts go-redis's retries, go-redis marks every
// command of the pipeline with the timeout, including the answers healthy
// nodes already gave: a hung master would fail decisions for HCPs on the
// others. Separate pipelines confine it to its own HCPs. Each is still a
// cluster pipeline, so MOVED and ASK redirects are followed as usual.
func (l *loader) execPerNode(ctx context.Context, cc *redis.ClusterClient, batch []*loadCall) {
	groups := map[*redis.Client][]*loadCall{}
	for _, c := range batch {
		key := ""
		if c.eval != nil {
			key = c.eval.keys[0]
		} else {
			key = c.store.key(c.id, suffixProfile)
		}
		node, err := cc.MasterForKey(ctx, key)
		if err != nil {
			node = nil // unknown slot owner: let the cluster pipeline route it
		}
		groups[node] = append(groups[node], c)
	}
	if len(groups) == 1 {
		l.execOne(ctx, batch)
		return
	}
	var wg sync.WaitGroup
	for _, calls := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.execOne(ctx, calls)
		}()
	}
	wg.Wait()
}
