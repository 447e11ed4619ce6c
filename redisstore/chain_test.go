package redisstore

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/scoring"
)

var chainKey = []byte("the deployment's chain key, 32 b")

// sealedLedger writes a recipient's consent the ways a server does: single
// records, a write of several (two of one scope), a marker-only write, a
// repeat of an idempotent write, and concurrent writers.
func sealedLedger(t *testing.T, s *Store, c *clock, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.SetConsentMany(ctx, id, nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetConsent(ctx, id, optIn(arbiter.Email, arbiter.Promotional, t0.Add(-time.Hour)), false); err != nil {
		t.Fatal(err)
	}
	// Two of one scope in one write: the second, earlier, does not apply.
	es, err := s.SetConsentMany(ctx, id, []consent.Record{
		rec(arbiter.SMS, arbiter.Promotional, consent.OptIn, t0.Add(-30*time.Minute)),
		rec(arbiter.SMS, arbiter.Promotional, consent.OptOut, t0.Add(-40*time.Minute)),
		withTopic(optIn(arbiter.Email, arbiter.Medical, t0.Add(-20*time.Minute)), "oncovia"),
	}, true)
	if err != nil || len(es) != 3 || !es[0].Applied || es[1].Applied || !es[2].Applied {
		t.Fatalf("a write of three: %+v, %v", es, err)
	}
	for range 2 { // the same idempotent write twice: ledgered once
		if _, _, err := s.writeConsent(ctx, id, []consent.Record{rec(arbiter.Email, arbiter.Promotional, consent.OptOut, t0.Add(-10*time.Minute))},
			false, "op-1", c.now()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rec(arbiter.Webinar, arbiter.Medical, consent.OptIn, t0.Add(-time.Duration(i)*time.Minute))
			if _, err := s.SetConsent(ctx, id, r, false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func verifyAll(t *testing.T, s *Store, cp map[string]ChainHead) []Finding {
	t.Helper()
	var out []Finding
	err := s.VerifyLedgers(context.Background(), chainKey, cp, nil, nil, nil, func(f *Finding) error {
		if f != nil {
			out = append(out, *f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func heads(t *testing.T, s *Store) map[string]ChainHead {
	t.Helper()
	out := map[string]ChainHead{}
	if err := s.ChainHeads(context.Background(), func(id string, h ChainHead) error { out[id] = h; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// The tamper tests: on a sealed ledger, each way of changing it through
// Redis is found, and the first entry it touched is named. A cut tail
// needs the checkpoint.
func TestChainDetectsTampering(t *testing.T) { eachBackend(t, testChainDetectsTampering) }

func testChainDetectsTampering(t *testing.T, b redistest.Backend) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// tamper changes the ledger (a list of "3|seq|..." entries) or the
		// current consent of the recipient, through Redis.
		tamper func(t *testing.T, rdb redis.UniversalClient, log, cur string)
		seq    int64 // the entry the finding must name (-1: none)
		needCP bool  // found only against the checkpoint
	}{
		{"edit an entry's status", func(t *testing.T, rdb redis.UniversalClient, log, _ string) {
			e := rdb.LIndex(ctx, log, 2).Val()
			set(t, rdb.LSet(ctx, log, 2, strings.Replace(e, "|opt_in|", "|opt_out|", 1)))
		}, 2, false},
		{"delete an entry in the middle", func(t *testing.T, rdb redis.UniversalClient, log, _ string) {
			set(t, rdb.LRem(ctx, log, 1, rdb.LIndex(ctx, log, 3).Val()))
		}, 3, false},
		{"swap two entries", func(t *testing.T, rdb redis.UniversalClient, log, _ string) {
			a, b := rdb.LIndex(ctx, log, 4).Val(), rdb.LIndex(ctx, log, 5).Val()
			set(t, rdb.LSet(ctx, log, 4, b))
			set(t, rdb.LSet(ctx, log, 5, a))
		}, 4, false},
		{"renumber after deleting", func(t *testing.T, rdb redis.UniversalClient, log, _ string) {
			es := rdb.LRange(ctx, log, 0, -1).Val()
			set(t, rdb.Del(ctx, log))
			for i, e := range append(es[:1:1], es[2:]...) {
				_, rest, _ := strings.Cut(strings.TrimPrefix(e, "3|"), "|")
				set(t, rdb.RPush(ctx, log, "3|"+itoa(i)+"|"+rest))
			}
		}, 1, false},
		{"append a forged entry", func(t *testing.T, rdb redis.UniversalClient, log, _ string) {
			n := rdb.LLen(ctx, log).Val()
			last := rdb.LIndex(ctx, log, -1).Val()
			_, rest, _ := strings.Cut(strings.TrimPrefix(last, "3|"), "|")
			set(t, rdb.RPush(ctx, log, "3|"+itoa(int(n))+"|"+rest))
		}, -2, false},
		{"rebuild the chain with another key", func(t *testing.T, rdb redis.UniversalClient, log, _ string) {
			es := rdb.LRange(ctx, log, 0, -1).Val()
			prev := ""
			for i, e := range es {
				canon, _, _ := canonEntry(e)
				mac := chainMAC([]byte("an attacker's own key, 32 bytes!"), "CHAIN-1", prev, canon)
				f := strings.Split(e, "|")
				f[ledgerDigestField] = mac
				prev = mac
				set(t, rdb.LSet(ctx, log, int64(i), strings.Join(f, "|")))
			}
		}, 0, false},
		{"re-enable a withdrawn opt-in in the current consent", func(t *testing.T, rdb redis.UniversalClient, _, cur string) {
			for f, v := range rdb.HGetAll(ctx, cur).Val() {
				if strings.Contains(v, "|opt_out|") {
					set(t, rdb.HSet(ctx, cur, f, strings.Replace(v, "|opt_out|", "|opt_in|", 1)))
				}
			}
		}, -1, false},
		{"forge the completeness marker", func(t *testing.T, rdb redis.UniversalClient, _, cur string) {
			set(t, rdb.HSet(ctx, cur, completeField, "1700000000000"))
		}, -1, false},
		{"cut the tail", func(t *testing.T, rdb redis.UniversalClient, log, _ string) {
			set(t, rdb.RPop(ctx, log))
			set(t, rdb.RPop(ctx, log))
		}, -3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rdb, c := newStoreOn(t, b)
			s.SetChainKey(chainKey)
			const id = "CHAIN-1"
			sealedLedger(t, s, c, id)
			sealedLedger(t, s, c, "CHAIN-2") // an untouched neighbour
			if f := verifyAll(t, s, nil); len(f) != 0 {
				t.Fatalf("before tampering: %+v", f)
			}
			cp := heads(t, s)
			n := cp[id].Length
			tc.tamper(t, rdb, s.key(id, suffixConsentLog), s.key(id, suffixConsent))
			without := verifyAll(t, s, nil)
			with := verifyAll(t, s, cp)
			// (Without it, a cut tail shows only if it changed the current
			// consent: a chain alone cannot see it.)
			got := with
			if !tc.needCP {
				got = without
			}
			if len(got) != 1 || got[0].HCPID != id {
				t.Fatalf("findings %+v, want one, about %s", got, id)
			}
			want := tc.seq
			switch tc.seq {
			case -2: // the forged entry, appended after the last
				want = n
			case -3: // where the cut began
				want = n - 2
			}
			if got[0].Seq != want {
				t.Errorf("finding %+v names entry %d, want %d", got[0], got[0].Seq, want)
			}
			t.Logf("%s: %s", tc.name, got[0].Problem)
		})
	}
}

// Current consent made with no ledger at all is found.
func TestChainFindsConsentWithoutALedger(t *testing.T) {
	s, rdb, _ := newStore(t)
	s.SetChainKey(chainKey)
	ctx := context.Background()
	set(t, rdb.HSet(ctx, s.key("GHOST-1", suffixConsent), "email|promotional||", ms(t0)+"|opt_in|0|forged|", completeField, ms(t0)))
	f := verifyAll(t, s, nil)
	if len(f) != 1 || f[0].HCPID != "GHOST-1" || !strings.Contains(f[0].Problem, "without a ledger") {
		t.Fatalf("findings %+v, want GHOST-1's consent without a ledger", f)
	}
}

// Entries written before sealing began (an earlier version, or no audit
// secret then) are counted, not taken for tampering, and the sealed ones
// after them are verified; an unsealed entry after sealed ones is a
// finding.
func TestChainAfterUnsealedEntries(t *testing.T) {
	ctx := context.Background()
	s, rdb, c := newStore(t)
	if _, err := s.SetConsent(ctx, "UNSEALED-1", optIn(arbiter.Email, arbiter.Promotional, t0.Add(-time.Hour)), true); err != nil {
		t.Fatal(err)
	}
	s.SetChainKey(chainKey) // the upgrade
	sealedLedger(t, s, c, "UNSEALED-1")
	var unsealed atomic.Int64
	var f []Finding
	if err := s.VerifyLedgers(ctx, chainKey, nil, nil, nil, &unsealed, func(x *Finding) error {
		if x != nil {
			f = append(f, *x)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(f) != 0 || unsealed.Load() != 1 {
		t.Fatalf("after the upgrade: findings %+v, %d unsealed; want none, and the one entry before it", f, unsealed.Load())
	}
	s.SetChainKey(nil) // a server without the key writes after sealed entries
	if _, err := s.SetConsent(ctx, "UNSEALED-1", optIn(arbiter.SMS, arbiter.Service, t0.Add(-time.Minute)), false); err != nil {
		t.Fatal(err)
	}
	n := rdb.LLen(ctx, s.key("UNSEALED-1", suffixConsentLog)).Val()
	if f = verifyAll(t, s, nil); len(f) != 1 || f[0].Seq != n-1 || !strings.Contains(f[0].Problem, "not sealed, after sealed ones") {
		t.Fatalf("findings %+v, want the last entry, unsealed after sealed ones", f)
	}
}

func set(t *testing.T, c redis.Cmder) {
	t.Helper()
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The operations trail (definitions activations, journey pauses and
// moves) is chained like the consent ledgers: edits, removals and a cut
// tail (against a checkpoint) are found.
func TestOperationsTrail(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper func(rdb redis.UniversalClient, key string)
		seq    int64
	}{
		{"edit", func(rdb redis.UniversalClient, key string) {
			e := rdb.LIndex(ctx, key, 1).Val()
			rdb.LSet(ctx, key, 1, strings.Replace(e, "journey.pause", "journey.resume", 1))
		}, 1},
		{"delete", func(rdb redis.UniversalClient, key string) { rdb.LRem(ctx, key, 1, rdb.LIndex(ctx, key, 0).Val()) }, 0},
		{"cut the tail", func(rdb redis.UniversalClient, key string) { rdb.RPop(ctx, key) }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rdb, c := newStore(t)
			s.SetChainKey(chainKey)
			if err := s.StoreDefinitions(ctx, testSet(t)); err != nil {
				t.Fatal(err)
			}
			if err := s.ActivateDefinitions(ctx, testSet(t).Version); err != nil {
				t.Fatal(err)
			}
			if err := s.SetJourneyPaused(ctx, "j-1", true); err != nil {
				t.Fatal(err)
			}
			if err := s.SetJourneyPaused(ctx, "j-1", false); err != nil {
				t.Fatal(err)
			}
			if err := s.UpsertProfile(ctx, hcpProfile("TRAIL-MOVE")); err != nil {
				t.Fatal(err)
			}
			if err := s.MoveInJourney(ctx, "TRAIL-MOVE", "j-1", "step-2", c.now()); err != nil {
				t.Fatal(err)
			}
			if n := rdb.LLen(ctx, s.trailKey()).Val(); n != 4 {
				t.Fatalf("the trail has %d entries, want 4 (activate, pause, resume, move)", n)
			}
			if f := verifyAll(t, s, nil); len(f) != 0 {
				t.Fatalf("untouched: %+v", f)
			}
			cp := heads(t, s)
			tc.tamper(rdb, s.trailKey())
			f := verifyAll(t, s, cp)
			if len(f) != 1 || f[0].HCPID != "" || f[0].Seq != tc.seq || !strings.Contains(f[0].Problem, "operations trail") {
				t.Fatalf("findings %+v, want the operations trail's entry %d", f, tc.seq)
			}
		})
	}
}

// testSet is the demo's catalog, model and consent policy as a set.
func testSet(t *testing.T) *definitions.Set {
	t.Helper()
	set, err := definitions.Parse(map[string][]byte{definitions.CatalogFile: catalog.DemoJSON(),
		definitions.ModelFile: scoring.DemoJSON(), definitions.PolicyFile: consent.DefaultPolicyJSON()})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// A ledger written before sealing began (the previous release's, or
// without an audit key) still makes the current consent and the
// completeness marker: its unsealed entries are not verifiable, but what
// follows from them is checked, and agrees.
func TestUnsealedLedgerMakesTheCurrentConsent(t *testing.T) {
	log := []string{
		"3|0|1795680660780|am|email|promotional|||opt_out|1775031060000|0|demo-crm|demo-seed||",
		"3|1|1795680660780|am|sms|service||ph-1|opt_in|1775031060000|0|demo-crm|demo-seed||",
	}
	cur := map[string]string{
		"email|promotional||": "1775031060000|opt_out|0|demo-crm|demo-seed",
		"sms|service||ph-1":   "1775031060000|opt_in|0|demo-crm|demo-seed",
		completeField:         "1795680660780",
		versionField:          "2",
	}
	var unsealed int64
	if f, bad := verifyLedger([]byte("key"), "HCP-000001", log, cur, ChainHead{}, false, &unsealed); bad {
		t.Fatalf("a consistent unsealed ledger: %+v", f)
	}
	if unsealed != 2 {
		t.Errorf("unsealed entries counted: %d, want 2", unsealed)
	}
	cur[completeField] = "1795680660999"
	if _, bad := verifyLedger([]byte("key"), "HCP-000001", log, cur, ChainHead{}, false, &unsealed); !bad {
		t.Error("a completeness marker the unsealed ledger does not make went unnoticed")
	}
}
