package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/server"
)

// The demo's contact policy and rules, as files.
const (
	demoContactFile = "../../contact/demo_policy.json"
	demoRulesFile   = "../../rules/demo_rules.json"
)

// fullDefinitions writes a definitions directory with the demo's catalog
// (edited by edit), model, consent and contact policy, and rules.
func fullDefinitions(t *testing.T, edit func(actions []map[string]any)) string {
	t.Helper()
	dir := writeDefinitions(t, edit, nil)
	for name, src := range map[string]string{definitions.ContactFile: demoContactFile, definitions.RulesFile: demoRulesFile} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The bar of the decision log: decisions of every kind (Decide with and
// without explain, DecideBatch items, CheckSend with and without a
// booking) over the demo population with the demo's contact policy, rules,
// personas and journeys, across a publish that withdraws a content item;
// every one replays, from its receipt alone and the set it names (kept by
// hash), to the identical answer, bit for bit.
func TestReplayIsIdenticalAcrossAPublish(t *testing.T) {
	const hcps = 200
	decisions := 10_000
	if testing.Short() {
		decisions = 400
	}
	if os.Getenv("ARBITER_REPLAY_DECISIONS") != "" {
		fmt.Sscan(os.Getenv("ARBITER_REPLAY_DECISIONS"), &decisions)
	}
	b := singleRedis(t)
	ts := start(t, b, hcps, "-receipts", "sync", "-contact-policy", demoContactFile, "-rules", demoRulesFile,
		"-definitions-poll", "50ms")
	c := ts.client
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 8))
	actions := ts.follow.Engine().Catalog().Actions

	var ids []string
	made := 0
	decide := func(n int) {
		for made < n {
			id := demo.HCPID(1 + r.IntN(hcps))
			switch k := r.IntN(10); {
			case k < 5:
				opts := client.DecideOptions{Limit: 1 + r.IntN(5), Explain: r.IntN(2) == 0}
				if r.IntN(3) == 0 {
					for range 1 + r.IntN(8) {
						a := actions[r.IntN(len(actions))].ID
						if !strings.Contains(strings.Join(opts.Candidates, ","), a) {
							opts.Candidates = append(opts.Candidates, a)
						}
					}
				}
				d, err := c.Decide(ctx, id, opts)
				if err != nil {
					t.Fatalf("decide: %v", err)
				}
				ids = append(ids, d.ID)
				made++
			case k < 8:
				batch := []string{id, demo.HCPID(1 + r.IntN(hcps)), demo.HCPID(1 + r.IntN(hcps))}
				items, err := c.DecideBatch(ctx, batch, client.DecideOptions{Limit: 3})
				if err != nil {
					t.Fatalf("decide batch: %v", err)
				}
				for _, it := range items {
					if it.Decision != nil {
						ids = append(ids, it.Decision.ID)
						made++
					}
				}
			default:
				sc := client.SendCheck{HCPID: id, ActionID: actions[r.IntN(len(actions))].ID, Reserve: r.IntN(2) == 0}
				if sc.Reserve {
					sc.IdempotencyKey = newID("replay")
				}
				v, err := c.CheckSend(ctx, sc)
				if err != nil {
					t.Fatalf("check send: %v", err)
				}
				ids = append(ids, v.DecisionID)
				made++
			}
		}
	}
	decide(decisions / 2)
	before := ts.follow.Engine().DefinitionsVersion()
	cfg := ts.cfg
	cfg.DefinitionsDir = fullDefinitions(t, func(actions []map[string]any) {
		for _, a := range actions {
			if a["id"] == "email-cardiolex-efficacy" {
				a["approval"].(map[string]any)["status"] = "withdrawn"
			}
		}
	})
	if err := Publish(ctx, cfg, io.Discard); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if after := ts.follow.Engine().DefinitionsVersion(); after == before {
		t.Fatalf("the publish did not change the set in use (%s)", after)
	}
	decide(decisions)

	versions := map[string]int{}
	for i, id := range ids {
		rp, err := c.ReplayDecision(ctx, id)
		if err != nil {
			t.Fatalf("replay %d (%s): %v", i, id, err)
		}
		if !rp.GetIdentical() {
			t.Fatalf("replay %d (%s) is not identical: %q %v", i, id, rp.GetNotReplayable(), rp.GetDifferences())
		}
		v := rp.GetDecided().GetDefinitionsVersion() + rp.GetChecked().GetDefinitionsVersion()
		versions[v]++
	}
	if len(versions) != 2 {
		t.Errorf("replayed decisions of %d definitions sets (%v), want 2: before and after the publish", len(versions), versions)
	}
	t.Logf("%d decisions replayed identically, by set: %v", len(ids), versions)
}

