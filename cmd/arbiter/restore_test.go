package main

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// A restore from an older backup must not resurrect a withdrawn consent:
// withdraw, restore the recipient's keys as they were before, see the
// opt-in back, re-apply the ledger exported before the restore, and the
// withdrawal holds again; re-applying twice writes once.
func TestRestoreDoesNotResurrectWithdrawnConsent(t *testing.T) {
	b := singleRedis(t)
	ts := start(t, b, 1, "-audit-key", auditKeyFile(t))
	c := ts.client
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: b.Addrs[0]})
	defer rdb.Close()
	const id, action = "RESTORE-1", "email-cardiolex-efficacy"
	consented := optIn(arbiter.Email, arbiter.Promotional)
	consented.CapturedAt = ms(time.Now().Add(-48 * time.Hour))
	addRecipient(t, c, id, "America/New_York", arbiter.HCP, consented)
	recommended := func() bool {
		t.Helper()
		d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 1, Candidates: []string{action}})
		if err != nil {
			t.Fatal(err)
		}
		return len(d.Recommendations) == 1
	}
	if !recommended() {
		t.Fatal("opted in: the email is not recommended")
	}

	// The backup: the recipient's consent keys as they are now.
	keys := []string{ts.cfg.RedisPrefix + ":{" + id + "}:consent", ts.cfg.RedisPrefix + ":{" + id + "}:consent-log",
		ts.cfg.RedisPrefix + ":{" + id + "}:consent-ops"}
	backup := map[string]string{}
	for _, k := range keys {
		if v, err := rdb.Dump(ctx, k).Result(); err == nil {
			backup[k] = v
		}
	}
	// Everything recorded from the next millisecond on is after the backup.
	since := ms(time.Now()).Add(time.Millisecond)
	for time.Now().Before(since) {
		runtime.Gosched()
	}

	if _, err := c.Unsubscribe(ctx, id, client.ChannelChange{Channel: arbiter.Email, CapturedAt: ms(time.Now()), Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if recommended() {
		t.Fatal("after the opt-out the email is still recommended")
	}
	// The export, taken before disaster strikes and kept elsewhere.
	var exported []*nbapb.ExportedEntry
	if err := c.ExportLedger(ctx, since, func(r *nbapb.ExportLedgerResponse) error {
		exported = append(exported, r.GetEntries()...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(exported) != 1 || exported[0].GetHcpId() != id || exported[0].GetEntry().GetRecord().GetStatus() != nbapb.ConsentStatus_CONSENT_STATUS_OPT_OUT {
		t.Fatalf("exported %v, want the one opt-out", exported)
	}

	// The restore: the keys as the backup had them.
	for _, k := range keys {
		if v, ok := backup[k]; ok {
			if err := rdb.RestoreReplace(ctx, k, 0, v).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !recommended() {
		t.Fatal("the restore did not bring the opt-in back: the test shows nothing")
	}

	r, err := c.ReapplyLedger(ctx, exported)
	if err != nil || r.GetReapplied() != 1 || r.GetAlreadyPresent() != 0 {
		t.Fatalf("reapply: %v, %v; want the opt-out written again", r, err)
	}
	if recommended() {
		t.Fatal("after re-applying the ledger, the withdrawn consent still allows the email")
	}
	if r, err := c.ReapplyLedger(ctx, exported); err != nil || r.GetReapplied() != 0 || r.GetAlreadyPresent() != 1 {
		t.Errorf("reapplying again: %v, %v; want nothing written twice", r, err)
	}
	h, n, err := c.ConsentHistory(ctx, id, 0, 10)
	if err != nil || n != 2 || h[1].Record.Status != client.ConsentOptOut {
		t.Errorf("the ledger after re-applying: %d entries %+v, %v; want the opt-in and the opt-out, once", n, h, err)
	}
	var findings []*nbapb.TrailFinding
	if err := c.VerifyTrail(ctx, nil, func(r *nbapb.VerifyTrailResponse) error { findings = append(findings, r.GetFindings()...); return nil }); err != nil || len(findings) != 0 {
		t.Errorf("verify after the restore and the re-application: %v, %v", findings, err)
	}
}
