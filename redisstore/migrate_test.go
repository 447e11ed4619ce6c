package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
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

// Counters written by earlier versions carry their own stamp
// ("<value>|<ms>"). Load, GetProfile and ApplyEvent refuse them as corrupt
// (nothing written); Migrate gives them one common time, after which they
// load with the values they always had and events apply as usual. Each
// case has a store of its own (see TestMigrateManyRecipients).
func TestMigrateProfileCounters(t *testing.T) { eachBackendAndMiniredis(t, testMigrateProfileCounters) }

func testMigrateProfileCounters(t *testing.T, b redistest.Backend) {
	t1 := t0.Add(halfLife)
	tests := []struct {
		name      string
		fields    map[string]string // written over a fresh profile
		at        time.Time         // loaded at
		wantCT    time.Time         // the common time after Migrate
		want      func(c *recipient.Counters)
		event     *recipient.Event            // applied after Migrate, if not nil
		afterAt   time.Time                   // then loaded at
		wantAfter func(c *recipient.Counters) // the counters then
	}{
		{
			// 4 sends as of t0, 2 engagements on sms as of t1: the values
			// TestLegacyCounterStamps expected of earlier versions, before
			// and after an open at t0 (out of order against the sms stamp).
			name:   "stamps only",
			fields: map[string]string{"s:email": "4|" + ms(t0), "e:sms": "2|" + ms(t1)},
			at:     t0.Add(2 * halfLife), wantCT: t1,
			want:    func(c *recipient.Counters) { c.Sent[arbiter.Email] = 1; c.Engagement[arbiter.SMS] = 1 },
			event:   &recipient.Event{ID: "a", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0},
			afterAt: t0.Add(2 * halfLife),
			wantAfter: func(c *recipient.Counters) {
				c.Sent[arbiter.Email] = 1
				c.Engagement[arbiter.SMS] = 1
				c.Engagement[arbiter.Email] = 0.25
				c.LastEngagement = t0
			},
		},
		{
			// Plain counters as of ct = t0 and a stamp newer than it: all
			// move to the stamp's time.
			name:   "stamp after the common time",
			fields: map[string]string{fCounterTime: ms(t0), "e:email": "4", "s:sms": "2|" + ms(t1)},
			at:     t1.Add(halfLife), wantCT: t1,
			want: func(c *recipient.Counters) { c.Engagement[arbiter.Email] = 1; c.Sent[arbiter.SMS] = 1 },
		},
		{
			// Stamps older than ct are decayed to ct.
			name:   "stamps before the common time",
			fields: map[string]string{fCounterTime: ms(t1), "e:email": "4", "s:email": "2|" + ms(t0), "t:efficacy": "3|" + ms(t0)},
			at:     t1, wantCT: t1,
			want: func(c *recipient.Counters) {
				c.Engagement[arbiter.Email] = 4
				c.Sent[arbiter.Email] = 1
				c.Topics = map[string]float64{"efficacy": 1.5}
			},
			// A send one half-life after ct moves every counter to it.
			event:   &recipient.Event{ID: "b", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t1.Add(halfLife)},
			afterAt: t1.Add(halfLife),
			wantAfter: func(c *recipient.Counters) {
				c.Engagement[arbiter.Email] = 2
				c.Sent[arbiter.Email] = 1.5
				c.Topics = map[string]float64{"efficacy": 0.75}
				c.LastContact[arbiter.Email] = t1.Add(halfLife)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb, c := newStoreOn(t, b)
			c.t = t1.Add(halfLife)
			ctx := context.Background()
			key := s.key("hcp-1", suffixProfile)
			if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
				t.Fatal(err)
			}
			if err := rdb.HSet(ctx, key, tt.fields).Err(); err != nil {
				t.Fatal(err)
			}
			legacy := rdb.HGetAll(ctx, key).Val()

			if _, err := s.Load(ctx, "hcp-1", tt.at); !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("Load() before Migrate: error = %v, want ErrCorrupt", err)
			}
			if _, _, err := s.GetProfile(ctx, "hcp-1"); !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("GetProfile() before Migrate: error = %v, want ErrCorrupt", err)
			}
			refused := recipient.Event{ID: "refused", HCPID: "hcp-1", Type: arbiter.EventOpened, Channel: arbiter.Email, OccurredAt: t0}
			if _, err := s.ApplyEvent(ctx, refused); !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("ApplyEvent() before Migrate: error = %v, want ErrCorrupt", err)
			}
			if got := rdb.HGetAll(ctx, key).Val(); !reflect.DeepEqual(got, legacy) {
				t.Errorf("profile = %v after a refused event, want unchanged %v", got, legacy)
			}
			if keys := keysWithPrefix(t, rdb, s.prefix); len(keys) != 1 {
				t.Errorf("keys %v after a refused event, want the profile alone", keys)
			}

			var reports []MigrateProgress
			p, err := s.Migrate(ctx, func(p MigrateProgress) { reports = append(reports, p) })
			if want := (MigrateProgress{Scanned: 1, Profiles: 1}); err != nil || p != want {
				t.Errorf("Migrate() = %+v, %v; want %+v", p, err, want)
			}
			if len(reports) == 0 || reports[len(reports)-1] != p {
				t.Errorf("progress reports = %+v, want the last to be the result %+v", reports, p)
			}

			fields := rdb.HGetAll(ctx, key).Val()
			for f, v := range fields {
				if isDecayedField(f) && strings.Contains(v, "|") {
					t.Errorf("%s = %q after Migrate, want the stamp-less form", f, v)
				}
			}
			if ct := fields[fCounterTime]; ct != ms(tt.wantCT) {
				t.Errorf("ct = %q after Migrate, want %s", ct, ms(tt.wantCT))
			}
			want := recipient.Counters{AsOf: tt.at}
			tt.want(&want)
			snap, err := s.Load(ctx, "hcp-1", tt.at)
			if err != nil {
				t.Fatalf("Load() after Migrate: %v", err)
			}
			if d := diffCounters(snap.Counters, want); d != "" {
				t.Errorf("Load() after Migrate: %s", d)
			}
			if !reflect.DeepEqual(snap.Profile, hcpProfile("hcp-1")) {
				t.Errorf("Profile = %+v, want %+v", snap.Profile, hcpProfile("hcp-1"))
			}

			// Migrate again: nothing left to do, nothing changed.
			p, err = s.Migrate(ctx, nil)
			if want := (MigrateProgress{Scanned: 1}); err != nil || p != want {
				t.Errorf("Migrate() again = %+v, %v; want %+v", p, err, want)
			}
			if got := rdb.HGetAll(ctx, key).Val(); !reflect.DeepEqual(got, fields) {
				t.Errorf("Migrate() again changed the profile: %v, want %v", got, fields)
			}

			if tt.event == nil {
				return
			}
			e := *tt.event
			e.HCPID = "hcp-1"
			if _, err := s.ApplyEvent(ctx, e); err != nil {
				t.Fatalf("ApplyEvent() after Migrate: %v", err)
			}
			want = recipient.Counters{AsOf: tt.afterAt}
			tt.wantAfter(&want)
			if snap, err = s.Load(ctx, "hcp-1", tt.afterAt); err != nil {
				t.Fatal(err)
			}
			if d := diffCounters(snap.Counters, want); d != "" {
				t.Errorf("after an event: %s", d)
			}
		})
	}
	t.Run("current form", func(t *testing.T) {
		s, rdb, _ := newStoreOn(t, b)
		ctx := context.Background()
		if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ApplyEvent(ctx, recipient.Event{ID: "c1", HCPID: "hcp-1", Type: arbiter.EventSent, Channel: arbiter.Email, OccurredAt: t0}); err != nil {
			t.Fatal(err)
		}
		before := rdb.HGetAll(ctx, s.key("hcp-1", suffixProfile)).Val()
		// The profile, the dedup set, the history and the touch ledger.
		if p, err := s.Migrate(ctx, nil); err != nil || p != (MigrateProgress{Scanned: 4}) {
			t.Errorf("Migrate() = %+v, %v; want 4 keys scanned, nothing converted", p, err)
		}
		if got := rdb.HGetAll(ctx, s.key("hcp-1", suffixProfile)).Val(); !reflect.DeepEqual(got, before) {
			t.Errorf("Migrate changed a current profile: %v, want %v", got, before)
		}
	})
}

