package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

// runCmd runs one command line with no server behind -addr unless given.
func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errOut,
		getenv: func(string) string { return "" },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, args, e)
	return code, out.String(), errOut.String()
}

func TestRunExitStatus(t *testing.T) {
	// Port 1 on the loopback: nothing listens, connections are refused.
	const noServer = "127.0.0.1:1"
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: "usage: arbiterctl <command>"},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: "demo-data"},
		{name: "-h", args: []string{"-h"}, wantCode: 0, wantStdout: "consent"},
		{name: "help decide", args: []string{"help", "decide"}, wantCode: 0, wantStdout: "-explain"},
		{name: "help consent", args: []string{"help", "consent"}, wantCode: 0, wantStdout: "history"},
		{name: "help consent set", args: []string{"help", "consent", "set"}, wantCode: 0, wantStdout: "-captured-at"},
		{name: "decide -h", args: []string{"decide", "-h"}, wantCode: 0, wantStderr: "-candidates"},
		{name: "unknown command", args: []string{"deicde"}, wantCode: 2, wantStderr: `unknown command "deicde"`},
		{name: "group without command", args: []string{"consent"}, wantCode: 2, wantStderr: "usage: arbiterctl consent <command>"},
		{name: "unknown group command", args: []string{"profile", "delete"}, wantCode: 2, wantStderr: `unknown command "profile delete"`},
		{name: "missing required flag", args: []string{"decide"}, wantCode: 2, wantStderr: "-hcp is required"},
		{name: "unknown flag", args: []string{"decide", "-hcp", "H", "-fast"}, wantCode: 2, wantStderr: "flag provided but not defined: -fast"},
		{name: "positional argument", args: []string{"decide", "-hcp", "H", "extra"}, wantCode: 2, wantStderr: `unexpected argument "extra"`},
		{name: "unknown channel", args: []string{"decide", "-hcp", "H", "-channels", "email,fax"}, wantCode: 2, wantStderr: `unknown value "fax"`},
		{name: "unknown caller", args: []string{"decide", "-hcp", "H", "-caller", "robot"}, wantCode: 2, wantStderr: `unknown value "robot"`},
		{name: "bad time", args: []string{"decide", "-hcp", "H", "-at", "tomorrow"}, wantCode: 2, wantStderr: "not an RFC 3339 time"},
		{name: "event without type", args: []string{"event", "-id", "E1", "-hcp", "H", "-channel", "email"}, wantCode: 2, wantStderr: "-type is required"},
		{name: "unknown event type", args: []string{"event", "-type", "liked"}, wantCode: 2, wantStderr: `unknown value "liked"`},
		{name: "unknown consent status", args: []string{"consent", "set", "-status", "opt-in"}, wantCode: 2, wantStderr: `unknown value "opt-in"`},
		{name: "consent set without source", args: []string{"consent", "set", "-hcp", "H", "-channel", "sms", "-status", "barred"}, wantCode: 2, wantStderr: "-source is required"},
		{name: "negative demo size", args: []string{"demo-data", "-n", "-1"}, wantCode: 2, wantStderr: "-n must not be negative"},
		{name: "import without file", args: []string{"import"}, wantCode: 2, wantStderr: "-file is required"},
		{name: "events import without file", args: []string{"events", "import"}, wantCode: 2, wantStderr: "-file is required"},
		{name: "events import batch too large", args: []string{"events", "import", "-file", "x.csv", "-batch", "1001"}, wantCode: 2, wantStderr: "-batch: want 1 to 1000"},
		{name: "events import unknown format", args: []string{"events", "import", "-file", "x.csv", "-format", "xml"}, wantCode: 2, wantStderr: "-format: want csv or jsonl"},
		{name: "events import unknown column", args: []string{"events", "import", "-file", "testdata/events_bad_header.csv"}, wantCode: 2, wantStderr: `names "occured_at", which is not a column of an event`},
		{name: "no server for events import", args: []string{"events", "import", "-file", "../../docs/samples/events.csv", "-addr", noServer, "-timeout", "1s"}, wantCode: 1, wantStderr: "stopped after line 0"},
		{name: "help journey", args: []string{"help", "journey"}, wantCode: 0, wantStdout: "drop-off per step"},
		{name: "journey move without step or exit", args: []string{"journey", "move", "-recipient", "H", "-journey", "j"}, wantCode: 2, wantStderr: "give -step or -exit"},
		{name: "journey due without journey", args: []string{"journey", "due"}, wantCode: 2, wantStderr: "-journey is required"},
		{name: "decisions get without id", args: []string{"decisions", "get"}, wantCode: 2, wantStderr: "-id is required"},
		{name: "decisions export without from", args: []string{"decisions", "export"}, wantCode: 2, wantStderr: "-from is required"},
		{name: "audit why with a bad day", args: []string{"audit", "why", "-hcp", "H", "-day", "26/11/2026"}, wantCode: 2, wantStderr: "-day: want YYYY-MM-DD"},
		{name: "audit why with a bad zone", args: []string{"audit", "why", "-hcp", "H", "-day", "2026-11-26", "-tz", "Mars/Olympus"}, wantCode: 2, wantStderr: "unknown time zone"},
		{name: "consent reapply without a file", args: []string{"consent", "reapply"}, wantCode: 2, wantStderr: "-file is required"},
		{name: "erase without -yes", args: []string{"erase", "-recipient", "H"}, wantCode: 2, wantStderr: "cannot be undone: give -yes"},
		{name: "batch without HCPs", args: []string{"batch"}, wantCode: 2, wantStderr: "give either -ids or -demo"},
		{name: "batch too large", args: []string{"batch", "-demo", "5", "-size", "1001"}, wantCode: 2, wantStderr: "-size: want 1 to 1000"},
		{name: "no server for a batch", args: []string{"batch", "-demo", "3", "-addr", noServer, "-timeout", "5s"}, wantCode: 1, wantStderr: "Unavailable"},
		{name: "missing file", args: []string{"profile", "upsert", "-file", "/nonexistent/profile.json"}, wantCode: 1, wantStderr: "arbiterctl profile upsert: open /nonexistent/profile.json"},
		{name: "no server", args: []string{"decide", "-hcp", "HCP-000042", "-addr", noServer, "-timeout", "5s"}, wantCode: 1, wantStderr: "arbiterctl decide: Unavailable: "},
		{name: "no server for a group command", args: []string{"consent", "get", "-hcp", "HCP-000042", "-addr", noServer, "-timeout", "5s"}, wantCode: 1, wantStderr: "arbiterctl consent get: Unavailable: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit status = %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestPrintDecision(t *testing.T) {
	d := &client.Decision{
		ID: "d-1", At: time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC), ModelVersion: "m-1", CatalogVersion: "c-1",
		Recommendations: []client.Recommendation{
			{Rank: 1, ActionID: "rep_visit-x", Channel: arbiter.RepVisit, Score: 5.97742, Reason: "Likes visits."},
			{Rank: 2, ActionID: "email-x-efficacy", Channel: arbiter.Email, Score: 0.2},
		},
		Suppressed: []client.Suppression{
			{ActionID: "sms-x", Reason: client.SuppressionNoConsent, Detail: "no sms opt-in"},
			{ActionID: "sms-y", Reason: client.SuppressionFrequencyCap, Detail: "last sms 1d ago",
				ClearsAt: time.Date(2026, 3, 16, 9, 30, 0, 0, time.UTC)},
			{ActionID: "portal-x", Reason: client.SuppressionChannelNotRequested},
			{ActionID: "webinar-x", Reason: client.SuppressionChannelNotRequested},
		},
	}
	var b strings.Builder
	if err := printDecision(&b, d); err != nil {
		t.Fatal(err)
	}
	const want = `decision d-1 at 2026-03-14T09:30:00Z (model m-1, catalog c-1)

RANK  ACTION            CHANNEL    SCORE   REASON
1     rep_visit-x       rep_visit  5.9774  Likes visits.
2     email-x-efficacy  email      0.2000  -

SUPPRESSED  REASON         CLEARS                DETAIL
sms-x       NO_CONSENT     -                     no sms opt-in
sms-y       FREQUENCY_CAP  2026-03-16T09:30:00Z  last sms 1d ago

2 more suppressed on channels not requested (-json lists them)
`
	if got := b.String(); got != want {
		t.Errorf("printDecision() =\n%s\nwant\n%s", got, want)
	}
}

