package consent

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
)

// Store keeps consent in Redis: per recipient, the current state in a hash
// and every change in an append-only ledger (see encode.go for the layout).
// It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	clock  func() time.Time
	// replicas > 0: a write is acknowledged only once that many replicas
	// have it (WAIT), within replicaTimeout.
	replicas       int
	replicaTimeout time.Duration
}

type options struct {
	prefix         string
	clock          func() time.Time
	replicas       int
	replicaTimeout time.Duration
}

// Option configures a Store.
type Option func(*options)

// WithPrefix sets the prefix of every key (default "arbiter").
func WithPrefix(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}

// WithClock sets the clock that stamps ledger entries and the completeness
// marker (default time.Now).
func WithClock(clock func() time.Time) Option {
	return func(o *options) { o.clock = clock }
}

// WithReplicaAck makes every write wait until n replicas of the HCP's
// master have it (Redis WAIT on the connection that wrote), for at most
// timeout. Replication is asynchronous: without this, a consent change
// acknowledged just before its master dies can be missing on the promoted
// replica. When fewer replicas confirm in time, the write is reported as
// failed (arbiter.ErrUnavailable) although the master has it: the caller
// retries, and the retry is merged and ledgered as a repeat. Default 0 (no
// wait), for a Redis without replicas.
func WithReplicaAck(n int, timeout time.Duration) Option {
	return func(o *options) { o.replicas, o.replicaTimeout = n, timeout }
}