// receiptKey is the Redis key of a recipient's receipts (redisstore/keys.go).
func receiptKey(ts *testServer, hcpID string) string {
	return ts.cfg.RedisPrefix + ":{" + hcpID + "}:r"
}

// rewriteReceipt changes a stored receipt in place, as someone with write
// access to Redis could.
func rewriteReceipt(t *testing.T, ts *testServer, rdb *redis.Client, hcpID, id string, edit func(*nbapb.DecisionReceipt)) {
	t.Helper()
	ctx := context.Background()
	members, err := rdb.ZRangeWithScores(ctx, receiptKey(ts, hcpID), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		s := m.Member.(string)
		head, data, _ := strings.Cut(s, "\n")
		if head != id {
			continue
		}
		p, err := server.DecodeReceipt([]byte(data), func(string) *catalog.Catalog { return ts.follow.Engine().Catalog() })
		if err != nil {
			t.Fatal(err)
		}
		edit(p)
		out, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.ZRem(ctx, receiptKey(ts, hcpID), s).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.ZAdd(ctx, receiptKey(ts, hcpID), redis.Z{Score: m.Score, Member: id + "\n" + string(out)}).Err(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no receipt %s", id)
}

// A replay recomputes: change one stored input of a receipt, and its
// replay is no longer identical (and says where).
func TestReplayRecomputesFromTheInputs(t *testing.T) {
	b := singleRedis(t)
	ts := start(t, b, 20, "-receipts", "sync")
	c := ts.client
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: b.Addrs[0]})
	defer rdb.Close()

	for _, tc := range []struct {
		name string
		edit func(*nbapb.DecisionReceipt)
	}{
		{"an opt-in becomes an opt-out", func(p *nbapb.DecisionReceipt) {
			for _, r := range p.GetInputs().GetConsent() {
				if r.GetStatus() == nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN {
					r.Status = nbapb.ConsentStatus_CONSENT_STATUS_OPT_OUT
				}
			}
		}},
		{"an engagement counter", func(p *nbapb.DecisionReceipt) {
			p.Inputs.Counters.Channels = append(p.Inputs.Counters.Channels,
				&nbapb.ChannelCounters{Channel: nbapb.Channel_CHANNEL_EMAIL, Engagement: 40})
		}},
		{"the specialty", func(p *nbapb.DecisionReceipt) { p.Inputs.Profile.Specialty = "dermatology" }},
		{"the stored answer", func(p *nbapb.DecisionReceipt) {
			p.Decided.Recommendations[0].Score *= 1.0000001
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := demo.HCPID(1 + len(tc.name)%20)
			d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 5, Explain: true})
			if err != nil || len(d.Recommendations) == 0 {
				t.Fatalf("decide: %v, %d recommendations", err, len(d.Recommendations))
			}
			rp, err := c.ReplayDecision(ctx, d.ID)
			if err != nil || !rp.GetIdentical() {
				t.Fatalf("untouched: %v, %v", err, rp)
			}
			rewriteReceipt(t, ts, rdb, id, d.ID, tc.edit)
			rp, err = c.ReplayDecision(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if rp.GetIdentical() || len(rp.GetDifferences()) == 0 {
				t.Fatalf("after changing %s the replay is still identical", tc.name)
			}
			t.Logf("%s: %v", tc.name, rp.GetDifferences())
		})
	}
}

