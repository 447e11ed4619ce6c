package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/redisstore"
	"github.com/arbiter-nba/arbiter/server"
)

// territoryStore is a profile store whose territory index holds HCP-1 to
// HCP-n, all in T07 (a stand-in for the store: this tests the command,
// over a real gRPC server).
type territoryStore struct{ n int }

func (territoryStore) UpsertProfile(context.Context, recipient.Profile) error { return nil }
func (territoryStore) GetProfile(context.Context, string) (recipient.Profile, recipient.Counters, error) {
	return recipient.Profile{}, recipient.Counters{}, arbiter.ErrNotFound
}
func (territoryStore) ApplyEvent(context.Context, recipient.Event) (bool, error) { return false, nil }
func (territoryStore) ApplyEvents(_ context.Context, es []recipient.Event) ([]recipient.EventOutcome, error) {
	return make([]recipient.EventOutcome, len(es)), nil
}
func (territoryStore) Import(context.Context, []recipient.ImportItem) error { return nil }

func (s territoryStore) TerritoryPage(_ context.Context, territories []string, after string, n int) ([]redisstore.TerritoryMember, string, error) {
	if !slices.Contains(territories, "T07") {
		return nil, "", nil
	}
	var out []redisstore.TerritoryMember
	for i := 1; i <= s.n; i++ {
		if id := fmt.Sprintf("HCP-%d", i); id > after {
			out = append(out, redisstore.TerritoryMember{ID: id, TimeZone: "Europe/Berlin"})
		}
	}
	if len(out) > n {
		return out[:n], out[n-1].ID, nil
	}
	return out, "", nil
}

// suggester recommends its action to every HCP, scored by the HCP's number.
type suggester struct{ a *catalog.Action }

func (s suggester) Decide(_ context.Context, req decision.Request) (*decision.Result, error) {
	var i int
	fmt.Sscanf(req.HCPID, "HCP-%d", &i)
	return &decision.Result{ID: "d-" + req.HCPID, At: req.At, Recommendations: []decision.Recommendation{
		{Rank: 1, Action: s.a, Score: float64(i), Reason: "they like it"}}}, nil
}

func TestSuggestionsCommand(t *testing.T) {
	a := &catalog.Action{ID: "email-cardiolex-efficacy", Channel: arbiter.Email, Topic: "cardiolex_efficacy"}
	s, err := server.New(suggester{a}, territoryStore{n: 5}, nil, server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	g := s.NewGRPCServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()
	addr := lis.Addr().String()

	code, stdout, stderr := runCmd(t, "", "suggestions", "-addr", addr, "-territory", "T07")
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "RANK") || !strings.Contains(lines[1], "HCP-5") ||
		!strings.Contains(lines[1], "Email: Cardiolex efficacy") || !strings.Contains(lines[1], "HIGH") || !strings.Contains(lines[5], "LOW") {
		t.Errorf("suggestions:\n%s", stdout)
	}
	// Every page, as JSON.
	code, stdout, stderr = runCmd(t, "", "suggestions", "-addr", addr, "-territory", "T07", "-page-size", "2", "-all", "-json")
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	var ids []string
	dec := json.NewDecoder(strings.NewReader(stdout))
	for dec.More() {
		var page client.SuggestionPage
		if err := dec.Decode(&page); err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Suggestions {
			if s.DecisionID != "d-"+s.HCPID || s.ExpiresAt.IsZero() || s.Title == "" {
				t.Errorf("suggestion %+v", s)
			}
			ids = append(ids, s.HCPID)
		}
	}
	slices.Sort(ids)
	if want := []string{"HCP-1", "HCP-2", "HCP-3", "HCP-4", "HCP-5"}; !slices.Equal(ids, want) {
		t.Errorf("every page: %v, want %v", ids, want)
	}
	// Without a territory, and without a token: the server says so.
	if code, _, stderr := runCmd(t, "", "suggestions", "-addr", addr); code != 1 || !strings.Contains(stderr, "territory") {
		t.Errorf("without a territory: exit %d, %s", code, stderr)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"suggestions", "feedback", "-decision", "d-HCP-1", "-action", "a"}, "either -done or -dismiss"},
		{[]string{"suggestions", "feedback", "-decision", "d-HCP-1", "-action", "a", "-done", "-dismiss", "other"}, "either -done or -dismiss"},
		{[]string{"suggestions", "feedback", "-action", "a", "-done"}, "-decision is required"},
		{[]string{"suggestions", "feedback", "-decision", "d", "-action", "a", "-dismiss", "boring"}, `unknown value "boring"`},
	} {
		if code, _, stderr := runCmd(t, "", tt.args...); code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, %s; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
	if code, stdout, _ := runCmd(t, "", "help", "suggestions", "feedback"); code != 0 || !strings.Contains(stdout, "not_relevant") {
		t.Errorf("help suggestions feedback: exit %d, %s", code, stdout)
	}
}