// legacyEntries is a consent ledger as earlier versions wrote it: a
// record captured and ledgered, one that did not apply, the marker alone
// and a bar. The current consent hash holds what they made current.
func legacyEntries() ([]consent.LedgerEntry, []consent.Record) {
	in := optIn(arbiter.Email, arbiter.Promotional, t0.Add(-3*day))
	pending := consent.Record{Channel: arbiter.SMS, Purpose: arbiter.Service, Topic: "brand-x", Address: "sms-1",
		Status: consent.Pending, CapturedAt: t0.Add(-4 * day), ExpiresAt: t0.Add(30 * day), Source: "web", CapturedBy: "u-1"}
	bar := rec(arbiter.Push, 0, consent.Barred, t0.Add(-day))
	entries := []consent.LedgerEntry{
		{RecordedAt: t0.Add(-3*day + time.Hour), Record: in, Applied: true, MarkedComplete: true},
		{RecordedAt: t0.Add(-2*day + 123*time.Millisecond), Record: pending, Applied: false},
		{RecordedAt: t0.Add(-2 * day), Applied: true, MarkedComplete: true},
		{RecordedAt: t0.Add(-day), Record: bar, Applied: true},
	}
	return entries, []consent.Record{in, bar}
}

// legacyLedgers are the forms of ledger earlier versions left at
// :consent-ledger, each with the entries it holds.
func legacyLedgers() []struct {
	name    string
	write   func(ctx context.Context, rdb redis.UniversalClient, key string) error
	entries []consent.LedgerEntry
} {
	entries, _ := legacyEntries()
	lines := func(encode func(consent.LedgerEntry) string) []string {
		var out []string
		for _, e := range entries {
			out = append(out, encode(e))
		}
		return out
	}
	asString := func(lines []string) func(ctx context.Context, rdb redis.UniversalClient, key string) error {
		return func(ctx context.Context, rdb redis.UniversalClient, key string) error {
			return rdb.Set(ctx, key, strings.Join(lines, "\n")+"\n", 0).Err()
		}
	}
	asList := func(lines []string) func(ctx context.Context, rdb redis.UniversalClient, key string) error {
		return func(ctx context.Context, rdb redis.UniversalClient, key string) error {
			args := make([]any, len(lines))
			for i, l := range lines {
				args[i] = l
			}
			return rdb.RPush(ctx, key, args...).Err()
		}
	}
	mixed := lines(format1)
	copy(mixed[2:], lines(format2)[2:]) // format 1 entries, then format 2 ones appended later
	return []struct {
		name    string
		write   func(ctx context.Context, rdb redis.UniversalClient, key string) error
		entries []consent.LedgerEntry
	}{
		{"string of format 2", asString(lines(format2)), entries},
		{"list of format 1", asList(lines(format1)), entries},
		{"list of format 2", asList(lines(format2)), entries},
		{"list of format 1 then 2", asList(mixed), entries},
		{"empty string", func(ctx context.Context, rdb redis.UniversalClient, key string) error {
			return rdb.Set(ctx, key, "", 0).Err()
		}, nil},
	}
}

