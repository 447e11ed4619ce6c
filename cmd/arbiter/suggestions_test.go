package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/demo"
)

// inTerritory lists the demo HCPs of 1..n in territory t.
func inTerritory(n int, t string) []string {
	var ids []string
	for i := 1; i <= n; i++ {
		if demo.Territory(i) == t {
			ids = append(ids, demo.HCPID(i))
		}
	}
	return ids
}

// Suggestions end to end, on a real redis-server, with rep tokens: a rep
// of T07 gets suggestions for T07's HCPs only, each a logged decision
// that GetDecision returns and that replays identical; a territory
// outside the token is refused; a NOT_RELEVANT dismissal makes the next
// decision hold the action back (DISMISSED, with clears_at), and that
// decision replays identical; COMPLETED is recorded; and the territory
// index follows a profile from T07 to T08, by UpsertProfile and by an
// import.
func TestSuggestions(t *testing.T) {
	p := newTestPKI(t)
	const n = 60
	ts := start(t, singleRedis(t), n, append(p.flags(), "-receipts", "sync")...)
	tlsOpt := client.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.certPool})))
	ctx := context.Background()
	as := func(roles []string, territories ...string) *client.Client {
		tok := p.token(t, roles, func(c jwt.MapClaims, _ map[string]any) {
			c["sub"] = "rep-" + strings.Join(territories, "-")
			if territories != nil {
				c["territories"] = territories
			}
		})
		c, err := client.Dial(ts.Addr(), tlsOpt, client.WithToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	rep7 := as([]string{"rep_tool"}, "T07")
	rep8 := as([]string{"rep_tool"}, "T08")
	auditor := as([]string{"auditor"})
	feed := as([]string{"data_feed"})
	t07 := inTerritory(n, "T07")

	all := func(c *client.Client, opts client.SuggestionOptions) []client.Suggestion {
		t.Helper()
		var out []client.Suggestion
		for {
			page, err := c.ListSuggestions(ctx, opts)
			if err != nil {
				t.Fatalf("ListSuggestions(%+v): %v", opts, err)
			}
			out = append(out, page.Suggestions...)
			if page.NextPageToken == "" {
				return out
			}
			opts.PageToken = page.NextPageToken
		}
	}
	hcps := func(ss []client.Suggestion) []string {
		var ids []string
		for _, s := range ss {
			ids = append(ids, s.HCPID)
		}
		slices.Sort(ids)
		return ids
	}

	sugs := all(rep7, client.SuggestionOptions{})
	if len(sugs) == 0 {
		t.Fatal("no suggestion for T07: the test proves nothing")
	}
	t.Logf("T07 (%v): %d suggestions, the first %+v", t07, len(sugs), sugs[0])
	now := time.Now()
	for i, s := range sugs {
		switch {
		case !slices.Contains(t07, s.HCPID):
			t.Errorf("suggestion for %s, which is not in T07 (%v)", s.HCPID, t07)
		case s.DecisionID == "" || s.ActionID == "" || s.Title == "" || s.Reason == "" || !s.Channel.Valid():
			t.Errorf("suggestion %d lacks a field: %+v", i, s)
		case s.Rank != i+1 || s.Priority == "":
			t.Errorf("suggestion %d has rank %d, priority %q", i, s.Rank, s.Priority)
		case !s.ExpiresAt.After(now) || s.ExpiresAt.After(now.Add(49*time.Hour)):
			t.Errorf("suggestion %d expires at %v, want the end of today where the HCP is", i, s.ExpiresAt)
		case i > 0 && s.Score > sugs[i-1].Score:
			t.Errorf("suggestion %d scores %v, more than the one before it (%v)", i, s.Score, sugs[i-1].Score)
		}
		got, err := auditor.GetDecision(ctx, s.DecisionID)
		if err != nil {
			t.Fatalf("GetDecision(%s): %v", s.DecisionID, err)
		}
		rc := got.GetReceipt()
		if rc.GetDecide().GetHcpId() != s.HCPID || rc.GetDecided().GetRecommendations()[0].GetActionId() != s.ActionID {
			t.Errorf("the receipt of %s is of %s, %v; want %s, %s", s.DecisionID, rc.GetDecide().GetHcpId(),
				rc.GetDecided().GetRecommendations(), s.HCPID, s.ActionID)
		}
		rp, err := auditor.ReplayDecision(ctx, s.DecisionID)
		if err != nil || !rp.GetIdentical() {
			t.Fatalf("replay of suggestion %s: %v, %q %v", s.DecisionID, err, rp.GetNotReplayable(), rp.GetDifferences())
		}
	}
	// Pages of 1 HCP hold the same suggestions.
	if got, want := hcps(all(rep7, client.SuggestionOptions{PageSize: 1})), hcps(sugs); !slices.Equal(got, want) {
		t.Errorf("in pages of 1: suggestions for %v, want %v", got, want)
	}
	// Narrowed to the token's own territory, the same; outside it, refused.
	if got := hcps(all(rep7, client.SuggestionOptions{Territory: "T07"})); !slices.Equal(got, hcps(sugs)) {
		t.Errorf("with territory T07: %v, want %v", got, hcps(sugs))
	}
	if _, err := rep7.ListSuggestions(ctx, client.SuggestionOptions{Territory: "T08"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a rep of T07 listing T08: %v, want PermissionDenied", err)
	}
	if page, err := as([]string{"rep_tool"}).ListSuggestions(ctx, client.SuggestionOptions{}); err != nil || len(page.Suggestions) != 0 {
		t.Errorf("a rep token without territories: %+v, %v; want nothing, as it decides for no one", page, err)
	}
	if _, err := rep7.ListSuggestions(ctx, client.SuggestionOptions{Day: "2001-01-01"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a past day: %v, want InvalidArgument", err)
	}
	// A day ahead: decided for 09:00 there, expiring at its end.
	tomorrow := now.UTC().AddDate(0, 0, 2).Format("2006-01-02")
	ahead, err := rep7.ListSuggestions(ctx, client.SuggestionOptions{Day: tomorrow})
	if err != nil || len(ahead.Suggestions) == 0 || ahead.Day != tomorrow {
		t.Fatalf("suggestions for %s: %v, %+v", tomorrow, err, ahead)
	}
	for _, s := range ahead.Suggestions {
		if d := s.ExpiresAt.Sub(s.DecisionTime); d != 15*time.Hour {
			t.Errorf("a suggestion for %s decided for %v, expiring at %v: want 09:00 and midnight where the HCP is", tomorrow, s.DecisionTime, s.ExpiresAt)
		}
	}

	// A NOT_RELEVANT dismissal: the next decision holds the action back.
	top := sugs[0]
	// Only of the action the decision suggested: another one of the
	// catalog is refused, and nothing is recorded.
	otherAction := "email-cardiolex-efficacy"
	if top.ActionID == otherAction {
		otherAction = "portal-cardiolex-efficacy"
	}
	if _, err := rep7.SuggestionFeedback(ctx, client.Feedback{DecisionID: top.DecisionID, ActionID: otherAction,
		Dismissal: arbiter.DismissNotRelevant}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("dismissing an action the decision did not suggest: %v, want FAILED_PRECONDITION", err)
	}
	fb, err := rep7.SuggestionFeedback(ctx, client.Feedback{DecisionID: top.DecisionID, ActionID: top.ActionID,
		Dismissal: arbiter.DismissNotRelevant, Note: "sees no patients with it", HCPID: top.HCPID})
	if err != nil {
		t.Fatal(err)
	}
	if fb.HCPID != top.HCPID || fb.Duplicate || fb.SuppressedUntil.Sub(now) < decision.DismissalPeriod-time.Minute {
		t.Errorf("feedback = %+v, want %s held back for 30 days", fb, top.HCPID)
	}
	if again, err := rep7.SuggestionFeedback(ctx, client.Feedback{DecisionID: top.DecisionID, ActionID: top.ActionID,
		Dismissal: arbiter.DismissNotRelevant}); err != nil || !again.Duplicate {
		t.Errorf("the same feedback again: %+v, %v; want a duplicate", again, err)
	}
	d, err := rep7.Decide(ctx, top.HCPID, client.DecideOptions{Limit: 5, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	var held *client.Suppression
	for i := range d.Suppressed {
		if d.Suppressed[i].ActionID == top.ActionID {
			held = &d.Suppressed[i]
		}
	}
	if held == nil || held.Reason != client.SuppressionDismissed || held.ClearsAt.IsZero() ||
		held.ClearsAt.Sub(fb.SuppressedUntil).Abs() > time.Second {
		t.Errorf("after the dismissal, %s is suppressed as %+v; want DISMISSED until %v", top.ActionID, held, fb.SuppressedUntil)
	}
	for _, r := range d.Recommendations {
		if r.ActionID == top.ActionID {
			t.Errorf("the dismissed action is still recommended: %+v", r)
		}
	}
	rp, err := auditor.ReplayDecision(ctx, d.ID)
	if err != nil || !rp.GetIdentical() {
		t.Fatalf("replay of the decision after the dismissal: %v, %q %v", err, rp.GetNotReplayable(), rp.GetDifferences())
	}
	got, err := auditor.GetDecision(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ds := got.GetReceipt().GetInputs().GetDismissals(); len(ds) != 1 || ds[0].GetActionId() != top.ActionID || ds[0].GetPrincipal() != "rep-T07" {
		t.Errorf("the receipt's dismissals = %v, want %s's by rep-T07", ds, top.ActionID)
	}
	if next := all(rep7, client.SuggestionOptions{}); slices.ContainsFunc(next, func(s client.Suggestion) bool {
		return s.HCPID == top.HCPID && s.ActionID == top.ActionID
	}) {
		t.Errorf("the dismissed action is suggested again for %s", top.HCPID)
	}

	// COMPLETED is recorded, on the HCP of the decision.
	if len(sugs) > 1 {
		done := sugs[1]
		if _, err := rep7.SuggestionFeedback(ctx, client.Feedback{DecisionID: done.DecisionID, ActionID: done.ActionID, Completed: true}); err != nil {
			t.Fatal(err)
		}
		head, err := ts.rdb.LIndex(ctx, ts.cfg.RedisPrefix+":{"+done.HCPID+"}:h", 0).Result()
		if err != nil || !strings.Contains(head, "|completed|") || !strings.Contains(head, "|"+done.ActionID+"|") || !strings.Contains(head, "|rep-T07") {
			t.Errorf("history head of %s = %q (%v), want the completion by rep-T07", done.HCPID, head, err)
		}
	}
	// Another HCP's decision, named as this one's: refused.
	other := t07[0]
	if other == top.HCPID {
		other = t07[1]
	}
	_, err = rep7.SuggestionFeedback(ctx, client.Feedback{DecisionID: top.DecisionID, ActionID: top.ActionID, Completed: true, HCPID: other})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("feedback naming another HCP: %v, want FailedPrecondition", err)
	}
	// A rep of another territory cannot give feedback on T07's HCPs.
	if _, err := rep8.SuggestionFeedback(ctx, client.Feedback{DecisionID: top.DecisionID, ActionID: top.ActionID, Completed: true}); status.Code(err) != codes.NotFound {
		t.Errorf("feedback from a rep of T08 on an HCP of T07: %v, want NotFound", err)
	}
	if _, err := rep7.SuggestionFeedback(ctx, client.Feedback{DecisionID: "made-up", ActionID: top.ActionID, Completed: true}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("feedback on a made-up decision id: %v, want InvalidArgument", err)
	}
	if _, err := rep7.SuggestionFeedback(ctx, client.Feedback{DecisionID: top.DecisionID, ActionID: top.ActionID}); !hasViolation(err, "dismiss_reason") {
		t.Errorf("a dismissal without its reason: %v, want a violation of dismiss_reason", err)
	}
	// Feedback is SuggestionFeedback's: RecordEvent refuses it.
	_, err = feed.RecordEvent(ctx, client.Event{ID: "ev-dismiss", HCPID: top.HCPID, Type: arbiter.EventDismissed, Channel: arbiter.Email,
		ActionID: top.ActionID, OccurredAt: now})
	if !hasViolation(err, "event.type") {
		t.Errorf("RecordEvent of a dismissal: %v, want a violation of event.type", err)
	}

	// The index follows profiles: HCP moves from T07 to T08 by UpsertProfile...
	moved := t07[0]
	prof, _, err := feed.GetProfile(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	prof.Territories = []string{"T08"}
	if err := feed.UpsertProfile(ctx, *prof); err != nil {
		t.Fatal(err)
	}
	// ...and another by an import.
	imported := t07[1]
	prof2, _, err := feed.GetProfile(ctx, imported)
	if err != nil {
		t.Fatal(err)
	}
	prof2.Territories = []string{"T08"}
	im, err := feed.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Send(client.ImportItem{Profile: *prof2}); err != nil {
		t.Fatal(err)
	}
	if _, err := im.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{moved, imported} {
		if slices.Contains(hcps(all(rep7, client.SuggestionOptions{PageSize: 2})), id) {
			t.Errorf("%s moved to T08 and is still suggested to the rep of T07", id)
		}
		if !slices.Contains(hcps(all(rep8, client.SuggestionOptions{})), id) {
			t.Errorf("%s moved to T08 and is not suggested to the rep of T08", id)
		}
		for _, key := range []string{":terr:{T07}", ":terr:{T08}"} {
			in, err := ts.rdb.ZScore(ctx, ts.cfg.RedisPrefix+key, id).Result()
			if (err == nil) != (key == ":terr:{T08}") {
				t.Errorf("%s in the index %s: %v (%v)", id, key, in, err)
			}
		}
	}
}

// Without authentication (loopback), a request names its territory; over
// HTTP/JSON too (GET /v1/suggestions, POST /v1/suggestions:feedback).
func TestSuggestionsWithoutAuthentication(t *testing.T) {
	ts := start(t, embedded, 40, "-http-listen", "127.0.0.1:0")
	ctx := context.Background()
	if _, err := ts.client.ListSuggestions(ctx, client.SuggestionOptions{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("without a territory: %v, want InvalidArgument", err)
	}
	page, err := ts.client.ListSuggestions(ctx, client.SuggestionOptions{Territory: "T03"})
	if err != nil || len(page.Suggestions) == 0 {
		t.Fatalf("T03: %v, %+v", err, page)
	}
	for _, s := range page.Suggestions {
		if !slices.Contains(inTerritory(40, "T03"), s.HCPID) {
			t.Errorf("suggestion for %s, not of T03", s.HCPID)
		}
	}
	s := page.Suggestions[0]
	fb, err := ts.client.SuggestionFeedback(ctx, client.Feedback{DecisionID: s.DecisionID, ActionID: s.ActionID,
		Dismissal: arbiter.DismissAlreadyDone})
	if err != nil || fb.HCPID != s.HCPID || !fb.SuppressedUntil.IsZero() {
		t.Errorf("dismissed as already done: %+v, %v; want recorded, nothing held back", fb, err)
	}

	base := "http://" + ts.HTTPAddr()
	resp, err := http.Get(base + "/v1/suggestions?territory=T03&page_size=1")
	if err != nil {
		t.Fatal(err)
	}
	var listed struct {
		Suggestions []struct {
			DecisionID string `json:"decision_id"`
			HCPID      string `json:"hcp_id"`
			ActionID   string `json:"action_id"`
			Title      string `json:"title"`
			Priority   string `json:"priority"`
			Channel    string `json:"channel"`
			ExpiresAt  string `json:"expires_at"`
		} `json:"suggestions"`
		NextPageToken string `json:"next_page_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&listed)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(listed.Suggestions) == 0 || listed.NextPageToken == "" {
		t.Fatalf("GET /v1/suggestions: %d, %+v, %v", resp.StatusCode, listed, err)
	}
	if first := listed.Suggestions[0]; first.Title == "" || !strings.HasPrefix(first.Priority, "SUGGESTION_PRIORITY_") ||
		!strings.HasPrefix(first.Channel, "CHANNEL_") || first.ExpiresAt == "" {
		t.Errorf("GET /v1/suggestions: %+v", first)
	}
	first := listed.Suggestions[0]
	body := `{"decision_id": "` + first.DecisionID + `", "action_id": "` + first.ActionID + `", "outcome": "SUGGESTION_OUTCOME_DISMISSED", "dismiss_reason": "DISMISS_REASON_NOT_RELEVANT"}`
	resp, err = http.Post(base+"/v1/suggestions:feedback", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var fed struct {
		HCPID           string `json:"hcp_id"`
		SuppressedUntil string `json:"suppressed_until"`
	}
	err = json.NewDecoder(resp.Body).Decode(&fed)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || fed.HCPID != first.HCPID || fed.SuppressedUntil == "" {
		t.Errorf("POST /v1/suggestions:feedback: %d, %+v, %v", resp.StatusCode, fed, err)
	}
}

// hasViolation reports whether err is InvalidArgument with a violation of
// field.
func hasViolation(err error, field string) bool {
	if status.Code(err) != codes.InvalidArgument {
		return false
	}
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return true
				}
			}
		}
	}
	return false
}
