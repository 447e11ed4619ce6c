package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
)

// The decision log: each recipient's receipts in one sorted set,
// "<prefix>:{<id>}:r", beside the recipient's other keys (one slot on
// Redis Cluster, so that the log shards with the recipients, a booking's
// script writes its receipt with its touch, and one recipient's receipts
// are one read). Members are "<decision id>\n<receipt>" (the receipt's
// stored form is the server's business: opaque bytes here), scored by the
// decision time in Unix milliseconds. A log's time to live is the
// retention and a day; a write renews it, and removes the receipts older
// than the retention, when less than the retention is left
// (append_receipt.lua): every receipt lives at least the retention, and
// one past it goes within about a day (at the log's next renewal, or when
// it expires: the log of a recipient no one decides for any more goes
// too).

// DefaultReceiptRetention is how long Redis keeps receipts: the export
// (ExportDecisions) is the long-term record.
const DefaultReceiptRetention = 7 * 24 * time.Hour

// StoredReceipt is one receipt to append: At is when the decision was
// made (the server's clock), which files it.
type StoredReceipt struct {
	HCPID string
	ID    string
	At    time.Time
	Data  []byte
}

// SetReceiptRetention sets how long receipts are kept (> 0).
func (s *Store) SetReceiptRetention(d time.Duration) {
	if d > 0 {
		s.receiptRetention.Store(int64(d))
	}
}

// ReceiptRetention is how long receipts are kept.
func (s *Store) ReceiptRetention() time.Duration {
	if d := s.receiptRetention.Load(); d > 0 {
		return time.Duration(d)
	}
	return DefaultReceiptRetention
}

func receiptMember(id string, data []byte) string {
	var b strings.Builder
	b.Grow(len(id) + 1 + len(data))
	b.WriteString(id)
	b.WriteByte('\n')
	b.Write(data)
	return b.String()
}

// receiptArgs appends reserve.lua's receipt arguments for b.
func (s *Store) receiptArgs(args []any, b *contact.Booking, now time.Time) []any {
	ret := s.ReceiptRetention()
	if b.Receipt == nil {
		return append(args, "", 0, 0, 1)
	}
	return append(args, receiptMember(b.ReceiptID, b.Receipt), b.ReceiptAt.UnixMilli(),
		now.Add(-ret).UnixMilli(), (ret + 24*time.Hour).Milliseconds())
}

var (
	//go:embed append_receipt.lua
	appendReceiptSrc    string
	appendReceiptScript = redis.NewScript(appendReceiptSrc)
)

// AppendReceipts writes receipts, in one pipeline whatever their number
// (on Redis Cluster, one per node), trimming each recipient's log to the
// retention, and skipping (counted in the result) those of recipients
// erased since their decision. Errors wrap arbiter.ErrUnavailable; some
// receipts may then have been written.
//
// On a single Redis a batch is written without a script when it can be
// (appendReceiptsWatched): plain commands in a MULTI, under a WATCH of the
// recipients' consent hashes, which an erasure writes. A script call
// costs Redis about 40% more per receipt than the commands it makes (each
// argument copied into Lua and out again, a call frame per command), and
// the ZADD of a 1.3 KB member is most of what is left. When the
// transaction fails (a consent change for one of the batch's recipients
// in between), the batch goes through append_receipt.lua, as on a
// Cluster (where a transaction's keys must share a slot).
func (s *Store) AppendReceipts(ctx context.Context, rs []StoredReceipt) (skipped int, err error) {
	if len(rs) == 0 {
		return 0, nil
	}
	if c, ok := s.rdb.(*redis.Client); ok && len(rs) >= watchedMin {
		n, err := s.appendReceiptsWatched(ctx, c, rs)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return 0, storageErr("append receipts", err)
			}
			return n, nil
		}
	}
	return s.appendReceiptsScripted(ctx, rs)
}

// watchedMin is the smallest batch written the watched way: it takes
// three round trips where the script takes one, which pays for a batch
// of the asynchronous writers, not for one receipt (the synchronous log
// writes each decision's before answering).
const watchedMin = 8

// receiptReadHook, in tests, runs between appendReceiptsWatched's reads
// and its transaction.
var receiptReadHook atomic.Pointer[func(*Store)]