// A ledger of an earlier version (at :consent-ledger: a string of format 2
// lines, or a list of format 1 or 2 entries) blocks consent writes and
// ConsentHistory (arbiter.ErrUnavailable: awaits migration) while decisions
// still read the current consent. Migrate converts it: ConsentHistory then
// returns the same entries numbered 0..n-1, and new writes continue at n.
// Migrate twice is a no-op. Each case has a store of its own (see
// TestMigrateManyRecipients).
func TestMigrateLedger(t *testing.T) { eachBackendAndMiniredis(t, testMigrateLedger) }

func testMigrateLedger(t *testing.T, b redistest.Backend) {
	_, current := legacyEntries()
	slices.SortFunc(current, compareScope)
	optOut := rec(arbiter.Email, arbiter.Promotional, consent.OptOut, now.Add(-time.Hour))
	for _, tt := range legacyLedgers() {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb, c := newStoreOn(t, b)
			ctx := context.Background()
			if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
				t.Fatal(err)
			}
			if err := tt.write(ctx, rdb, s.key("hcp-1", suffixLegacyLedger)); err != nil {
				t.Fatal(err)
			}
			// The current consent, as the earlier version left it.
			wantCurrent := consent.State{}
			if tt.entries != nil {
				wantCurrent = consent.State{Complete: true, CompleteAt: t0.Add(-2 * day), Records: current}
				fields := []any{completeField, ms(wantCurrent.CompleteAt)}
				for _, r := range current {
					fields = append(fields, consentField(&r), consentValue(&r))
				}
				if err := rdb.HSet(ctx, s.key("hcp-1", suffixConsent), fields...).Err(); err != nil {
					t.Fatal(err)
				}
			}
			c.t = now
			before := snapshot(t, rdb, s.prefix)

			blocked := []struct {
				name string
				run  func() error
			}{
				{"SetConsent", func() error { _, err := s.SetConsent(ctx, "hcp-1", optOut, false); return err }},
				{"SetConsentMany", func() error { _, err := s.SetConsentMany(ctx, "hcp-1", []consent.Record{optOut}, true); return err }},
				{"SetConsentMany(marker)", func() error { _, err := s.SetConsentMany(ctx, "hcp-1", nil, true); return err }},
				{"ConsentHistory", func() error { _, _, err := s.ConsentHistory(ctx, "hcp-1", 0, 10); return err }},
				{"ApplyEvent(unsubscribe)", func() error {
					_, err := s.ApplyEvent(ctx, unsubscribe("hcp-1", "u-blocked", now.Add(-time.Minute)))
					return err
				}},
			}
			for _, op := range blocked {
				err := op.run()
				if !errors.Is(err, arbiter.ErrUnavailable) || !strings.Contains(err.Error(), "migrat") {
					t.Errorf("%s before Migrate: error = %v, want ErrUnavailable: awaits migration", op.name, err)
				}
			}
			if after := snapshot(t, rdb, s.prefix); !reflect.DeepEqual(after, before) {
				t.Errorf("refused writes changed the data:\n%v\nwant\n%v", after, before)
			}
			// Decisions still read the current consent.
			if got, err := s.GetConsent(ctx, "hcp-1"); err != nil || !reflect.DeepEqual(got, wantCurrent) {
				t.Errorf("GetConsent() before Migrate = %+v, %v; want %+v", got, err, wantCurrent)
			}
			if snap, err := s.Load(ctx, "hcp-1", now); err != nil || snap.ConsentErr != nil || !reflect.DeepEqual(snap.Consent, wantCurrent) {
				t.Errorf("Load() before Migrate = %+v, %v; want consent %+v", snap, err, wantCurrent)
			}

			scanned := len(before) // the profile, the old ledger and the consent if any
			p, err := s.Migrate(ctx, nil)
			if want := (MigrateProgress{Scanned: scanned, Ledgers: 1}); err != nil || p != want {
				t.Fatalf("Migrate() = %+v, %v; want %+v", p, err, want)
			}
			if n := rdb.Exists(ctx, s.key("hcp-1", suffixLegacyLedger)).Val(); n != 0 {
				t.Errorf("the old ledger is still there after Migrate")
			}
			if got, err := s.GetConsent(ctx, "hcp-1"); err != nil || !reflect.DeepEqual(got, wantCurrent) {
				t.Errorf("GetConsent() after Migrate = %+v, %v; want %+v (unchanged)", got, err, wantCurrent)
			}
			got := ledger(t, s, "hcp-1")
			if len(got) != len(tt.entries) {
				t.Fatalf("ConsentHistory() = %d entries, want %d: %+v", len(got), len(tt.entries), got)
			}
			for i, want := range tt.entries {
				want.Seq = int64(i)
				if got[i] != want {
					t.Errorf("entry %d =\n %+v\nwant\n %+v", i, got[i], want)
				}
			}

			// Migrate again: nothing to do, nothing changed.
			converted := snapshot(t, rdb, s.prefix)
			if p, err := s.Migrate(ctx, nil); err != nil || p.Ledgers != 0 || p.Profiles != 0 {
				t.Errorf("Migrate() again = %+v, %v; want nothing converted", p, err)
			}
			if again := snapshot(t, rdb, s.prefix); !reflect.DeepEqual(again, converted) {
				t.Errorf("Migrate() again changed the data:\n%v\nwant\n%v", again, converted)
			}

			// Writes continue the sequence.
			n := int64(len(tt.entries))
			e, err := s.SetConsent(ctx, "hcp-1", optOut, false)
			if want := (consent.LedgerEntry{Seq: n, Record: optOut, RecordedAt: now, Applied: true}); err != nil || e != want {
				t.Errorf("SetConsent() after Migrate = %+v, %v; want %+v", e, err, want)
			}
			if _, err := s.ApplyEvent(ctx, unsubscribe("hcp-1", "u-1", now.Add(-time.Minute))); err != nil {
				t.Fatalf("ApplyEvent(unsubscribe) after Migrate: %v", err)
			}
			all := ledger(t, s, "hcp-1")
			if int64(len(all)) != n+2 || all[n+1].Seq != n+1 || all[n+1].Record.Source != "unsubscribe-event" {
				t.Errorf("ledger after two writes = %+v, want %d entries ending with the unsubscribe at seq %d", all, n+2, n+1)
			}
		})
	}
}

