package consent

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// redisBackends are a single redis-server and a Redis Cluster of 3 masters
// with a replica each, started once for the package. On the cluster a key
// layout whose keys did not share a slot would fail with CROSSSLOT.
var redisBackends []redistest.Backend

func TestMain(m *testing.M) { os.Exit(redistest.MainBackends(m, &redisBackends)) }

type backend struct {
	name string
	open func(t testing.TB) (rdb redis.UniversalClient, prefix string)
}

// backends are the stores every storage test runs against: the Redis
// backends and miniredis (the embedded demo store).
func backends() []backend {
	var bs []backend
	for _, b := range redisBackends {
		bs = append(bs, backend{b.Name, b.Client})
	}
	return append(bs, backend{"miniredis", func(t testing.TB) (redis.UniversalClient, string) {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { rdb.Close() })
		return rdb, "arbiter"
	}})
}

// now is the stores' clock in tests.
var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// storeTest runs f once per backend with a fresh store.
func storeTest(t *testing.T, f func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			rdb, prefix := b.open(t)
			st := NewStore(rdb, WithPrefix(prefix), WithClock(func() time.Time { return now }))
			f(t, st, rdb, prefix)
		})
	}
}

// keysExist returns how many of the hcp's consent keys exist.
func keysExist(t *testing.T, rdb redis.UniversalClient, prefix, hcp string) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	// One key per call: a cluster client refuses multi-key EXISTS across
	// keys it cannot route together, and this helper must not depend on it.
	for _, k := range []string{Key(prefix, hcp), ledgerKey(prefix, hcp)} {
		c, err := rdb.Exists(ctx, k).Result()
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		n += c
	}
	return n
}

func history(t *testing.T, st *Store, hcp string) []LedgerEntry {
	t.Helper()
	entries, total, err := st.History(context.Background(), hcp, 0, 1000)
	if err != nil {
		t.Fatalf("History() error = %v", err)
	}
	if total != int64(len(entries)) {
		t.Fatalf("History() total = %d, want %d", total, len(entries))
	}
	return entries
}

func TestKey(t *testing.T) {
	if got, want := Key("arbiter", "hcp-1"), "arbiter:{hcp-1}:consent"; got != want {
		t.Errorf("Key() = %q, want %q", got, want)
	}
	if got, want := ledgerKey("arbiter", "hcp-1"), "arbiter:{hcp-1}:consent-ledger"; got != want {
		t.Errorf("ledgerKey() = %q, want %q", got, want)
	}
}

func TestFieldEncoding(t *testing.T) {
	tests := []struct {
		name        string
		r           Record
		field, vale string
	}{
		{"channel level",
			rec(arbiter.Email, arbiter.Promotional, OptOut, t0),
			"email|promotional||", "1772443800000|opt_out|0|veeva|"},
		{"address and topic with expiry",
			Record{Channel: arbiter.SMS, Purpose: arbiter.Service, Topic: "brand-x", Address: "a-1", Status: OptIn,
				CapturedAt: t0, ExpiresAt: t0.Add(time.Second), Source: "web", CapturedBy: "u-17"},
			"sms|service|brand-x|a-1", "1772443800000|opt_in|1772443801000|web|u-17"},
		{"barred", rec(arbiter.Push, 0, Barred, t0), "push|unspecified||", "1772443800000|barred|0|veeva|"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fieldName(&tt.r); got != tt.field {
				t.Errorf("fieldName() = %q, want %q", got, tt.field)
			}
			if got := fieldValue(&tt.r); got != tt.vale {
				t.Errorf("fieldValue() = %q, want %q", got, tt.vale)
			}
		})
	}
}