// GetDecision and ListDecisions read the log back: the receipt holds the
// request, the caller, the definitions set, the inputs and the answer,
// and the evidence names the consent record (with its ledger entry) and
// the content approval that allowed each recommendation. An id this
// deployment did not make is NOT_FOUND.
func TestGetAndListDecisions(t *testing.T) {
	b := singleRedis(t)
	ts := start(t, b, 5, "-receipts", "sync")
	c := ts.client
	ctx := context.Background()
	const hcp = "LOG-1"
	consented := optIn(arbiter.Email, arbiter.Promotional)
	consented.NoticeVersion = "privacy-2026-03"
	addRecipient(t, c, hcp, "Europe/Berlin", arbiter.HCP, consented)
	if h, _, err := c.ConsentHistory(ctx, hcp, 0, 10); err != nil || len(h) == 0 || h[0].Record.NoticeVersion != "privacy-2026-03" {
		t.Fatalf("the ledger: %+v, %v; want the record with its notice version", h, err)
	}
	from := time.Now().Add(-time.Second)
	d, err := c.Decide(ctx, hcp, client.DecideOptions{Limit: 3})
	if err != nil || len(d.Recommendations) == 0 {
		t.Fatalf("decide: %v, %+v", err, d)
	}
	got, err := c.GetDecision(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	rc := got.GetReceipt()
	if rc.GetDecisionId() != d.ID || rc.GetHcpId() != hcp || rc.GetKind() != nbapb.ReceiptKind_RECEIPT_KIND_DECIDE ||
		rc.GetDefinitionsVersion() != d.DefinitionsVersion || rc.GetBuild() == "" || rc.GetInputs().GetProfile().GetMarket() == "" ||
		len(rc.GetDecided().GetRecommendations()) != len(d.Recommendations) {
		t.Fatalf("receipt %v does not match decision %+v", rc, d)
	}
	if len(got.GetEvidence()) != len(d.Recommendations) {
		t.Fatalf("evidence for %d actions, want %d", len(got.GetEvidence()), len(d.Recommendations))
	}
	for _, ev := range got.GetEvidence() {
		if ev.GetUnavailable() != "" {
			t.Errorf("%s: evidence unavailable: %s", ev.GetActionId(), ev.GetUnavailable())
		}
		if ev.GetConsentRecord() == nil && !ev.GetByDefault() {
			t.Errorf("%s: neither a consent record nor the market default allowed it", ev.GetActionId())
		}
		if r := ev.GetConsentRecord(); r != nil && (r.GetStatus() != nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN || ev.GetConsentLedgerSeq() < 0 ||
			r.GetNoticeVersion() != "privacy-2026-03") {
			t.Errorf("%s: allowed by %v at ledger seq %d; want the opt-in, its notice version and its ledger entry", ev.GetActionId(), r, ev.GetConsentLedgerSeq())
		}
	}

	v, err := c.CheckSend(ctx, client.SendCheck{HCPID: hcp, ActionID: d.Recommendations[0].ActionID, Reserve: true, IdempotencyKey: newID("log")})
	if err != nil || !v.Allowed {
		t.Fatalf("check send: %+v, %v", v, err)
	}
	list, more, err := c.ListDecisions(ctx, hcp, from, time.Now().Add(time.Minute), 0)
	if err != nil || more || len(list) != 2 {
		t.Fatalf("list: %d receipts (more %v), %v; want the decision and the check", len(list), more, err)
	}
	if list[0].GetDecisionId() != d.ID || list[1].GetDecisionId() != v.DecisionID || list[1].GetChecked().GetReservationId() == "" {
		t.Errorf("list: %s, %s; want %s, then %s with its reservation", list[0].GetDecisionId(), list[1].GetDecisionId(), d.ID, v.DecisionID)
	}

	for _, id := range []string{"", "nope", strings.Replace(d.ID, "-", "_", 1), d.ID[:len(d.ID)-2] + "AA"} {
		_, err := c.GetDecision(ctx, id)
		want := codes.NotFound
		if id == "" {
			want = codes.InvalidArgument
		}
		if status.Code(err) != want {
			t.Errorf("GetDecision(%q): %v, want %s", id, err, want)
		}
	}
	if _, _, err := c.ListDecisions(ctx, hcp, time.Now(), from, 0); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a range that ends before it starts: %v, want INVALID_ARGUMENT", err)
	}
}