// snapshot returns every key under prefix with its type and content, to
// tell whether anything changed.
func snapshot(t *testing.T, rdb redis.UniversalClient, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range keysWithPrefix(t, rdb, prefix) {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		default:
			t.Fatalf("snapshot: key %s is a %s", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[k] = typ + " " + fmt.Sprint(v)
	}
	return out
}

// Migrate refuses what it cannot convert faithfully, and changes nothing
// then: the recipient's writes stay blocked until someone looks.
func TestMigrateLedgerRefuses(t *testing.T) { eachBackendAndMiniredis(t, testMigrateLedgerRefuses) }

func testMigrateLedgerRefuses(t *testing.T, b redistest.Backend) {
	entries, _ := legacyEntries()
	good := format2(entries[0])
	tests := []struct {
		name  string
		write func(s *Store, rdb redis.UniversalClient, id string) error
	}{
		{"undecodable entry in a list", func(s *Store, rdb redis.UniversalClient, id string) error {
			return rdb.RPush(context.Background(), s.key(id, suffixLegacyLedger), good, "{not json").Err()
		}},
		{"undecodable line in a string", func(s *Store, rdb redis.UniversalClient, id string) error {
			return rdb.Set(context.Background(), s.key(id, suffixLegacyLedger), good+"\n2|x\n", 0).Err()
		}},
		{"string cut mid-entry", func(s *Store, rdb redis.UniversalClient, id string) error {
			return rdb.Set(context.Background(), s.key(id, suffixLegacyLedger), good+"\n"+good[:10], 0).Err()
		}},
		{"a hash", func(s *Store, rdb redis.UniversalClient, id string) error {
			return rdb.HSet(context.Background(), s.key(id, suffixLegacyLedger), "x", "y").Err()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb, _ := newStoreOn(t, b)
			ctx := context.Background()
			if err := tt.write(s, rdb, "hcp-1"); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, rdb, s.prefix)
			_, err := s.Migrate(ctx, nil)
			if !errors.Is(err, arbiter.ErrCorrupt) {
				t.Errorf("Migrate() error = %v, want ErrCorrupt", err)
			}
			if after := snapshot(t, rdb, s.prefix); !reflect.DeepEqual(after, before) {
				t.Errorf("a refused Migrate changed the data:\n%v\nwant\n%v", after, before)
			}
			if _, err := s.SetConsent(ctx, "hcp-1", rec(arbiter.Email, arbiter.Medical, consent.OptIn, t0), false); !errors.Is(err, arbiter.ErrUnavailable) {
				t.Errorf("SetConsent() error = %v, want ErrUnavailable (still awaiting migration)", err)
			}
		})
	}
}