// NewStore returns a Store using rdb, which may be a single Redis, a Redis
// Cluster or miniredis.
func NewStore(rdb redis.UniversalClient, opts ...Option) *Store {
	o := options{prefix: "arbiter", clock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return &Store{rdb: rdb, prefix: o.prefix, clock: o.clock, replicas: o.replicas, replicaTimeout: o.replicaTimeout}
}

const (
	// maxSetMany bounds the records of one write, and so one script's run time.
	maxSetMany = 1000
	// maxHistoryLimit bounds one page of History.
	maxHistoryLimit = 1000
	// maxClockSkew is how far in the future of the server's clock a capture
	// time may be. A record dated later would stay "most recent" and shadow
	// every real change until then, a withdrawal included.
	maxClockSkew = 5 * time.Minute
)

//go:embed set.lua
var setLua string

var setScript = redis.NewScript(setLua)

// corruptReply is the error code set.lua replies with when a stored value
// does not decode.
const corruptReply = "CONSENTCORRUPT"

// Set stores one record for a recipient, and the completeness marker when
// markComplete is true. See SetMany.
func (s *Store) Set(ctx context.Context, hcpID string, r Record, markComplete bool) (LedgerEntry, error) {
	now := s.clock()
	if err := validate(hcpID, []Record{r}, func(int) string { return "record" }, now); err != nil {
		return LedgerEntry{}, err
	}
	entries, err := s.write(ctx, hcpID, []Record{r}, markComplete, now)
	if err != nil {
		return LedgerEntry{}, err
	}
	return entries[0], nil
}

// SetMany stores records for one recipient, atomically, and writes the
// completeness marker when markComplete is true (a bulk import passes true
// once the recipient's consent is loaded in full, even with no records).
//
// Each record becomes current for its scope unless a record captured later,
// or at the same time with a more restrictive status, is already current.
// Either way it is appended to the ledger, and the returned entries (one per
// record, in order, or a single marker-only entry with a zero Record when
// recs is empty) say whether it applied. Times are stored with millisecond
// precision, in UTC.
//
// Invalid input (an *arbiter.InvalidError naming "hcp_id" or
// "records[i].field") writes nothing. A Redis failure wraps
// arbiter.ErrUnavailable; an undecodable stored value, arbiter.ErrCorrupt.
// After an error other than invalid input the write may or may not have
// happened; repeating it is safe (the repeat is ledgered as not applied).
func (s *Store) SetMany(ctx context.Context, hcpID string, recs []Record, markComplete bool) ([]LedgerEntry, error) {
	now := s.clock()
	name := func(i int) string { return "records[" + strconv.Itoa(i) + "]" }
	if err := validate(hcpID, recs, name, now); err != nil {
		return nil, err
	}
	if len(recs) == 0 && !markComplete {
		return nil, nil
	}
	return s.write(ctx, hcpID, recs, markComplete, now)
}

// validate checks the recipient id and every record, naming record i's
// fields after name(i).
func validate(hcpID string, recs []Record, name func(int) string, now time.Time) error {
	e := &arbiter.InvalidError{}
	if hcpID == "" {
		e.Add("hcp_id", "is required")
	}
	if len(recs) > maxSetMany {
		e.Add("records", fmt.Sprintf("at most %d per call", maxSetMany))
		return e
	}
	for i := range recs {
		recs[i].check(e, name(i))
		if recs[i].CapturedAt.After(now.Add(maxClockSkew)) {
			e.Add(name(i)+".captured_at", "must not be in the future")
		}
	}
	return e.Err()
}

// write runs set.lua for valid records.
func (s *Store) write(ctx context.Context, hcpID string, recs []Record, markComplete bool, now time.Time) ([]LedgerEntry, error) {
	recordedAt := msTime(now.UnixMilli())
	mark := "0"
	if markComplete {
		mark = "1"
	}
	args := make([]any, 3, 3+4*len(recs))
	args[0], args[1], args[2] = recordedAt.UnixMilli(), mark, ""
	entries := make([]LedgerEntry, 0, max(len(recs), 1))
	for _, r := range recs {
		r = normalize(r)
		e := LedgerEntry{Record: r, RecordedAt: recordedAt, MarkedComplete: markComplete}
		ifApplied, ifNot, err := encodeLedger(e, false)
		if err != nil {
			return nil, fmt.Errorf("consent: set: encode ledger entry: %w", err)
		}
		args = append(args, fieldName(&r), fieldValue(&r), ifApplied, ifNot)
		entries = append(entries, e)
	}
	if len(recs) == 0 {
		e := LedgerEntry{RecordedAt: recordedAt, Applied: true, MarkedComplete: true}
		entry, _, err := encodeLedger(e, true)
		if err != nil {
			return nil, fmt.Errorf("consent: set: encode ledger entry: %w", err)
		}
		args[2] = entry
		entries = append(entries, e)
	}

	keys := []string{Key(s.prefix, hcpID), ledgerKey(s.prefix, hcpID)}
	var res []int64
	var err error
	if s.replicas > 0 {
		res, err = s.runReplicated(ctx, hcpID, keys, args)
	} else {
		res, err = setScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	}
	if err != nil {
		return nil, storageErr("set", err)
	}
	if len(res) != 2*len(entries) {
		return nil, fmt.Errorf("consent: set: script returned %d values for %d ledger entries", len(res), len(entries))
	}
	for i := range entries {
		entries[i].Seq = res[2*i] - 1
		entries[i].Applied = res[2*i+1] == 1
	}
	return entries, nil
}

// runReplicated runs set.lua and WAIT in one pipeline on the HCP's
// master, so that WAIT covers the connection's own write.
func (s *Store) runReplicated(ctx context.Context, hcpID string, keys []string, args []any) ([]int64, error) {
	node, ok := s.rdb.(*redis.Client)
	if cc, isCluster := s.rdb.(*redis.ClusterClient); isCluster {
		var err error
		if node, err = cc.MasterForKey(ctx, keys[0]); err != nil {
			return nil, err
		}
		ok = true
	}
	if !ok {
		return nil, fmt.Errorf("replica acknowledgement needs a single Redis or a Redis Cluster client, not %T", s.rdb)
	}
	var set *redis.Cmd
	var wait *redis.Cmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		set = setScript.Eval(ctx, p, keys, args...)
		wait = p.Do(ctx, "WAIT", s.replicas, s.replicaTimeout.Milliseconds())
		return nil
	})
	if err != nil {
		return nil, err
	}
	res, err := set.Int64Slice()
	if err != nil {
		return nil, err
	}
	got, err := wait.Int64()
	if err != nil {
		return nil, err
	}
	if got < int64(s.replicas) {
		return nil, fmt.Errorf("only %d of %d replicas confirmed the write in time", got, s.replicas)
	}
	return res, nil
}