func TestStoreRoundTrip(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	barred := rec(arbiter.Email, 0, Barred, t0)
	promo := Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Address: "addr-1", Status: OptIn,
		CapturedAt: t0.Add(1500 * time.Microsecond).In(paris), ExpiresAt: t0.AddDate(1, 0, 0),
		Source: "web", CapturedBy: "u-17"}
	medical := rec(arbiter.SMS, arbiter.Medical, OptOut, t0).topic("brand-x")
	webinar := rec(arbiter.Webinar, arbiter.Promotional, OptIn, t0)

	// As stored: UTC, milliseconds.
	promoStored := promo
	promoStored.CapturedAt = t0.Add(time.Millisecond)

	storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		got, err := st.SetMany(ctx, "hcp-1", []Record{webinar, medical, promo, barred}, true)
		if err != nil {
			t.Fatalf("SetMany() error = %v", err)
		}
		want := []LedgerEntry{
			{Seq: 0, Record: webinar, RecordedAt: now, Applied: true, MarkedComplete: true},
			{Seq: 1, Record: medical, RecordedAt: now, Applied: true, MarkedComplete: true},
			{Seq: 2, Record: promoStored, RecordedAt: now, Applied: true, MarkedComplete: true},
			{Seq: 3, Record: barred, RecordedAt: now, Applied: true, MarkedComplete: true},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("SetMany() =\n%+v\nwant\n%+v", got, want)
		}

		state, err := st.Get(ctx, "hcp-1")
		if err != nil {
			t.Fatalf("Get() error = %v", err)
		}
		wantState := State{Complete: true, CompleteAt: now, Records: []Record{barred, promoStored, medical, webinar}}
		if !reflect.DeepEqual(state, wantState) {
			t.Errorf("Get() =\n%+v\nwant\n%+v", state, wantState)
		}

		if got := history(t, st, "hcp-1"); !reflect.DeepEqual(got, want) {
			t.Errorf("History() =\n%+v\nwant\n%+v", got, want)
		}

		// Another recipient is untouched.
		other, err := st.Get(ctx, "hcp-2")
		if err != nil {
			t.Fatalf("Get(hcp-2) error = %v", err)
		}
		if !reflect.DeepEqual(other, State{}) {
			t.Errorf("Get(hcp-2) = %+v, want an empty, incomplete State", other)
		}
	})
}

func TestStoreOlderRecordDoesNotReplaceNewer(t *testing.T) {
	newer := rec(arbiter.Email, arbiter.Promotional, OptOut, t0.Add(time.Hour))
	older := rec(arbiter.Email, arbiter.Promotional, OptIn, t0)
	storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		if _, err := st.Set(ctx, "hcp-1", newer, true); err != nil {
			t.Fatalf("Set(newer) error = %v", err)
		}
		got, err := st.Set(ctx, "hcp-1", older, false)
		if err != nil {
			t.Fatalf("Set(older) error = %v", err)
		}
		want := LedgerEntry{Seq: 1, Record: older, RecordedAt: now, Applied: false}
		if got != want {
			t.Errorf("Set(older) = %+v, want %+v", got, want)
		}
		state, err := st.Get(ctx, "hcp-1")
		if err != nil {
			t.Fatalf("Get() error = %v", err)
		}
		if want := []Record{newer}; !reflect.DeepEqual(state.Records, want) {
			t.Errorf("Get().Records = %+v, want %+v", state.Records, want)
		}
		entries := history(t, st, "hcp-1")
		if len(entries) != 2 || !entries[0].Applied || entries[1].Applied {
			t.Errorf("History() = %+v, want the newer applied, then the older not applied", entries)
		}
	})
}