// An outcome's decision id is checked against its recipient: another
// recipient's decision is refused, and nothing is applied; an id the
// deployment cannot open is applied, unverified.
func TestOutcomeDecisionLinks(t *testing.T) {
	b := singleRedis(t)
	ts := start(t, b, 5)
	c := ts.client
	ctx := context.Background()
	d1, err := c.Decide(ctx, demo.HCPID(1), client.DecideOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	ev := client.Event{ID: newID("link"), HCPID: demo.HCPID(2), Type: arbiter.EventOpened, Channel: arbiter.Email,
		DecisionID: d1.ID, OccurredAt: time.Now().Add(-time.Minute)}
	_, _, err = c.RecordEventLinked(ctx, ev)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("an outcome of HCP 2 quoting HCP 1's decision: %v, want FAILED_PRECONDITION", err)
	}
	// Nothing was applied: the same event id, now with a good link, is new.
	ev.DecisionID = ""
	dup, link, err := c.RecordEventLinked(ctx, ev)
	if err != nil || dup || link != nbapb.DecisionLink_DECISION_LINK_UNSPECIFIED {
		t.Fatalf("the refused event sent again without the link: duplicate %v, link %s, %v; want new", dup, link, err)
	}
	ev.ID, ev.HCPID, ev.DecisionID = newID("link"), demo.HCPID(1), d1.ID
	if _, link, err := c.RecordEventLinked(ctx, ev); err != nil || link != nbapb.DecisionLink_DECISION_LINK_VERIFIED {
		t.Errorf("its own decision: %s, %v; want VERIFIED", link, err)
	}
	ev.ID, ev.DecisionID = newID("link"), "lxq1-00000000-1"
	if _, link, err := c.RecordEventLinked(ctx, ev); err != nil || link != nbapb.DecisionLink_DECISION_LINK_UNVERIFIED {
		t.Errorf("an id it cannot open: %s, %v; want UNVERIFIED, applied", link, err)
	}
}

