package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/redisstore"
	"github.com/arbiter-nba/arbiter/server"
)

const sampleEvents = "../../docs/samples/events.csv"

// eventsServer serves the API over a store on a redis-server of its own,
// with the first five demo HCPs loaded, and returns its address and the
// store.
func eventsServer(t *testing.T) (string, *redisstore.Store) {
	t.Helper()
	redistest.Require(t)
	rs, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	store, err := redisstore.New(rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(context.Background(), demo.Population(5, time.Now())); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(knownHCPs(5), store, store, server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	g := s.NewGRPCServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().String(), store
}

// The sample file, imported: each row's answer counted, the rejected rows
// reported by line and column in the file's order (those that could not be
// read are not sent), the events applied; imported again, as JSON Lines
// from standard input too, every applied event is a duplicate.
func TestEventsImport(t *testing.T) {
	addr, store := eventsServer(t)
	report := filepath.Join(t.TempDir(), "errors.csv")
	code, stdout, stderr := runCmd(t, "", "events", "import", "-addr", addr, "-file", sampleEvents, "-errors", report,
		"-batch", "4", "-concurrency", "3")
	if code != 0 {
		t.Fatalf("exit status %d: %s%s", code, stdout, stderr)
	}
	if want := "21 rows in "; !strings.HasPrefix(stdout, want) {
		t.Errorf("summary %q, want it to start with %q", stdout, want)
	}
	if want := "16 applied, 1 duplicates, 4 rejected (2 by the server, 2 unreadable and not sent)"; !strings.Contains(stdout, want) {
		t.Errorf("summary %q, want %q", stdout, want)
	}
	if !strings.Contains(stderr, "rows, ") || !strings.Contains(stderr, "16 applied, 1 duplicates, 4 rejected") {
		t.Errorf("progress line %q, want the rows, their rate and the counts", stderr)
	}
	wantReport := [][]string{
		{"line", "event_id", "field", "status", "description"},
		{"19", "esp-2026-11-24-000017", "occurred_at", "not sent", "not an RFC 3339 time (2026-11-26T09:30:00Z)"},
		{"20", "esp-2026-11-24-000018", "type", "not sent", `unknown event type "liked"`},
		{"21", "esp-2026-11-24-000019", "hcp_id", "NotFound", "no profile for this recipient: the event was not applied (send it again once the profile exists)"},
		{"22", "esp-2026-11-24-000020", "occurred_at", "InvalidArgument", "must not be more than 5 minutes in the future"},
	}
	if got := readCSV(t, report); !reflect.DeepEqual(got, wantReport) {
		t.Errorf("error report:\n%q\nwant\n%q", got, wantReport)
	}
	_, counters, err := store.GetProfile(context.Background(), demo.HCPID(1))
	if err != nil {
		t.Fatal(err)
	}
	if counters.Topics["cardiolex_efficacy"] <= 0 {
		t.Errorf("HCP 1's topic engagement %v: the open and click were not applied", counters.Topics)
	}

	// Again, as JSON Lines on standard input, the API's enum names in
	// places: nothing applied twice, the same rows rejected.
	jsonl := sampleAsJSONL(t)
	code, stdout, stderr = runCmd(t, jsonl, "events", "import", "-addr", addr, "-file", "-")
	if code != 0 {
		t.Fatalf("JSON Lines: exit status %d: %s%s", code, stdout, stderr)
	}
	if want := "0 applied, 17 duplicates, 4 rejected (2 by the server, 2 unreadable and not sent)"; !strings.Contains(stdout, want) {
		t.Errorf("JSON Lines: summary %q, want %q", stdout, want)
	}
	// Without -errors, the rejected rows go to standard error.
	for _, want := range []string{"line 19: occurred_at: not an RFC 3339 time", "line 22: occurred_at: must not be more than 5 minutes in the future (InvalidArgument)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("JSON Lines: stderr %q, want %q", stderr, want)
		}
	}
}

// Rows a JSON Lines file cannot make an event of: not an object, an
// unknown key, a value that is not a string.
func TestEventsImportJSONLinesErrors(t *testing.T) {
	addr, _ := eventsServer(t)
	file := filepath.Join(t.TempDir(), "events.jsonl")
	lines := `{"event_id": "j-1", "hcp_id": "HCP-000001", "type": "opened", "channel": "email", "occurred_at": "2026-11-24T10:00:00Z"}
not json
{"event_id": "j-2", "hcp_id": "HCP-000001", "type": "opened", "channel": "email", "occurred_at": "2026-11-24T10:00:00Z", "colour": "red"}

{"event_id": "j-3", "hcp_id": "HCP-000001", "type": 3, "channel": "email", "occurred_at": "2026-11-24T10:00:00Z"}
`
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "errors.csv")
	code, stdout, stderr := runCmd(t, "", "events", "import", "-addr", addr, "-file", file, "-errors", report)
	if code != 0 {
		t.Fatalf("exit status %d: %s%s", code, stdout, stderr)
	}
	if want := "4 rows in "; !strings.HasPrefix(stdout, want) || !strings.Contains(stdout, "1 applied, 0 duplicates, 3 rejected") {
		t.Errorf("summary %q", stdout)
	}
	got := readCSV(t, report)
	if len(got) > 1 && strings.HasPrefix(got[1][4], "not a JSON object: ") {
		got[1][4] = "not a JSON object: ..." // the JSON decoder's words
	}
	want := [][]string{
		{"line", "event_id", "field", "status", "description"},
		{"2", "", "", "not sent", "not a JSON object: ..."},
		{"3", "j-2", "colour", "not sent", "not a field of an event"},
		{"5", "j-3", "type", "not sent", "must be a JSON string"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("error report:\n%q\nwant\n%q", got, want)
	}
}

func readCSV(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// sampleAsJSONL is the sample file as JSON Lines, line for line (the
// header a blank line), with the API's enum names for types.
func sampleAsJSONL(t *testing.T) string {
	t.Helper()
	recs := readCSV(t, sampleEvents)
	var b strings.Builder
	b.WriteString("\n")
	for _, rec := range recs[1:] {
		obj := map[string]string{}
		for i, v := range rec {
			if v != "" {
				obj[recs[0][i]] = v
			}
		}
		if obj["type"] == "opened" {
			obj["type"] = "EVENT_TYPE_OPENED"
		}
		line, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteString("\n")
	}
	return b.String()
}