func TestStoreEqualCaptureTime(t *testing.T) {
	email := func(s Status) Record {
		r := rec(arbiter.Email, arbiter.Promotional, s, t0)
		r.Source = "src-" + s.String() // tells the two writes apart
		return r
	}
	tests := []struct {
		name        string
		first, then Record
		batch       bool // both in one SetMany rather than two Sets
		wantApplied []bool
		want        Status
	}{
		{"opt-in then opt-out", email(OptIn), email(OptOut), false, []bool{true, true}, OptOut},
		{"opt-out then opt-in", email(OptOut), email(OptIn), false, []bool{true, false}, OptOut},
		{"opt-in then opt-out, one batch", email(OptIn), email(OptOut), true, []bool{true, true}, OptOut},
		{"opt-out then opt-in, one batch", email(OptOut), email(OptIn), true, []bool{true, false}, OptOut},
		{"pending then opt-in", email(Pending), email(OptIn), false, []bool{true, false}, Pending},
		{"same status again", email(OptIn), email(OptIn), false, []bool{true, false}, OptIn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
				ctx := context.Background()
				var entries []LedgerEntry
				if tt.batch {
					es, err := st.SetMany(ctx, "hcp-1", []Record{tt.first, tt.then}, false)
					if err != nil {
						t.Fatalf("SetMany() error = %v", err)
					}
					entries = es
				} else {
					for _, r := range []Record{tt.first, tt.then} {
						e, err := st.Set(ctx, "hcp-1", r, false)
						if err != nil {
							t.Fatalf("Set() error = %v", err)
						}
						entries = append(entries, e)
					}
				}
				for i, e := range entries {
					if e.Applied != tt.wantApplied[i] || e.Seq != int64(i) {
						t.Errorf("write %d: Applied = %v, Seq = %d; want %v, %d", i, e.Applied, e.Seq, tt.wantApplied[i], i)
					}
				}
				state, err := st.Get(ctx, "hcp-1")
				if err != nil {
					t.Fatalf("Get() error = %v", err)
				}
				want := []Record{email(tt.want)}
				if !reflect.DeepEqual(state.Records, want) {
					t.Errorf("Get().Records = %+v, want %+v", state.Records, want)
				}
			})
		})
	}
}

func TestStoreLedgerIsAppendOnly(t *testing.T) {
	optIn := rec(arbiter.Email, arbiter.Promotional, OptIn, t0)
	optOut := rec(arbiter.Email, arbiter.Promotional, OptOut, t0.Add(time.Hour))
	storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		raw := func() []string {
			v, err := rdb.Get(ctx, ledgerKey(prefix, "hcp-1")).Result()
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			lines := strings.SplitAfter(v, "\n")
			if lines[len(lines)-1] != "" {
				t.Fatalf("the ledger does not end with a newline")
			}
			return lines[:len(lines)-1]
		}
		for _, r := range []Record{optIn, optOut} {
			if _, err := st.Set(ctx, "hcp-1", r, false); err != nil {
				t.Fatalf("Set() error = %v", err)
			}
		}
		before := raw()
		// A repeated delivery and a late, older record: neither applies,
		// both are ledgered. Then the marker alone.
		for _, r := range []Record{optOut, optIn} {
			if _, err := st.Set(ctx, "hcp-1", r, false); err != nil {
				t.Fatalf("Set() error = %v", err)
			}
		}
		if _, err := st.SetMany(ctx, "hcp-1", nil, true); err != nil {
			t.Fatalf("SetMany(marker) error = %v", err)
		}

		after := raw()
		if len(after) != 5 || !reflect.DeepEqual(after[:len(before)], before) {
			t.Fatalf("ledger went from %d to %d entries, want 2 to 5 with the first 2 unchanged", len(before), len(after))
		}
		want := []LedgerEntry{
			{Seq: 0, Record: optIn, RecordedAt: now, Applied: true},
			{Seq: 1, Record: optOut, RecordedAt: now, Applied: true},
			{Seq: 2, Record: optOut, RecordedAt: now, Applied: false},
			{Seq: 3, Record: optIn, RecordedAt: now, Applied: false},
			{Seq: 4, RecordedAt: now, Applied: true, MarkedComplete: true},
		}
		if got := history(t, st, "hcp-1"); !reflect.DeepEqual(got, want) {
			t.Errorf("History() =\n%+v\nwant\n%+v", got, want)
		}

		pages := []struct {
			offset, limit int
			want          []LedgerEntry
		}{
			{1, 2, want[1:3]},
			{3, 10, want[3:]},
			{5, 10, []LedgerEntry{}},
		}
		for _, p := range pages {
			got, total, err := st.History(ctx, "hcp-1", p.offset, p.limit)
			if err != nil {
				t.Fatalf("History(%d, %d) error = %v", p.offset, p.limit, err)
			}
			if total != 5 || !reflect.DeepEqual(got, p.want) {
				t.Errorf("History(%d, %d) = %+v, %d; want %+v, 5", p.offset, p.limit, got, total, p.want)
			}
		}
	})
}