// In async mode every receipt is written by the time the server has
// stopped, none dropped, none failed; in sync mode, every decision that
// got an answer has its receipt at once.
func TestReceiptsAreWritten(t *testing.T) {
	b := singleRedis(t)
	key := auditKeyFile(t)
	for _, mode := range []string{"async", "sync"} {
		t.Run(mode, func(t *testing.T) {
			ts := start(t, b, 50, "-receipts", mode, "-audit-key", key)
			ctx := context.Background()
			var mu sync.Mutex
			var ids []string
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 100 {
						d, err := ts.client.Decide(ctx, demo.HCPID(1+(w*100+i)%50), client.DecideOptions{Limit: 3})
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						ids = append(ids, d.ID)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if mode == "async" {
				ts.Close() // writes what the queue holds
				if n := ts.srv.ReceiptCounts(); n.Written != int64(len(ids)) || n.Dropped != 0 || n.Failed != 0 {
					t.Fatalf("after stopping: %+v, want %d written", n, len(ids))
				}
				ts = start(t, b, 50, "-receipts", mode, "-audit-key", key) // the same prefix and key: the same log
			}
			for _, id := range ids {
				if _, err := ts.client.GetDecision(ctx, id); err != nil {
					t.Fatalf("decision %s: %v", id, err)
				}
			}
		})
	}
}

// auditKeyFile writes an audit secret, for servers that must open each
// other's decision ids.
func auditKeyFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "audit.key")
	if err := os.WriteFile(f, []byte(strings.Repeat("0123456789abcdef", 4)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// flushLog waits until the server has written every receipt queued.
func flushLog(t *testing.T, ts *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.FlushDecisionLog(ctx); err != nil {
		t.Fatalf("flush the decision log: %v", err)
	}
}

// The audit trail, end to end: a server with an audit secret seals every
// consent ledger entry (the seeded population's too); verify finds
// nothing, then names an edited entry, and with a checkpoint a ledger cut
// short; a checkpoint that was changed is refused.
func TestAuditTrailEndToEnd(t *testing.T) {
	b := singleRedis(t)
	ts := start(t, b, 30, "-audit-key", auditKeyFile(t))
	c := ts.client
	ctx := context.Background()
	addRecipient(t, c, "TRAIL-1", "Europe/Paris", arbiter.HCP, optIn(arbiter.Email, arbiter.Promotional), optIn(arbiter.SMS, arbiter.Service))
	if _, err := c.Unsubscribe(ctx, "TRAIL-1", client.ChannelChange{Channel: arbiter.Email, CapturedAt: time.Now().Add(-time.Minute), Source: "test"}); err != nil {
		t.Fatal(err)
	}
	verify := func(cp []*nbapb.CheckpointResponse) (findings []*nbapb.TrailFinding, ledgers int64, err error) {
		err = c.VerifyTrail(ctx, cp, func(r *nbapb.VerifyTrailResponse) error {
			findings = append(findings, r.GetFindings()...)
			if r.GetDone() {
				ledgers = r.GetRecipientsChecked()
			}
			return nil
		})
		return findings, ledgers, err
	}
	f, n, err := verify(nil)
	if err != nil || len(f) != 0 || n <= 30 {
		t.Fatalf("untouched: %v over %d ledgers, %v; want nothing over more than 30 (the seeded HCPs and patients, and one added)", f, n, err)
	}
	var cp []*nbapb.CheckpointResponse
	if err := c.Checkpoint(ctx, func(r *nbapb.CheckpointResponse) error { cp = append(cp, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if f, _, err := verify(cp); err != nil || len(f) != 0 {
		t.Fatalf("against its own checkpoint: %v, %v", f, err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: b.Addrs[0]})
	defer rdb.Close()
	log := ts.cfg.RedisPrefix + ":{TRAIL-1}:consent-log"
	// Cut the tail (the unsubscribe's entry): only the checkpoint sees it.
	last := rdb.RPop(ctx, log).Val()
	f, _, err = verify(cp)
	if err != nil || len(f) != 1 || f[0].GetHcpId() != "TRAIL-1" || !strings.Contains(f[0].GetProblem(), "checkpoint saw") {
		t.Fatalf("a cut tail against the checkpoint: %v, %v", f, err)
	}
	rdb.RPush(ctx, log, last)
	// Edit the first entry.
	first := rdb.LIndex(ctx, log, 0).Val()
	rdb.LSet(ctx, log, 0, strings.Replace(first, "|opt_in|", "|opt_out|", 1))
	if f, _, err = verify(nil); err != nil || len(f) != 1 || f[0].GetSeq() != 0 {
		t.Fatalf("an edited entry: %v, %v; want entry 0 named", f, err)
	}
	// A changed checkpoint is refused whole.
	cp[len(cp)-1].Heads = append(cp[len(cp)-1].Heads, &nbapb.ChainHead{HcpId: "TRAIL-1", Length: 99, Head: "x"})
	if _, _, err := verify(cp); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a changed checkpoint: %v, want INVALID_ARGUMENT", err)
	}
}

// Erasure through the API: the recipient's receipts go (GetDecision is
// NOT_FOUND, a new export holds nothing of theirs), they are no longer
// decided for, and the audit trail still verifies.
func TestEraseRecipientEndToEnd(t *testing.T) {
	b := singleRedis(t)
	ts := start(t, b, 5, "-receipts", "sync", "-audit-key", auditKeyFile(t))
	c := ts.client
	ctx := context.Background()
	const id = "ERASE-E2E-1"
	addRecipient(t, c, id, "Europe/Rome", arbiter.HCP, optIn(arbiter.Email, arbiter.Promotional))
	d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Now().Add(-time.Hour)
	r, err := c.EraseRecipient(ctx, id)
	if err != nil || r.GetReceiptsDeleted() != 1 || r.GetLedgerEntriesKept() == 0 {
		t.Fatalf("erase: %v, %v", r, err)
	}
	if _, err := c.GetDecision(ctx, d.ID); status.Code(err) != codes.NotFound {
		t.Errorf("the erased recipient's decision: %v, want NOT_FOUND", err)
	}
	if _, err := c.Decide(ctx, id, client.DecideOptions{}); status.Code(err) != codes.NotFound {
		t.Errorf("deciding for the erased recipient: %v, want NOT_FOUND", err)
	}
	err = c.ExportDecisions(ctx, from, time.Now().Add(time.Minute), func(r *nbapb.ExportDecisionsResponse) error {
		for _, rc := range r.GetReceipts() {
			if rc.GetHcpId() == id {
				t.Errorf("a new export holds the erased recipient's receipt %s", rc.GetDecisionId())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var findings []*nbapb.TrailFinding
	if err := c.VerifyTrail(ctx, nil, func(r *nbapb.VerifyTrailResponse) error { findings = append(findings, r.GetFindings()...); return nil }); err != nil || len(findings) != 0 {
		t.Errorf("verify after the erasure: %v, %v", findings, err)
	}
	if _, err := c.EraseRecipient(ctx, ""); status.Code(err) != codes.InvalidArgument {
		t.Errorf("erase without an id: %v, want INVALID_ARGUMENT", err)
	}
}

// The dry run of a policy change: withdrawing one content item, the report
// lists as having lost it exactly the logged decisions that recommended
// it, and nothing is written.
func TestSimulateWithdrawal(t *testing.T) {
	b := singleRedis(t)
	ts := start(t, b, 150, "-receipts", "sync")
	c := ts.client
	ctx := context.Background()
	from := time.Now().Add(-time.Second)
	// Which action is recommended most, and by which decisions.
	by := map[string][]string{}
	for i := 1; i <= 150; i++ {
		d, err := c.Decide(ctx, demo.HCPID(i), client.DecideOptions{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range d.Recommendations {
			by[r.ActionID] = append(by[r.ActionID], d.ID)
		}
	}
	withdrawn := ""
	for a, ds := range by {
		if len(ds) > len(by[withdrawn]) && ts.follow.Engine().Catalog().Actions[mustLookup(t, ts, a)].ContentID != "" {
			withdrawn = a
		}
	}
	if withdrawn == "" {
		t.Fatal("no content action was recommended")
	}
	cfg := ts.cfg
	cfg.DefinitionsDir = writeDefinitions(t, func(actions []map[string]any) {
		for _, a := range actions {
			if a["id"] == withdrawn {
				a["approval"].(map[string]any)["status"] = "withdrawn"
			}
		}
	}, nil)
	before := redisKeys(t, b)
	var out strings.Builder
	rep, err := Simulate(ctx, cfg, from, time.Now().Add(time.Second), true, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(rep.LostIn[withdrawn]))
	want := slices.Sorted(slices.Values(by[withdrawn]))
	if !slices.Equal(got, want) {
		t.Fatalf("decisions that lost %s: %d %v; want exactly the %d that recommended it %v", withdrawn, len(got), got, len(want), want)
	}
	if rep.Decisions != 150 || rep.Lost[withdrawn] != len(want) || len(rep.NotRerun) != 0 {
		t.Errorf("report: %d decisions, lost %d, not rerun %v", rep.Decisions, rep.Lost[withdrawn], rep.NotRerun)
	}
	for a := range rep.Lost {
		if a != withdrawn {
			t.Errorf("the dry run also lost %s: only %s was withdrawn", a, withdrawn)
		}
	}
	if after := redisKeys(t, b); after != before {
		t.Errorf("the dry run wrote to Redis: %d keys before, %d after", before, after)
	}
	if !strings.Contains(out.String(), "Decisions that lost "+withdrawn) {
		t.Errorf("the report does not list the decisions:\n%s", out.String())
	}
	t.Logf("%s lost in %d decisions; report:\n%s", withdrawn, len(want), out.String()[:min(len(out.String()), 1500)])
}

func mustLookup(t *testing.T, ts *testServer, id string) int {
	t.Helper()
	i, ok := ts.follow.Engine().Catalog().Lookup(id)
	if !ok {
		t.Fatalf("no action %s", id)
	}
	return i
}

// redisKeys is the number of keys in the backend's Redis.
func redisKeys(t *testing.T, b redistest.Backend) int64 {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: b.Addrs[0]})
	defer rdb.Close()
	n, err := rdb.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
