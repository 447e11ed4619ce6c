package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// previousRelease is the release a rolling upgrade starts from: the
// version running when this one is deployed beside it. It is the last
// version without the decision log, the chained ledger and consent notice
// versions, whose stored forms this version extends. Move it forward when
// a release ships.
const previousRelease = "e1d9ec92f0750452b0e4852b6ddee89702872fee"

// A rolling upgrade: the previous release's binary and this one serve one
// Redis, under the same prefix, at the same time. What either writes, the
// other reads and honours: consent withdrawn through one is never
// recommended by the other, an event applied by one is a duplicate to the
// other, a profile written by one reads back in the other. A stored form
// one cannot read is refused (a decision denies, fails closed), never
// answered Internal.
func TestRollingUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the previous release")
	}
	b := singleRedis(t)
	prev := buildRelease(t, previousRelease)
	next := buildServer(t)
	common := []string{"-redis-addr", b.Addrs[0], "-redis-prefix", "upgrade"}
	seedWith(t, prev, 200, common...) // the data as the previous release left it
	serve := append([]string{"serve", "-listen", "127.0.0.1:0", "-catalog", demoCatalogFile, "-model", demoModelFile,
		"-consent-policy", demoPolicyFile, "-durability", "off", "-log-level", "info"}, common...)
	_, oldC := runServer(t, prev, nil, serve...)
	// The new release with its audit key (the previous one has none): the
	// ledgers both write must still verify afterwards.
	_, newC := runServer(t, next, nil, append(serve, "-rolling-upgrade", "-audit-key", auditKeyFile(t))...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now := time.Now().UTC()

	// Consent withdrawn through either version is honoured by both. The new
	// version's records carry a notice version, which the old one never
	// wrote.
	for i := 1; i <= 40; i++ {
		hcp := demo.HCPID(i)
		writer, wname := newC, "new"
		if i%2 == 0 {
			writer, wname = oldC, "old"
		}
		rec := client.ConsentRecord{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: client.ConsentOptOut,
			CapturedAt: now, Source: "upgrade-test"}
		if wname == "new" {
			rec.NoticeVersion = "privacy-2026-11"
		}
		if _, err := writer.SetConsent(ctx, hcp, rec, false); err != nil {
			t.Fatalf("%s version: SetConsent %s: %v", wname, hcp, err)
		}
		for _, r := range []struct {
			name string
			c    *client.Client
		}{{"old", oldC}, {"new", newC}} {
			d, err := r.c.Decide(ctx, hcp, client.DecideOptions{Limit: 5})
			if err != nil {
				if c := status.Code(err); c == codes.Internal || c == codes.Unknown {
					t.Fatalf("%s version deciding after the %s version's consent write: %v", r.name, wname, err)
				}
				t.Logf("%s version refused to decide for a recipient the %s version wrote: %v", r.name, wname, err)
				continue
			}
			for _, rec := range d.Recommendations {
				if rec.Channel == arbiter.Email && rec.Purpose == arbiter.Promotional {
					t.Fatalf("%s version recommended %s to %s after an opt-out written by the %s version", r.name, rec.ActionID, hcp, wname)
				}
			}
		}
		if _, err := oldC.GetConsent(ctx, hcp); err != nil {
			if c := status.Code(err); c == codes.Internal || c == codes.Unknown {
				t.Fatalf("old version reading consent the %s version wrote: %v", wname, err)
			}
		}
	}

	// The notice version written during the upgrade is kept, in the ledger.
	hist, _, err := newC.ConsentHistory(ctx, demo.HCPID(1), 0, 100)
	if err != nil || len(hist) == 0 {
		t.Fatalf("ConsentHistory: %v (%d entries)", err, len(hist))
	}
	if got := hist[len(hist)-1].Record.NoticeVersion; got != "privacy-2026-11" {
		t.Errorf("the last ledger entry's notice version is %q, want privacy-2026-11", got)
	}
	// An erasure, whose marker the previous release cannot read, waits.
	if _, err := newC.EraseRecipient(ctx, demo.HCPID(3)); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("EraseRecipient during the upgrade: %v, want FailedPrecondition", err)
	}

	// Both versions wrote to the same ledgers: they verify, with no finding
	// (the new release does not seal during the upgrade).
	var findings []*nbapb.TrailFinding
	if err := newC.VerifyTrail(ctx, nil, func(r *nbapb.VerifyTrailResponse) error {
		findings = append(findings, r.GetFindings()...)
		return nil
	}); err != nil || len(findings) != 0 {
		t.Errorf("verify the ledgers both versions wrote: %v, %v", findings, err)
	}

	// Events are applied once, whichever version sees them first.
	for i := range 20 {
		e := client.Event{ID: "upgrade-ev-" + string(rune('a'+i)), HCPID: demo.HCPID(100 + i), Type: arbiter.EventOpened,
			Channel: arbiter.Email, OccurredAt: now}
		first, second := newC, oldC
		if i%2 == 0 {
			first, second = oldC, newC
		}
		if dup, err := first.RecordEvent(ctx, e); err != nil || dup {
			t.Fatalf("first RecordEvent: duplicate %v, err %v", dup, err)
		}
		if dup, err := second.RecordEvent(ctx, e); err != nil || !dup {
			t.Fatalf("the other version's RecordEvent of the same event: duplicate %v (want true), err %v", dup, err)
		}
	}

	// Profiles written by either read back in the other.
	for i, w := range []*client.Client{oldC, newC} {
		p := client.Profile{HCPID: demo.HCPID(150 + i), Specialty: "oncology", Market: "EU", Audience: arbiter.HCP,
			TimeZone: "Europe/Berlin", Territories: []string{"T07"}}
		if err := w.UpsertProfile(ctx, p); err != nil {
			t.Fatalf("UpsertProfile: %v", err)
		}
		for _, r := range []*client.Client{oldC, newC} {
			got, _, err := r.GetProfile(ctx, p.HCPID)
			if err != nil {
				t.Fatalf("GetProfile: %v", err)
			}
			if got.Specialty != "oncology" || got.Market != "EU" || got.TimeZone != "Europe/Berlin" {
				t.Fatalf("profile written by one version reads back as %+v in the other", got)
			}
		}
	}
}

// buildRelease builds the server program as it was at rev, from a git
// worktree of this repository. In CI the history must be there: a clone
// without it fails the test rather than skipping the upgrade check.
func buildRelease(t *testing.T, rev string) string {
	t.Helper()
	if out, err := exec.Command("git", "cat-file", "-e", rev+"^{commit}").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the previous release %s is not in this clone (a shallow clone?): %v %s", rev, err, out)
		}
		t.Skipf("the previous release %s is not in this clone", rev)
	}
	dir := filepath.Join(t.TempDir(), "prev")
	if out, err := exec.Command("git", "worktree", "add", "--detach", dir, rev).CombinedOutput(); err != nil {
		t.Fatalf("git worktree add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("git", "worktree", "remove", "--force", dir).Run() })
	bin := filepath.Join(t.TempDir(), "arbiter-prev")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/arbiter")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", rev, err, strings.TrimSpace(string(out)))
	}
	return bin
}