func TestStoreHistoryInvalid(t *testing.T) {
	st := NewStore(nil) // never reached: validation comes first
	tests := []struct {
		name          string
		hcp           string
		offset, limit int
		field         string
	}{
		{"no hcp", "", 0, 10, "hcp_id"},
		{"negative offset", "hcp-1", -1, 10, "offset"},
		{"zero limit", "hcp-1", 0, 0, "limit"},
		{"limit too large", "hcp-1", 0, 1001, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := st.History(context.Background(), tt.hcp, tt.offset, tt.limit)
			if got := violatedFields(err); !reflect.DeepEqual(got, []string{tt.field}) {
				t.Errorf("History() error = %v, want a violation of %s", err, tt.field)
			}
		})
	}
}

func TestStoreMarkComplete(t *testing.T) {
	r := rec(arbiter.Email, arbiter.Promotional, OptIn, t0)
	storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		if _, err := st.Set(ctx, "hcp-1", r, false); err != nil {
			t.Fatalf("Set() error = %v", err)
		}
		state, err := st.Get(ctx, "hcp-1")
		if err != nil {
			t.Fatalf("Get() error = %v", err)
		}
		if state.Complete {
			t.Errorf("Get().Complete = true after a write without the marker, want false")
		}

		e, err := st.Set(ctx, "hcp-1", r, true)
		if err != nil {
			t.Fatalf("Set(mark) error = %v", err)
		}
		if !e.MarkedComplete {
			t.Errorf("Set(mark).MarkedComplete = false, want true")
		}
		if state, err = st.Get(ctx, "hcp-1"); err != nil {
			t.Fatalf("Get() error = %v", err)
		}
		if !state.Complete || !state.CompleteAt.Equal(now) {
			t.Errorf("Get() = Complete %v at %v, want true at %v", state.Complete, state.CompleteAt, now)
		}

		// A recipient known to have no consent at all: only the marker.
		if es, err := st.SetMany(ctx, "hcp-2", nil, false); err != nil || es != nil {
			t.Errorf("SetMany(nothing) = %v, %v; want nil, nil", es, err)
		}
		if n := keysExist(t, rdb, prefix, "hcp-2"); n != 0 {
			t.Errorf("SetMany(nothing) created %d keys, want 0", n)
		}
		es, err := st.SetMany(ctx, "hcp-2", nil, true)
		if err != nil {
			t.Fatalf("SetMany(marker) error = %v", err)
		}
		want := []LedgerEntry{{Seq: 0, RecordedAt: now, Applied: true, MarkedComplete: true}}
		if !reflect.DeepEqual(es, want) {
			t.Errorf("SetMany(marker) = %+v, want %+v", es, want)
		}
		state, err = st.Get(ctx, "hcp-2")
		if err != nil {
			t.Fatalf("Get(hcp-2) error = %v", err)
		}
		if want := (State{Complete: true, CompleteAt: now}); !reflect.DeepEqual(state, want) {
			t.Errorf("Get(hcp-2) = %+v, want %+v", state, want)
		}
	})
}