// A server of the earlier version that wrote the old ledger after a first
// migration (a rolling deploy): the next Migrate appends its entries after
// those converted, numbered on, and the recipient's writes go on.
func TestMigrateAppendsAfterAConvertedLedger(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		entries, _ := legacyEntries()
		s, rdb, _ := newStoreOn(t, b)
		ctx := context.Background()
		if err := rdb.RPush(ctx, s.key("hcp-1", suffixConsentLog), format3(0, entries[0]), format3(1, entries[1])).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.RPush(ctx, s.key("hcp-1", suffixLegacyLedger), format2(entries[2])).Err(); err != nil {
			t.Fatal(err)
		}
		p, err := s.Migrate(ctx, nil)
		if err != nil || p.Ledgers != 1 {
			t.Fatalf("Migrate() = %+v, %v; want one ledger converted", p, err)
		}
		got, total, err := s.ConsentHistory(ctx, "hcp-1", 0, 10)
		if err != nil || total != 3 {
			t.Fatalf("ConsentHistory: %d entries, %v; want 3", total, err)
		}
		for i, e := range got {
			if e.Seq != int64(i) {
				t.Errorf("entry %d has seq %d", i, e.Seq)
			}
		}
		if got[2].Record != entries[2].Record {
			t.Errorf("the appended entry is %+v, want %+v", got[2].Record, entries[2].Record)
		}
		if _, err := s.SetConsent(ctx, "hcp-1", rec(arbiter.Email, arbiter.Medical, consent.OptIn, t0), false); err != nil {
			t.Errorf("SetConsent after the second migration: %v", err)
		}
	})
}

