package redisstore

import (
	"context"
	"testing"
	"time"

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
}