// violatedFields returns the fields of an *arbiter.InvalidError, or nil.
func violatedFields(err error) []string {
	var inv *arbiter.InvalidError
	if !errors.As(err, &inv) {
		return nil
	}
	var out []string
	for _, v := range inv.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestStoreInvalidRecordWritesNothing(t *testing.T) {
	valid := rec(arbiter.Email, arbiter.Promotional, OptIn, t0)
	edit := func(f func(r *Record)) Record {
		r := valid
		f(&r)
		return r
	}
	tests := []struct {
		name string
		hcp  string
		r    Record
		want []string
	}{
		{"no hcp id", "", valid, []string{"hcp_id"}},
		{"no channel", "hcp-1", edit(func(r *Record) { r.Channel = 0 }), []string{"record.channel"}},
		{"unknown channel", "hcp-1", edit(func(r *Record) { r.Channel = 99 }), []string{"record.channel"}},
		{"no status", "hcp-1", edit(func(r *Record) { r.Status = 0 }), []string{"record.status"}},
		{"no purpose", "hcp-1", edit(func(r *Record) { r.Purpose = 0 }), []string{"record.purpose"}},
		{"barred with a purpose", "hcp-1", edit(func(r *Record) { r.Status = Barred }), []string{"record.purpose"}},
		{"barred with topic and address", "hcp-1",
			edit(func(r *Record) { r.Status, r.Purpose, r.Topic, r.Address = Barred, 0, "t", "a" }),
			[]string{"record.topic", "record.address"}},
		{"'|' in topic", "hcp-1", edit(func(r *Record) { r.Topic = "a|b" }), []string{"record.topic"}},
		{"'|' in address", "hcp-1", edit(func(r *Record) { r.Address = "a|b" }), []string{"record.address"}},
		{"address too long", "hcp-1", edit(func(r *Record) { r.Address = strings.Repeat("a", 129) }), []string{"record.address"}},
		{"no source", "hcp-1", edit(func(r *Record) { r.Source = "" }), []string{"record.source"}},
		{"source too long", "hcp-1", edit(func(r *Record) { r.Source = strings.Repeat("s", 65) }), []string{"record.source"}},
		{"'|' in captured_by", "hcp-1", edit(func(r *Record) { r.CapturedBy = "u|1" }), []string{"record.captured_by"}},
		{"no capture time", "hcp-1", edit(func(r *Record) { r.CapturedAt = time.Time{} }), []string{"record.captured_at"}},
		{"expires before capture", "hcp-1", edit(func(r *Record) { r.ExpiresAt = r.CapturedAt }), []string{"record.expires_at"}},
		{"opt-out that expires", "hcp-1", edit(func(r *Record) { r.Status, r.ExpiresAt = OptOut, now }), []string{"record.expires_at"}},
	}
	storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := st.Set(ctx, tt.hcp, tt.r, true)
				if got := violatedFields(err); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Set() error = %v, want violations of %v", err, tt.want)
				}
				if err := tt.r.Validate(); tt.hcp != "" && !reflect.DeepEqual(violatedFields(err), tt.want) {
					t.Errorf("Validate() = %v, want violations of %v", err, tt.want)
				}
				if n := keysExist(t, rdb, prefix, tt.hcp); n != 0 {
					t.Errorf("an invalid Set created %d keys, want 0", n)
				}
			})
		}
		t.Run("captured in the future", func(t *testing.T) {
			// Only the Store, which has a clock, can tell.
			future := edit(func(r *Record) { r.CapturedAt = now.Add(maxClockSkew + time.Millisecond) })
			_, err := st.Set(ctx, "hcp-1", future, true)
			if got, want := violatedFields(err), []string{"record.captured_at"}; !reflect.DeepEqual(got, want) {
				t.Errorf("Set() error = %v, want violations of %v", err, want)
			}
			if n := keysExist(t, rdb, prefix, "hcp-1"); n != 0 {
				t.Errorf("an invalid Set created %d keys, want 0", n)
			}
		})
		t.Run("one invalid record in a batch", func(t *testing.T) {
			_, err := st.SetMany(ctx, "hcp-1", []Record{valid, edit(func(r *Record) { r.Source = "" })}, true)
			if got, want := violatedFields(err), []string{"records[1].source"}; !reflect.DeepEqual(got, want) {
				t.Errorf("SetMany() error = %v, want violations of %v", err, want)
			}
			if n := keysExist(t, rdb, prefix, "hcp-1"); n != 0 {
				t.Errorf("an invalid SetMany created %d keys, want 0", n)
			}
		})
	})
}

func TestStoreUnavailable(t *testing.T) {
	// A port nothing listens on any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	st := NewStore(rdb)
	ctx := context.Background()
	r := rec(arbiter.Email, arbiter.Promotional, OptIn, t0).address(addrNew)

	ops := []struct {
		name string
		run  func() error
	}{
		{"set", func() error { _, err := st.Set(ctx, "hcp-1", r, true); return err }},
		{"get", func() error { _, err := st.Get(ctx, "hcp-1"); return err }},
		{"history", func() error { _, _, err := st.History(ctx, "hcp-1", 0, 10); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.run()
			if !errors.Is(err, arbiter.ErrUnavailable) {
				t.Fatalf("error = %v, want one wrapping ErrUnavailable", err)
			}
			var opErr *net.OpError
			if !errors.As(err, &opErr) {
				t.Errorf("error = %v, want the network error still wrapped", err)
			}
			if strings.Contains(err.Error(), addrNew) {
				t.Errorf("error = %q, contains the recipient's address", err)
			}
		})
	}
}