// Migrate converts every recipient it finds: on a cluster, on every
// master. Recipients spread over the masters, each with stamped counters
// and an old ledger, are all converted, and the progress adds up.
func TestMigrateManyRecipients(t *testing.T) { eachBackendAndMiniredis(t, testMigrateManyRecipients) }

func testMigrateManyRecipients(t *testing.T, b redistest.Backend) {
	s, rdb, _ := newStoreOn(t, b)
	ctx := context.Background()
	entries, _ := legacyEntries()
	const n = 12
	masters := map[string]bool{}
	for i := range n {
		id := "hcp-" + strconv.Itoa(i)
		if err := s.UpsertProfile(ctx, hcpProfile(id)); err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(ctx, s.key(id, suffixProfile), "s:email", "4|"+ms(t0)).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.RPush(ctx, s.key(id, suffixLegacyLedger), format1(entries[0]), format2(entries[1])).Err(); err != nil {
			t.Fatal(err)
		}
		if cc, ok := rdb.(*redis.ClusterClient); ok {
			node, err := cc.MasterForKey(ctx, s.key(id, suffixProfile))
			if err != nil {
				t.Fatal(err)
			}
			masters[node.Options().Addr] = true
		}
	}
	if b.Cluster && len(masters) < 2 {
		t.Fatalf("the recipients are on %d master(s), want them spread over several", len(masters))
	}
	var mu sync.Mutex
	var last MigrateProgress
	p, err := s.Migrate(ctx, func(p MigrateProgress) { mu.Lock(); last = p; mu.Unlock() })
	if want := (MigrateProgress{Scanned: 2 * n, Ledgers: n, Profiles: n}); err != nil || p != want {
		t.Errorf("Migrate() = %+v, %v; want %+v", p, err, want)
	}
	if last != p {
		t.Errorf("last progress report = %+v, want the result %+v", last, p)
	}
	for i := range n {
		id := "hcp-" + strconv.Itoa(i)
		if got := ledger(t, s, id); len(got) != 2 || got[1].Seq != 1 {
			t.Errorf("%s: ledger after Migrate = %+v, want 2 entries", id, got)
		}
		if _, err := s.Load(ctx, id, t0); err != nil {
			t.Errorf("%s: Load after Migrate: %v", id, err)
		}
	}
}
