package redisstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// Erasure: nothing personal of the recipient is left anywhere in Redis
// (not in a key's name or a value, but the pseudonymous id the
// withdrawals are kept under), the withdrawals still deny, the chain
// still verifies, and erasing again changes nothing.
func TestErase(t *testing.T) { eachBackend(t, testErase) }

func testErase(t *testing.T, b redistest.Backend) {
	ctx := context.Background()
	s, rdb, c := newStoreOn(t, b)
	s.SetChainKey(chainKey)
	const id = "ERASE-1"
	p := hcpProfile(id)
	p.Addresses[arbiter.Email] = "addr-erase-9c1d"
	p.Territories = []string{"TERR-ERASE-7"}
	p.Attributes = map[string]float64{"decile": 9.25}
	if err := s.UpsertProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	withdrawal := rec(arbiter.Email, arbiter.Promotional, consent.OptOut, t0.Add(-time.Hour))
	withdrawal.Source, withdrawal.CapturedBy, withdrawal.NoticeVersion = "src-erase-pref", "by-erase-rep", "notice-erase-v2"
	topical := withTopic(optIn(arbiter.Email, arbiter.Medical, t0.Add(-2*time.Hour)), "topic-erase-oncovia")
	topical = withAddress(topical, "addr-erase-9c1d")
	if _, err := s.SetConsentMany(ctx, id, []consent.Record{topical, withdrawal}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyEvent(ctx, recipient.Event{ID: "ev-erase-1", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Email,
		ActionID: "act-erase-1", Topic: "topic-erase-oncovia", OccurredAt: c.now().Add(-time.Minute), MessageID: "msg-erase-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendReceipts(ctx, []StoredReceipt{{HCPID: id, ID: "d-erase-1", At: c.now(), Data: []byte("receipt of addr-erase-9c1d")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddJourneyMember(ctx, []string{"j-erase"}, id, c.now()); err != nil {
		t.Fatal(err)
	}
	sealedLedger(t, s, c, "ERASE-2") // a neighbour, untouched

	res, err := s.Erase(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if res.ReceiptsDeleted != 1 || res.WithdrawalsKept != 1 || res.JourneysLeft != 1 || res.LedgerEntries != 2 {
		t.Errorf("erasure: %+v; want 1 receipt deleted, 1 withdrawal kept, 1 journey left, 2 entries minimised", res)
	}
	personal := []string{"addr-erase-9c1d", "TERR-ERASE-7", "9.25", "src-erase-pref", "by-erase-rep", "notice-erase-v2",
		"topic-erase-oncovia", "ev-erase-1", "act-erase-1", "msg-erase-1", "d-erase-1", "oncology"}
	for _, key := range keysWithPrefix(t, rdb, s.prefix) {
		dump := key + " " + dumpKey(t, rdb, key)
		for _, v := range personal {
			if strings.Contains(dump, v) {
				t.Errorf("after erasure, %q is still in %s", v, key)
			}
		}
		if strings.Contains(key, id) && !strings.HasSuffix(key, suffixConsentLog) && !strings.HasSuffix(key, suffixConsent) {
			t.Errorf("after erasure, key %s is left", key)
		}
	}
	// A receipt still queued somewhere, of a decision made before the
	// erasure, is not written.
	if n, err := s.AppendReceipts(ctx, []StoredReceipt{{HCPID: id, ID: "d-erase-2", At: c.now().Add(-time.Second), Data: []byte("late addr-erase-9c1d")}}); err != nil || n != 1 {
		t.Fatalf("a late receipt: %d skipped, %v; want it skipped", n, err)
	}
	// The withdrawal still denies, and nothing is allowed.
	st, err := s.GetConsent(ctx, id)
	if err != nil || st.Complete || len(st.Records) != 1 || st.Records[0].Status != consent.OptOut || st.Records[0].Channel != arbiter.Email {
		t.Fatalf("consent after erasure: %+v, %v; want the email opt-out alone, not complete", st, err)
	}
	if _, err := s.Load(ctx, id, c.now()); err == nil {
		t.Error("the erased recipient still loads")
	}
	// The ledger still proves it, and the chains verify.
	h, _, err := s.ConsentHistory(ctx, id, 0, 10)
	if err != nil || len(h) != 2 || !h[1].Erased || h[1].Record.Status != consent.OptOut || !h[1].Record.CapturedAt.Equal(withdrawal.CapturedAt) {
		t.Fatalf("ledger after erasure: %+v, %v", h, err)
	}
	if f := verifyAll(t, s, nil); len(f) != 0 {
		t.Fatalf("verify after erasure: %+v", f)
	}
	// Loaded again under the same id: still opted out of promotional email.
	if _, err := s.SetConsentMany(ctx, id, []consent.Record{optIn(arbiter.Email, arbiter.Promotional, t0.Add(-3*time.Hour))}, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.GetConsent(ctx, id); len(st.Records) != 1 || st.Records[0].Status != consent.OptOut {
		t.Errorf("an older opt-in after erasure: %+v; the withdrawal must stand", st.Records)
	}
	if f := verifyAll(t, s, nil); len(f) != 0 {
		t.Fatalf("verify after a write that follows the erasure: %+v", f)
	}
	if _, err := s.Erase(ctx, id); err != nil {
		t.Fatalf("erasing again: %v", err)
	}
	if f := verifyAll(t, s, nil); len(f) != 0 {
		t.Fatalf("verify after erasing twice: %+v", f)
	}
	_ = contact.Sent
}

// dumpKey is every value of a key, as text.
func dumpKey(t *testing.T, rdb redis.UniversalClient, key string) string {
	t.Helper()
	ctx := context.Background()
	switch typ := rdb.Type(ctx, key).Val(); typ {
	case "string":
		return rdb.Get(ctx, key).Val()
	case "hash":
		return fmt.Sprint(rdb.HGetAll(ctx, key).Val())
	case "list":
		return strings.Join(rdb.LRange(ctx, key, 0, -1).Val(), "\n")
	case "zset":
		return strings.Join(rdb.ZRange(ctx, key, 0, -1).Val(), "\n")
	case "set":
		return strings.Join(rdb.SMembers(ctx, key).Val(), "\n")
	default:
		return typ
	}
}
