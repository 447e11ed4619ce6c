package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/internal/servertest"
)

const veevaSamples = "../../docs/samples/veeva/"

// arbiterServer builds the server program and serves it (with -admin-rpc,
// so that definitions can be published) on a redis-server of its own,
// with the demo definitions as files; it returns the address.
func arbiterServer(t *testing.T) string {
	t.Helper()
	redistest.Require(t)
	rs, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	bin := filepath.Join(t.TempDir(), "arbiter")
	if out, err := exec.Command("go", "build", "-o", bin, "../arbiter").CombinedOutput(); err != nil {
		t.Fatalf("build the server: %v\n%s", err, out)
	}
	srv := exec.Command(bin, "serve", "-listen", "127.0.0.1:0", "-http-listen", "", "-admin-rpc", "-redis-addr", rs.Addr,
		"-catalog", "../../catalog/demo_catalog.json", "-model", "../../scoring/demo_model.json",
		"-consent-policy", "../../consent/policy.json", "-durability", "off", "-shutdown-drain", "0s")
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	addr, err := servertest.ListenAddr(stderr, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// The Veeva-style sample files through the sample mapping: a dry run
// writes nothing; the import writes exactly the accounts without a bad
// row, each with its consent, reports every bad row by file, row and
// column, and publishes the documents' approvals.
func TestCRMImportVeevaSample(t *testing.T) {
	addr := arbiterServer(t)
	defs := t.TempDir()
	for src, dst := range map[string]string{"../../catalog/demo_catalog.json": "catalog.json",
		"../../scoring/demo_model.json": "model.json", "../../consent/policy.json": "consent_policy.json"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(defs, dst), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"crm", "import", "-addr", addr, "-mapping", veevaSamples + "mapping.json",
		"-accounts", veevaSamples + "accounts.csv", "-consents", veevaSamples + "multichannel_consent.csv",
		"-documents", veevaSamples + "approved_documents.csv", "-definitions", defs}
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Some document rows are bad: without -allow-partial no approval is
	// written (a withdrawal in a bad row would be lost).
	code, stdout, stderr := runCmd(t, "", append(args, "-dry-run")...)
	if code != 0 || !strings.Contains(stdout, "dry run: 3 accounts would be imported, 3 left out for bad rows; 0 approvals would change; 7 problems") ||
		!strings.Contains(stderr, "-allow-partial") {
		t.Fatalf("dry run: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, _, err := c.GetProfile(ctx, "001A000001VvA1"); status.Code(err) != codes.NotFound {
		t.Fatalf("after the dry run an account was written: %v", err)
	}

	report := filepath.Join(t.TempDir(), "errors.csv")
	code, stdout, stderr = runCmd(t, "", append(args, "-publish", "-allow-partial", "-errors", report)...)
	if code != 1 || !strings.Contains(stdout, "imported 3 accounts, 3 left out for bad rows; 2 approvals changed; 6 problems") ||
		!strings.Contains(stdout, "published definitions sha256:") {
		t.Fatalf("import: exit %d (want 1: some rows are bad)\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	rows := readCSV(t, report)
	want := [][]string{
		{"file", "row", "column", "problem"},
		{"accounts.csv", "7", "Specialty_1_vod__c"},
		{"multichannel_consent.csv", "9", "Capture_Datetime_vod__c"},
		{"multichannel_consent.csv", "11", "RecordType.DeveloperName"},
		{"multichannel_consent.csv", "12", "Account_vod__c"},
		{"approved_documents.csv", "5", "document_number__v"},
		{"approved_documents.csv", "6", "status__v"},
	}
	if len(rows) != len(want) {
		t.Fatalf("the report has %d rows, want %d: %q", len(rows), len(want), rows)
	}
	for i, w := range want[1:] {
		if got := rows[i+1][:3]; !slices.Equal(got, w) {
			t.Errorf("report row %d: %q, want %q", i+1, got, w)
		}
	}

	// The accounts without a bad row, with their consent; nothing of the
	// others (a bad consent row keeps its account out whole).
	p, _, err := c.GetProfile(ctx, "001A000001VvA2")
	if err != nil {
		t.Fatal(err)
	}
	if p.Specialty != "oncology" || p.Market != "EU" || !slices.Equal(p.Territories, []string{"T07", "T08"}) || p.TimeZone != "Europe/Paris" {
		t.Errorf("account A2 reads back as %+v", p)
	}
	for _, id := range []string{"001A000001VvA4", "001A000001VvA5", "001A000001VvA6"} {
		if _, _, err := c.GetProfile(ctx, id); status.Code(err) != codes.NotFound {
			t.Errorf("account %s, which has a bad row, was written: %v", id, err)
		}
	}
	cs, err := c.GetConsent(ctx, "001A000001VvA1")
	if err != nil {
		t.Fatal(err)
	}
	if !cs.Complete || len(cs.Records) != 3 {
		t.Fatalf("A1's consent: complete %v, %d records, want complete and 3: %+v", cs.Complete, len(cs.Records), cs.Records)
	}
	var emailPromo *client.ConsentRecord
	for i, r := range cs.Records {
		if r.Channel == arbiter.Email && r.Purpose == arbiter.Promotional {
			emailPromo = &cs.Records[i]
		}
	}
	if emailPromo == nil || emailPromo.Status != client.ConsentOptIn || emailPromo.Topic != "cardiolex_efficacy" ||
		emailPromo.Source != "veeva-approved-email" || emailPromo.NoticeVersion != "privacy-2026-01" ||
		!emailPromo.CapturedAt.Equal(time.Date(2026, 3, 2, 9, 15, 0, 0, time.UTC)) {
		t.Errorf("A1's promotional email consent: %+v", emailPromo)
	}

	// The withdrawn document's content may not be sent any more: the
	// publish reached the server's decisions.
	v, err := c.CheckSend(ctx, client.SendCheck{HCPID: "001A000001VvA1", ActionID: "email-cardiolex-safety"})
	if err != nil {
		t.Fatal(err)
	}
	blockedByApproval := false
	for _, b := range v.Blocks {
		blockedByApproval = blockedByApproval || b.Reason == client.SuppressionContentNotApproved || b.Reason == client.SuppressionContentExpired
	}
	if v.Allowed || !blockedByApproval {
		t.Errorf("sending the withdrawn document: allowed %v, blocks %+v; want blocked for its approval", v.Allowed, v.Blocks)
	}
}

// What only the server checked (a territory's form, an id's) is checked
// before sending: such an account is left out whole and reported with its
// column, instead of stopping the import stream part-way.
func TestCRMImportChecksAsTheServerDoes(t *testing.T) {
	dir := t.TempDir()
	accounts := filepath.Join(dir, "accounts.csv")
	if err := os.WriteFile(accounts, []byte("Id,Specialty_1_vod__c,Primary_Country_vod__c,Territory_vod__c,Time_Zone_vod__c\n"+
		"001A0,Neurology,US,T07,America/Chicago\n"+
		"001A1,Cardiology,US,T07,America/Chicago\n"+
		"001A2,Cardiology,US,North East,America/Denver\n"+
		"001A3,Oncology,DE,T08,Europe/Berlin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(veevaSamples + "mapping.json")
	if err != nil {
		t.Fatal(err)
	}
	var m crmMapping
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	items, bad, errs, err := readAccounts(&m, accounts, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || bad != 2 || items[0].Profile.HCPID != "001A1" || items[1].Profile.HCPID != "001A3" {
		t.Fatalf("kept %d items (%v), %d bad; want 001A1 and 001A3 kept, 001A0 and 001A2 left out", len(items), items, bad)
	}
	if len(errs) != 2 || errs[1].row != 4 || errs[1].column != "Territory_vod__c" {
		t.Fatalf("problems %v, want the second on row 4 in Territory_vod__c", errs)
	}
}