// appendReceiptsWatched is append_receipt.lua's work, on a single Redis,
// in three round trips and no script: WATCH the recipients' consent
// hashes; read each one's erasure marker and its log's time to live;
// then, in a MULTI, ZADD each receipt of a recipient not erased since
// its decision, and trim and renew the logs with less than the retention
// left. An erasure rewrites the consent hash, so one that comes after the
// reads fails the transaction (redis.TxFailedErr, nothing written); one
// before them is seen in the marker. (A log found with more than the
// retention left cannot expire in the milliseconds before the EXEC.)
func (s *Store) appendReceiptsWatched(ctx context.Context, c *redis.Client, rs []StoredReceipt) (skipped int, err error) {
	now := s.now()
	ret := s.ReceiptRetention()
	cut := "(" + strconv.FormatInt(now.Add(-ret).UnixMilli(), 10)
	ttl := ret + 24*time.Hour
	keys := make([]string, 2*len(rs)) // each receipt's log, then its consent hash
	for i := range rs {
		keys[2*i], keys[2*i+1] = s.key(rs[i].HCPID, suffixReceipts), s.key(rs[i].HCPID, suffixConsent)
	}
	// Watched: the consent hashes, which an erasure rewrites, and the
	// logs, so that one deleted or evicted after its time to live was
	// read is not recreated without one.
	err = c.Watch(ctx, func(tx *redis.Tx) error {
		erased := make([]*redis.StringCmd, len(rs))
		ttls := make([]*redis.DurationCmd, len(rs))
		_, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range rs {
				erased[i] = p.HGet(ctx, keys[2*i+1], erasedField)
				ttls[i] = p.PTTL(ctx, keys[2*i])
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if h := receiptReadHook.Load(); h != nil {
			(*h)(s)
		}
		size := 0
		for i := range rs {
			size += len(rs[i].ID) + 1 + len(rs[i].Data)
		}
		members := make([]byte, 0, size)
		skipped = 0
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i := range rs {
				r := &rs[i]
				score := r.At.UnixMilli()
				if v, err := erased[i].Result(); err == nil && erasedSince(v, score) {
					skipped++
					continue
				} else if err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				start := len(members)
				members = append(append(append(members, r.ID...), '\n'), r.Data...)
				p.ZAdd(ctx, keys[2*i], redis.Z{Score: float64(score), Member: members[start:]})
				// -1 (no time to live) and -2 (no log yet) are below too.
				if d, err := ttls[i].Result(); err != nil {
					return err
				} else if d < ret || d > ttl {
					// Below the retention: renew. Above the retention and
					// a day: the retention was lowered since; trim now.
					p.ZRemRangeByScore(ctx, keys[2*i], "-inf", cut)
					p.PExpire(ctx, keys[2*i], ttl)
				}
			}
			return nil
		})
		return err
	}, keys...)
	return skipped, err
}

// erasedSince reports whether an erasure marker ("<unix ms>|...") is of an
// erasure at or after ms, as append_receipt.lua reads it.
func erasedSince(marker string, ms int64) bool {
	end := 0
	for end < len(marker) && marker[end] >= '0' && marker[end] <= '9' {
		end++
	}
	at, err := strconv.ParseInt(marker[:end], 10, 64)
	return err == nil && at >= ms
}

// appendReceiptsScripted is AppendReceipts through append_receipt.lua.
func (s *Store) appendReceiptsScripted(ctx context.Context, rs []StoredReceipt) (skipped int, err error) {
	now := s.now()
	ret := s.ReceiptRetention()
	cut := now.Add(-ret).UnixMilli()
	ttl := (ret + 24*time.Hour).Milliseconds()
	for attempt := 0; ; attempt++ {
		if !s.receiptScriptLoaded.Load() {
			if err := loadScript(ctx, s.rdb, appendReceiptScript); err != nil {
				return 0, storageErr("append receipts", err)
			}
			s.receiptScriptLoaded.Store(true)
		}
		pipe := s.rdb.Pipeline()
		var cmds []*redis.Cmd
		// On a single Redis, the whole batch in one script call; on a
		// Cluster, one per receipt (a script's keys must share a slot).
		step := len(rs)
		if _, cluster := s.rdb.(*redis.ClusterClient); cluster {
			step = 1
		}
		// Every member ("<id>\n<receipt>") in one buffer, passed as bytes:
		// one allocation for the batch rather than a string per receipt.
		size := 0
		for i := range rs {
			size += len(rs[i].ID) + 1 + len(rs[i].Data)
		}
		members := make([]byte, 0, size)
		for lo := 0; lo < len(rs); lo += step {
			part := rs[lo:min(lo+step, len(rs))]
			keys := make([]string, 0, 2*len(part))
			args := make([]any, 0, 3+2*len(part))
			args = append(args, cut, ttl, ret.Milliseconds())
			for i := range part {
				r := &part[i]
				keys = append(keys, s.key(r.HCPID, suffixReceipts), s.key(r.HCPID, suffixConsent))
				start := len(members)
				members = append(append(append(members, r.ID...), '\n'), r.Data...)
				args = append(args, members[start:], r.At.UnixMilli())
			}
			cmds = append(cmds, appendReceiptScript.EvalSha(ctx, pipe, keys, args...))
		}
		_, err := pipe.Exec(ctx)
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0 {
			s.receiptScriptLoaded.Store(false) // Redis restarted, or was flushed: load it again
			continue
		}
		if err != nil {
			return 0, storageErr("append receipts", err)
		}
		for _, c := range cmds {
			res, _ := c.Int64Slice()
			for _, n := range res {
				if n == 0 {
					skipped++
				}
			}
		}
		return skipped, nil
	}
}