func TestStoreDeadline(t *testing.T) {
	storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := st.Set(ctx, "hcp-1", rec(arbiter.Email, arbiter.Promotional, OptIn, t0), true)
		if !errors.Is(err, arbiter.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Set() with an expired deadline: error = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
	})
}

func TestStoreCorrupt(t *testing.T) {
	r := rec(arbiter.Email, arbiter.Promotional, OptIn, t0).address(addrNew)
	storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		wantCorrupt := func(t *testing.T, op string, err error) {
			t.Helper()
			if !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("%s: error = %v, want one wrapping ErrCorrupt", op, err)
			}
			if err != nil && strings.Contains(err.Error(), addrNew) {
				t.Errorf("%s: error = %q, contains the recipient's address", op, err)
			}
		}

		t.Run("undecodable value", func(t *testing.T) {
			key := Key(prefix, "hcp-1")
			if err := rdb.HSet(ctx, key, fieldName(&r), "garbage").Err(); err != nil {
				t.Fatal(err)
			}
			_, err := st.Get(ctx, "hcp-1")
			wantCorrupt(t, "Get", err)
			// A new record must not replace a value that may be a withdrawal.
			_, err = st.Set(ctx, "hcp-1", r, true)
			wantCorrupt(t, "Set", err)
			if v := rdb.HGet(ctx, key, fieldName(&r)).Val(); v != "garbage" {
				t.Errorf("Set replaced the corrupt value with %q", v)
			}
			if n := rdb.Exists(ctx, ledgerKey(prefix, "hcp-1")).Val(); n != 0 {
				t.Errorf("ledger written after a refused write")
			}
		})

		t.Run("consent key of the wrong type", func(t *testing.T) {
			if err := rdb.Set(ctx, Key(prefix, "hcp-2"), "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := st.Get(ctx, "hcp-2")
			wantCorrupt(t, "Get", err)
			_, err = st.Set(ctx, "hcp-2", r, true)
			wantCorrupt(t, "Set", err)
			if n := rdb.Exists(ctx, ledgerKey(prefix, "hcp-2")).Val(); n != 0 {
				t.Errorf("ledger written after a refused write")
			}
		})

		t.Run("ledger key of the wrong type", func(t *testing.T) {
			if err := rdb.Set(ctx, ledgerKey(prefix, "hcp-3"), "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := st.Set(ctx, "hcp-3", r, true)
			wantCorrupt(t, "Set", err)
			if n := rdb.Exists(ctx, Key(prefix, "hcp-3")).Val(); n != 0 {
				t.Errorf("consent written without its ledger entry")
			}
			_, _, err = st.History(ctx, "hcp-3", 0, 10)
			wantCorrupt(t, "History", err)
		})

		t.Run("ledger of another type", func(t *testing.T) {
			if err := rdb.HSet(ctx, ledgerKey(prefix, "hcp-5"), "x", "y").Err(); err != nil {
				t.Fatal(err)
			}
			_, err := st.Set(ctx, "hcp-5", r, true)
			wantCorrupt(t, "Set", err)
			if n := rdb.Exists(ctx, Key(prefix, "hcp-5")).Val(); n != 0 {
				t.Errorf("consent written without its ledger entry")
			}
			_, _, err = st.History(ctx, "hcp-5", 0, 10)
			wantCorrupt(t, "History", err)
		})

		t.Run("undecodable ledger entry", func(t *testing.T) {
			if err := rdb.RPush(ctx, ledgerKey(prefix, "hcp-4"), "{not json").Err(); err != nil {
				t.Fatal(err)
			}
			_, _, err := st.History(ctx, "hcp-4", 0, 10)
			wantCorrupt(t, "History", err)
		})
	})
}

