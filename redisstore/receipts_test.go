package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// A log's time to live is renewed, and its receipts past retention
// trimmed, only when less than the retention is left: every receipt
// written lives at least the retention (its log's time to live is never
// less after a write), and the writes in between make one call less each.
func TestReceiptLogRenewal(t *testing.T) { eachBackendAndMiniredis(t, testReceiptLogRenewal) }

func testReceiptLogRenewal(t *testing.T, b redistest.Backend) {
	ctx := context.Background()
	s, rdb, c := newStoreOn(t, b)
	const ret = 2 * day
	s.SetReceiptRetention(ret)
	const id = "RCPT-1"
	key := s.key(id, suffixReceipts)
	appendAt := func(did string, at time.Time) {
		t.Helper()
		if n, err := s.AppendReceipts(ctx, []StoredReceipt{{HCPID: id, ID: did, At: at, Data: []byte("receipt " + did)}}); err != nil || n != 0 {
			t.Fatalf("append %s: skipped %d, %v", did, n, err)
		}
	}
	ttl := func() time.Duration {
		t.Helper()
		d, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	members := func() int64 {
		t.Helper()
		n, err := rdb.ZCard(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A new log gets the retention and a day.
	appendAt("d-1", c.now())
	if got := ttl(); got < ret || got > ret+day {
		t.Fatalf("a new log's time to live is %v, want the retention and a day", got)
	}
	// Three days on, the next write finds more than the retention left
	// (as a log written to within the day does): no renewal, no trim.
	c.t = c.t.Add(3 * day)
	if err := rdb.PExpire(ctx, key, ret+time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	appendAt("d-2", c.now())
	if got := ttl(); got > ret+time.Hour {
		t.Errorf("a log with more than the retention left was renewed: %v", got)
	}
	if got := members(); got != 2 {
		t.Errorf("%d receipts, want 2: the log is trimmed only when renewed", got)
	}
	// Once less than the retention is left, a write renews the log and
	// trims what is past retention (d-1).
	if err := rdb.PExpire(ctx, key, ret-time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	appendAt("d-3", c.now())
	if got := ttl(); got < ret || got > ret+day {
		t.Errorf("after a write, the log's time to live is %v, want at least the retention", got)
	}
	if got := members(); got != 2 {
		t.Errorf("%d receipts, want 2: d-1, past retention, is trimmed at the renewal", got)
	}
	if _, err := s.Receipt(ctx, id, "d-1", t0); err == nil {
		t.Error("d-1, past retention, was read after the renewal")
	}
	for _, did := range []string{"d-2", "d-3"} {
		if data, err := s.Receipt(ctx, id, did, c.now()); err != nil || string(data) != "receipt "+did {
			t.Errorf("%s: %q, %v", did, data, err)
		}
	}
	// A batch naming the log twice, and another log: each written, each
	// log with at least the retention left.
	other := "RCPT-2"
	if n, err := s.AppendReceipts(ctx, []StoredReceipt{{HCPID: id, ID: "d-4", At: c.now(), Data: []byte("x")},
		{HCPID: other, ID: "d-5", At: c.now(), Data: []byte("y")}, {HCPID: id, ID: "d-6", At: c.now().Add(time.Millisecond), Data: []byte("z")}}); err != nil || n != 0 {
		t.Fatalf("batch: skipped %d, %v", n, err)
	}
	if got := members(); got != 4 {
		t.Errorf("%d receipts, want 4", got)
	}
	for _, k := range []string{key, s.key(other, suffixReceipts)} {
		if d, err := rdb.PTTL(ctx, k).Result(); err != nil || d < ret {
			t.Errorf("%s: time to live %v (%v), want at least the retention", k, d, err)
		}
	}
	// The retention lowered since the log was renewed (it has more than
	// the retention and a day to live): the next write trims and renews
	// it at once, as one receipt (the script) and as a batch (on a single
	// Redis, the watched transaction).
	for _, n := range []int{1, watchedMin} {
		if err := rdb.PExpire(ctx, key, ret+10*day).Err(); err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(3 * day) // every receipt so far is past retention
		rs := []StoredReceipt{{HCPID: id, ID: fmt.Sprintf("lowered-%d", n), At: c.now(), Data: []byte("l")}}
		for k := 1; k < n; k++ {
			rs = append(rs, StoredReceipt{HCPID: fmt.Sprintf("FILL-%d", k), ID: "f", At: c.now(), Data: []byte("f")})
		}
		if skipped, err := s.AppendReceipts(ctx, rs); err != nil || skipped != 0 {
			t.Fatalf("batch of %d: skipped %d, %v", n, skipped, err)
		}
		if got := ttl(); got < ret || got > ret+day {
			t.Errorf("batch of %d: a log written under a longer retention has %v to live, want the retention and a day", n, got)
		}
		if got := members(); got != 1 {
			t.Errorf("batch of %d: %d receipts, want 1: those past the lowered retention trimmed at once", n, got)
		}
	}
}

// On a single Redis, a batch is written by plain commands in a
// transaction under a WATCH of the recipients' consent: an erasure that
// comes between its reads and its writes fails the transaction, and the
// batch goes through the script, which skips the erased recipient's
// receipt (decided before the erasure) and writes the others; a consent
// write for one of the recipients does the same, and then every receipt
// is written. (On a Cluster every batch goes through the script: the
// erasure and the consent write come before it.) Every written log has
// at least the retention to live.
func TestReceiptsRaceAnErasure(t *testing.T) { eachBackendAndMiniredis(t, testReceiptsRaceAnErasure) }

func testReceiptsRaceAnErasure(t *testing.T, b redistest.Backend) {
	ctx := context.Background()
	s, rdb, c := newStoreOn(t, b)
	const ret = 2 * day
	s.SetReceiptRetention(ret)
	_, single := rdb.(*redis.Client)
	// between runs fn between the reads and the transaction (on a single
	// Redis), or before the append (on a Cluster).
	between := func(fn func()) func() {
		if !single {
			fn()
			return func() {}
		}
		once := false
		h := func(st *Store) {
			if st == s && !once {
				once = true
				fn()
			}
		}
		receiptReadHook.Store(&h)
		return func() {
			receiptReadHook.Store(nil)
			if !once {
				t.Fatal("the hook did not run: the batch was not written by the transaction")
			}
		}
	}
	// batch is the receipts of ids, and others' (recipients with no
	// consent, never skipped) to make it a batch written the watched way.
	batch := func(ids ...string) []StoredReceipt {
		var out []StoredReceipt
		for _, id := range ids {
			out = append(out, StoredReceipt{HCPID: id, ID: "d-" + id, At: c.now(), Data: []byte("receipt of " + id)})
		}
		for k := 0; len(out) < watchedMin; k++ {
			out = append(out, StoredReceipt{HCPID: fmt.Sprintf("FILL-%d", k), ID: "f", At: c.now(), Data: []byte("f")})
		}
		return out
	}
	written := func(id string) bool {
		t.Helper()
		_, err := s.Receipt(ctx, id, "d-"+id, c.now())
		if err == nil {
			if d := rdb.PTTL(ctx, s.key(id, suffixReceipts)).Val(); d < ret {
				t.Errorf("%s's log has %v to live, less than the retention", id, d)
			}
		}
		return err == nil
	}
	for _, id := range []string{"RACE-1", "RACE-2", "RACE-3"} {
		if _, err := s.SetConsentMany(ctx, id, []consent.Record{optIn(arbiter.Email, arbiter.Promotional, t0.Add(-time.Hour))}, true); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing in between: all written (through the transaction on a
	// single Redis).
	done := between(func() {})
	if n, err := s.AppendReceipts(ctx, batch("RACE-1")); err != nil || n != 0 {
		t.Fatalf("append: %d skipped, %v", n, err)
	}
	done()
	if !written("RACE-1") {
		t.Fatal("RACE-1's receipt was not written")
	}

	// An erasure of RACE-2 in between: its receipt (decided before) is
	// not written, RACE-3's is.
	c.t = c.t.Add(time.Second)
	done = between(func() {
		if _, err := s.Erase(ctx, "RACE-2"); err != nil {
			t.Fatal(err)
		}
	})
	if n, err := s.AppendReceipts(ctx, batch("RACE-2", "RACE-3")); err != nil || n != 1 {
		t.Fatalf("append across an erasure: %d skipped, %v; want RACE-2's skipped", n, err)
	}
	done()
	if written("RACE-2") {
		t.Fatal("a receipt decided before its recipient's erasure was written after it")
	}
	if n := rdb.Exists(ctx, s.key("RACE-2", suffixReceipts)).Val(); n != 0 {
		t.Fatal("the erased recipient has a receipt log again")
	}
	if !written("RACE-3") {
		t.Fatal("RACE-3's receipt was not written")
	}

	// A consent write for RACE-1 in between: written all the same.
	c.t = c.t.Add(time.Second)
	done = between(func() {
		if _, err := s.SetConsentMany(ctx, "RACE-1", []consent.Record{optIn(arbiter.SMS, arbiter.Promotional, t0)}, false); err != nil {
			t.Fatal(err)
		}
	})
	if n, err := s.AppendReceipts(ctx, batch("RACE-1", "RACE-3")); err != nil || n != 0 {
		t.Fatalf("append across a consent write: %d skipped, %v", n, err)
	}
	done()
	if !written("RACE-1") || !written("RACE-3") {
		t.Fatal("a receipt was not written across a consent write")
	}

	// Decided after the erasure (RACE-2 loaded again): written.
	c.t = c.t.Add(time.Second)
	if n, err := s.AppendReceipts(ctx, batch("RACE-2")); err != nil || n != 0 {
		t.Fatalf("append after the erasure: %d skipped, %v", n, err)
	}
	if !written("RACE-2") {
		t.Fatal("a receipt decided after the erasure was not written")
	}
}