// Get returns a recipient's current consent. A recipient with nothing
// stored gets an empty, incomplete State (which denies), not an error.
func (s *Store) Get(ctx context.Context, hcpID string) (State, error) {
	if hcpID == "" {
		return State{}, arbiter.Invalid("hcp_id", "is required")
	}
	fields, err := s.rdb.HGetAll(ctx, Key(s.prefix, hcpID)).Result()
	if err != nil {
		return State{}, storageErr("get", err)
	}
	st, err := decodeState(fields)
	if err != nil {
		return State{}, fmt.Errorf("consent: get: %w", err)
	}
	return st, nil
}

// History returns up to limit ledger entries of a recipient from offset, in
// the order they were appended, and the total number of entries.
func (s *Store) History(ctx context.Context, hcpID string, offset, limit int) ([]LedgerEntry, int64, error) {
	e := &arbiter.InvalidError{}
	if hcpID == "" {
		e.Add("hcp_id", "is required")
	}
	if offset < 0 {
		e.Add("offset", "must not be negative")
	}
	if limit < 1 || limit > maxHistoryLimit {
		e.Add("limit", fmt.Sprintf("must be between 1 and %d", maxHistoryLimit))
	}
	if err := e.Err(); err != nil {
		return nil, 0, err
	}

	lines, err := s.ledger(ctx, hcpID)
	if err != nil {
		return nil, 0, err
	}
	total := int64(len(lines))
	if offset >= len(lines) {
		return []LedgerEntry{}, total, nil
	}
	page := lines[offset:min(offset+limit, len(lines))]
	entries := make([]LedgerEntry, 0, len(page))
	for i, data := range page {
		entry, err := decodeLedger(int64(offset+i), data)
		if err != nil {
			return nil, 0, fmt.Errorf("consent: history: entry %d: %w", offset+i, err)
		}
		entries = append(entries, entry)
	}
	return entries, total, nil
}

// ledger reads all of a recipient's stored ledger entries, oldest first: the
// string set.lua writes, or the list of an earlier version not yet
// converted. The ledger is read whole; it grows by one short line per
// consent change.
//
// A list read as a string (WRONGTYPE) is read as a list; a list converted
// by set.lua between the two reads is then a string again, read once more.
func (s *Store) ledger(ctx context.Context, hcpID string) ([]string, error) {
	key := ledgerKey(s.prefix, hcpID)
	for attempt := 0; ; attempt++ {
		data, err := s.rdb.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return nil, nil
		case err == nil:
			if !strings.HasSuffix(data, "\n") {
				return nil, fmt.Errorf("consent: history: %w", corrupt("the ledger does not end with a whole entry"))
			}
			return strings.Split(data[:len(data)-1], "\n"), nil
		case !redis.HasErrorPrefix(err, "WRONGTYPE"):
			return nil, storageErr("history", err)
		}
		lines, err := s.rdb.LRange(ctx, key, 0, -1).Result()
		if attempt == 0 && redis.HasErrorPrefix(err, "WRONGTYPE") {
			continue // converted to a string meanwhile
		}
		if err != nil {
			return nil, storageErr("history", err)
		}
		return lines, nil
	}
}

// storageErr classifies an error from Redis. Errors that are not replies
// from the server (connection refused, timeouts, cancelled contexts, a closed
// client) and replies that say the server cannot serve now wrap
// arbiter.ErrUnavailable; a key of the wrong type or an undecodable value
// wraps arbiter.ErrCorrupt. The Redis error stays wrapped for server logs;
// none of these carries personal data (hash fields are never echoed).
func storageErr(op string, err error) error {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return fmt.Errorf("consent: %s: %w: %w", op, arbiter.ErrUnavailable, err)
	}
	msg := reply.Error()
	// Searched anywhere in the reply: an error raised inside a script comes
	// back prefixed with the script's location on some servers (miniredis).
	if strings.Contains(msg, "WRONGTYPE") || strings.Contains(msg, corruptReply) {
		return fmt.Errorf("consent: %s: %w: %w", op, arbiter.ErrCorrupt, err)
	}
	code, _, _ := strings.Cut(msg, " ")
	switch code {
	case "LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "OOM", "NOREPLICAS":
		return fmt.Errorf("consent: %s: %w: %w", op, arbiter.ErrUnavailable, err)
	}
	return fmt.Errorf("consent: %s: %w", op, err)
}