// loadScript loads a script into every master, for EVALSHA in pipelines.
func loadScript(ctx context.Context, rdb redis.UniversalClient, sc *redis.Script) error {
	return forEachNode(ctx, rdb, func(ctx context.Context, c redis.Cmdable) error {
		return sc.Load(ctx, c).Err()
	})
}

// Receipt returns the stored receipt of decision id, made at at (the
// time the id carries) for recipient hcpID: arbiter.ErrNotFound when it
// is not there (never written, past retention, erased).
func (s *Store) Receipt(ctx context.Context, hcpID, id string, at time.Time) ([]byte, error) {
	if err := recipient.ValidID(hcpID); err != nil {
		return nil, fmt.Errorf("redisstore: receipt: %w", arbiter.ErrNotFound)
	}
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	members, err := s.rdb.ZRangeByScore(ctx, s.key(hcpID, suffixReceipts), &redis.ZRangeBy{Min: ms, Max: ms}).Result()
	if err != nil {
		return nil, storageErr("receipt", err)
	}
	prefix := id + "\n"
	for _, m := range members {
		if strings.HasPrefix(m, prefix) {
			return []byte(m[len(prefix):]), nil
		}
	}
	return nil, fmt.Errorf("redisstore: receipt: %w", arbiter.ErrNotFound)
}

// Receipts returns recipient hcpID's receipts with decision times in
// [from, to), oldest first, at most limit of them, and whether there were
// more.
func (s *Store) Receipts(ctx context.Context, hcpID string, from, to time.Time, limit int) ([][]byte, bool, error) {
	members, err := s.rdb.ZRangeByScore(ctx, s.key(hcpID, suffixReceipts), &redis.ZRangeBy{
		Min: strconv.FormatInt(from.UnixMilli(), 10), Max: "(" + strconv.FormatInt(to.UnixMilli(), 10),
		Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, false, storageErr("receipts", err)
	}
	more := len(members) > limit
	if more {
		members = members[:limit]
	}
	out := make([][]byte, 0, len(members))
	for _, m := range members {
		if _, data, ok := strings.Cut(m, "\n"); ok {
			out = append(out, []byte(data))
		}
	}
	return out, more, nil
}

// ScanReceipts calls fn with every recipient's receipts in [from, to), one
// recipient at a time, walking the keyspace with SCAN (every master of a
// Cluster). progress, when not nil, counts the recipients' logs read.
// It stops at fn's first error and returns it.
func (s *Store) ScanReceipts(ctx context.Context, from, to time.Time, progress *atomic.Int64,
	fn func(hcpID string, receipts [][]byte) error) error {
	match := s.prefix + ":{*}" + suffixReceipts
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 500).Iterator()
		for it.Next(ctx) {
			key := it.Val()
			id, ok := recipientOfKey(key, s.prefix, suffixReceipts)
			if !ok {
				continue
			}
			recs, _, err := s.Receipts(ctx, id, from, to, 1<<30)
			if err != nil {
				return err
			}
			if progress != nil {
				progress.Add(1)
			}
			if len(recs) > 0 {
				if err := fn(id, recs); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return storageErr("scan receipts", err)
		}
		return nil
	}
	return forEachNode(ctx, s.rdb, scan)
}

// recipientOfKey is the recipient id of a per-recipient key.
func recipientOfKey(key, prefix, suffix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix+":{")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "}"+suffix)
	if !ok || strings.ContainsAny(id, "{}") {
		return "", false
	}
	return id, true
}

// ReceiptBefore returns recipient hcpID's last receipt with a decision
// time at or before at: arbiter.ErrNotFound when there is none (within
// the retention).
func (s *Store) ReceiptBefore(ctx context.Context, hcpID string, at time.Time) ([]byte, error) {
	members, err := s.rdb.ZRevRangeByScore(ctx, s.key(hcpID, suffixReceipts), &redis.ZRangeBy{
		Max: strconv.FormatInt(at.UnixMilli(), 10), Min: "-inf", Count: 1}).Result()
	if err != nil {
		return nil, storageErr("receipt before", err)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("redisstore: receipt before: %w", arbiter.ErrNotFound)
	}
	_, data, _ := strings.Cut(members[0], "\n")
	return []byte(data), nil
}