// Earlier versions kept the ledger as a list at the same key. History reads
// it; the next write converts it to the string form, entries and sequence
// numbers kept.
func TestStoreLegacyListLedger(t *testing.T) {
	optIn := rec(arbiter.Email, arbiter.Promotional, OptIn, t0)
	optOut := rec(arbiter.Email, arbiter.Promotional, OptOut, t0.Add(time.Hour))
	storeTest(t, func(t *testing.T, st *Store, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		key := ledgerKey(prefix, "hcp-1")
		first, _, err := encodeLedger(LedgerEntry{Record: optIn, RecordedAt: t0}, false)
		if err != nil {
			t.Fatal(err)
		}
		// A format 1 entry, as the first versions wrote it.
		legacy := `{"v":1,"recorded_at":"2026-03-02T09:30:00Z","applied":true,"record":{"channel":"email","purpose":"promotional","status":"opt_in","captured_at":"2026-03-02T09:30:00Z","source":"crm"}}`
		if err := rdb.RPush(ctx, key, legacy, first).Err(); err != nil {
			t.Fatal(err)
		}
		if _, total, err := st.History(ctx, "hcp-1", 0, 10); err != nil || total != 2 {
			t.Fatalf("History of a list ledger: total %d, err %v; want 2, nil", total, err)
		}
		e, err := st.Set(ctx, "hcp-1", optOut, false)
		if err != nil {
			t.Fatalf("Set() error = %v", err)
		}
		if e.Seq != 2 {
			t.Errorf("Seq = %d, want 2 (after the two listed entries)", e.Seq)
		}
		if typ := rdb.Type(ctx, key).Val(); typ != "string" {
			t.Errorf("ledger type after a write = %q, want string", typ)
		}
		entries, total, err := st.History(ctx, "hcp-1", 0, 10)
		if err != nil || total != 3 || len(entries) != 3 {
			t.Fatalf("History after conversion: %d entries, total %d, err %v; want 3, 3, nil", len(entries), total, err)
		}
		if entries[0].Record.Source != "crm" || entries[1].Record.Status != OptIn || entries[2].Record.Status != OptOut || entries[2].Seq != 2 {
			t.Errorf("History after conversion = %+v", entries)
		}
	})
}

func TestDecode(t *testing.T) {
	fields := map[string]string{
		"sms|service||a-2":           "1772443800000|opt_in|1803979800000|web|u-17",
		"email|promotional|brand-x|": "1772443800000|opt_out|0|veeva|",
		"email|unspecified||":        "1772443800000|barred|0|veeva|",
		"_complete":                  "1773144000000",
	}
	got, err := Decode(fields)
	if err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	want := State{Complete: true, CompleteAt: now, Records: []Record{
		rec(arbiter.Email, 0, Barred, t0),
		rec(arbiter.Email, arbiter.Promotional, OptOut, t0).topic("brand-x"),
		{Channel: arbiter.SMS, Purpose: arbiter.Service, Address: "a-2", Status: OptIn, CapturedAt: t0,
			ExpiresAt: t0.AddDate(1, 0, 0), Source: "web", CapturedBy: "u-17"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode() =\n%+v\nwant\n%+v", got, want)
	}

	for _, empty := range []map[string]string{nil, {}} {
		if got, err := Decode(empty); err != nil || !reflect.DeepEqual(got, State{}) {
			t.Errorf("Decode(%v) = %+v, %v; want an empty State", empty, got, err)
		}
	}
}

func TestDecodeCorrupt(t *testing.T) {
	const value = "1772443800000|opt_in|0|veeva|u-1"
	field := "email|promotional||" + addrNew
	tests := []struct {
		name          string
		field, value  string
		wantInMessage string
	}{
		{"marker not a time", "_complete", "yesterday", "completeness marker"},
		{"marker zero", "_complete", "0", "completeness marker"},
		{"unknown meta field", "_version", "2", "field name"},
		{"field name with too few parts", "email|promotional|" + addrNew, value, "field name"},
		{"unknown channel", "fax|promotional||" + addrNew, value, "channel"},
		{"unknown purpose", "email|marketing||" + addrNew, value, "purpose"},
		{"opt-in without purpose", "email|unspecified||" + addrNew, value, "record.purpose"},
		{"barred with a purpose", field, "1772443800000|barred|0|veeva|", "record.purpose"},
		{"value with too few parts", field, "1772443800000|opt_in|0|veeva", "parts"},
		{"capture time not a number", field, "x|opt_in|0|veeva|", "capture time"},
		{"capture time zero", field, "0|opt_in|0|veeva|", "record.captured_at"},
		{"unknown status", field, "1772443800000|maybe|0|veeva|", "status"},
		{"expiry not a number", field, "1772443800000|opt_in|never|veeva|", "expiry"},
		{"expiry before capture", field, "1772443800000|opt_in|1|veeva|", "record.expires_at"},
		{"no source", field, "1772443800000|opt_in|0||", "record.source"},
		{"extra part", field, value + "|x", "record.captured_by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]string{"_complete": "1773144000000", tt.field: tt.value}
			got, err := Decode(fields)
			if !errors.Is(err, arbiter.ErrCorrupt) {
				t.Fatalf("Decode() = %+v, %v; want an error wrapping ErrCorrupt", got, err)
			}
			if !reflect.DeepEqual(got, State{}) {
				t.Errorf("Decode() state = %+v, want the zero State (unknown)", got)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantInMessage) {
				t.Errorf("Decode() error = %q, want it to mention %q", msg, tt.wantInMessage)
			}
			if strings.Contains(msg, addrNew) {
				t.Errorf("Decode() error = %q, contains an address", msg)
			}
		})
	}
}

func decodeBenchFields() map[string]string {
	s, _ := benchState()
	fields := map[string]string{completeField: "1773144000000"}
	for i := range s.Records {
		fields[fieldName(&s.Records[i])] = fieldValue(&s.Records[i])
	}
	return fields
}

func TestDecodeAllocs(t *testing.T) {
	fields := decodeBenchFields()
	// One allocation: the Records slice. Strings are substrings of fields.
	if got := testing.AllocsPerRun(100, func() { Decode(fields) }); got != 1 {
		t.Errorf("Decode allocates %v times per call, want 1", got)
	}
}

func BenchmarkDecode(b *testing.B) {
	fields := decodeBenchFields()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(fields); err != nil {
			b.Fatal(err)
		}
	}
}