func TestWithoutViolations(t *testing.T) {
	tests := []struct {
		name       string
		msg        string
		violations map[string]string
		want       string
	}{
		{"no violations", "not found", nil, "not found"},
		{
			"restated",
			"invalid argument: hcp_id: bad; limit: too big",
			map[string]string{"limit": "too big", "hcp_id": "bad"},
			"invalid argument",
		},
		{"not restated", "request refused", map[string]string{"limit": "too big"}, "request refused"},
		{"only the violations", "limit: too big", map[string]string{"limit": "too big"}, "limit: too big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withoutViolations(tt.msg, tt.violations); got != tt.want {
				t.Errorf("withoutViolations(%q) = %q, want %q", tt.msg, got, tt.want)
			}
		})
	}
}

func TestDecodeProfile(t *testing.T) {
	want := client.Profile{HCPID: "HCP-1", Market: "EU", Audience: arbiter.HCP, Addresses: map[arbiter.Channel]string{arbiter.Email: "e-1"}}
	tests := []struct {
		name string
		json string
	}{
		{"bare", `{"hcp_id":"HCP-1","market":"EU","audience":"hcp","addresses":{"email":"e-1"}}`},
		{"as profile get prints it", `{"profile":{"hcp_id":"HCP-1","market":"EU","audience":"hcp","addresses":{"email":"e-1"}},"counters":{"topics":{"x":1}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeProfile([]byte(tt.json))
			if err != nil {
				t.Fatalf("decodeProfile: %v", err)
			}
			if got.HCPID != want.HCPID || got.Market != want.Market || got.Audience != want.Audience ||
				got.Addresses[arbiter.Email] != "e-1" || len(got.Addresses) != 1 {
				t.Errorf("decodeProfile() = %+v, want %+v", got, want)
			}
		})
	}
	if _, err := decodeProfile([]byte(`{"hcp_id":"HCP-1","audience":"doctor"}`)); err == nil {
		t.Error("decodeProfile with an unknown audience: got no error")
	}
}