// replyErr is an error reply from a Redis server, as go-redis returns it.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestStorageErr(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // the sentinel wrapped, nil for none
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, arbiter.ErrUnavailable},
		{"deadline", context.DeadlineExceeded, arbiter.ErrUnavailable},
		{"cancelled", context.Canceled, arbiter.ErrUnavailable},
		{"pool timeout", redis.ErrPoolTimeout, arbiter.ErrUnavailable},
		{"closed client", redis.ErrClosed, arbiter.ErrUnavailable},
		{"loading", replyErr("LOADING Redis is loading the dataset in memory"), arbiter.ErrUnavailable},
		{"busy script", replyErr("BUSY Redis is busy running a script"), arbiter.ErrUnavailable},
		{"replica", replyErr("READONLY You can't write against a read only replica."), arbiter.ErrUnavailable},
		{"cluster down", replyErr("CLUSTERDOWN The cluster is down"), arbiter.ErrUnavailable},
		{"out of memory", replyErr("OOM command not allowed when used memory > 'maxmemory'."), arbiter.ErrUnavailable},
		{"wrong type", replyErr("WRONGTYPE Operation against a key holding the wrong kind of value"), arbiter.ErrCorrupt},
		{"wrong type in a script", replyErr("ERR user_script:12: WRONGTYPE Operation against a key"), arbiter.ErrCorrupt},
		{"corrupt value", replyErr(corruptReply + " current consent value does not decode"), arbiter.ErrCorrupt},
		{"other reply", replyErr("ERR unknown command"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storageErr("get", tt.err)
			if !errors.Is(err, tt.err) {
				t.Errorf("storageErr() = %v, want the Redis error still wrapped", err)
			}
			for _, sentinel := range []error{arbiter.ErrUnavailable, arbiter.ErrCorrupt} {
				if got, want := errors.Is(err, sentinel), sentinel == tt.want; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, sentinel, got, want)
				}
			}
			if got, want := err.Error(), "consent: get: "; !strings.HasPrefix(got, want) {
				t.Errorf("storageErr() = %q, want the prefix %q", got, want)
			}
		})
	}
}
