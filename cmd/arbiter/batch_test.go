package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

func TestDecideBatch(t *testing.T) { eachBackend(t, testDecideBatch) }

// A batch gives, for each HCP in order, the decision Decide gives it, an
// item error for an unknown HCP, and honours an opt-out made just before.
func testDecideBatch(t *testing.T, b redistest.Backend) {
	ts := start(t, b, 30)
	ctx := context.Background()
	c := ts.client
	var ids []string
	for i := 1; i <= 24; i++ {
		ids = append(ids, demo.HCPID(i))
	}
	ids = slices.Insert(ids, 5, "HCP-999999") // unknown
	opts := client.DecideOptions{Limit: 5, CandidateSet: "hcp-email", Caller: arbiter.CallerMarketingPlatform,
		At: time.Now().Truncate(time.Second)}

	// An HCP who may get a promotional email now opts out of it.
	var optedOut, promo string
	for _, id := range ids {
		d, err := c.Decide(ctx, id, opts)
		if err != nil {
			continue
		}
		for _, r := range d.Recommendations {
			if r.Channel == arbiter.Email && r.Purpose == arbiter.Promotional {
				optedOut, promo = id, r.ActionID
			}
		}
		if optedOut != "" {
			break
		}
	}
	if optedOut == "" {
		t.Fatal("no HCP of the list is recommended a promotional email: the opt-out would test nothing")
	}
	if _, err := c.SetConsent(ctx, optedOut, client.ConsentRecord{
		Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: client.ConsentOptOut,
		CapturedAt: time.Now(), Source: "preference-centre", CapturedBy: "batch-test",
	}, false); err != nil {
		t.Fatal(err)
	}
	items, err := c.DecideBatch(ctx, ids, opts)
	if err != nil {
		t.Fatalf("DecideBatch: %v", err)
	}
	if len(items) != len(ids) {
		t.Fatalf("%d items for %d HCPs", len(items), len(ids))
	}
	seen := map[string]bool{}
	recommended := 0
	for i, it := range items {
		if it.HCPID != ids[i] {
			t.Fatalf("item %d is for %q, want %q (request order)", i, it.HCPID, ids[i])
		}
		one, err := c.Decide(ctx, ids[i], opts)
		if ids[i] == "HCP-999999" {
			if status.Code(it.Err) != codes.NotFound || it.Decision != nil || status.Code(err) != codes.NotFound {
				t.Errorf("unknown HCP: item %+v, Decide error %v; want NotFound from both", it, err)
			}
			continue
		}
		if it.Err != nil || err != nil {
			t.Fatalf("%s: batch item error %v, Decide error %v", ids[i], it.Err, err)
		}
		if seen[it.Decision.ID] {
			t.Errorf("%s: decision id %s repeated", ids[i], it.Decision.ID)
		}
		seen[it.Decision.ID] = true
		if got, want := summary(it.Decision), summary(one); !slices.Equal(got, want) {
			t.Errorf("%s: batch decided %v, Decide %v", ids[i], got, want)
		}
		for _, r := range it.Decision.Recommendations {
			recommended++
			if ids[i] == optedOut && r.Channel == arbiter.Email && r.Purpose == arbiter.Promotional {
				t.Errorf("%s opted out of promotional email, and the batch recommends %s", optedOut, r.ActionID)
			}
		}
		if ids[i] == optedOut && !slices.ContainsFunc(it.Decision.Suppressed, func(s client.Suppression) bool {
			return s.ActionID == promo && s.Reason == client.SuppressionNoConsent
		}) {
			t.Errorf("%s opted out: the batch does not suppress %s with NO_CONSENT: %+v", optedOut, promo, it.Decision.Suppressed)
		}
	}
	if recommended == 0 {
		t.Fatal("the batch recommended nothing: the test exercises nothing")
	}
}

// summary is what two decisions for the same HCP, time and options must
// agree on: each recommendation and suppression with its reason.
func summary(d *client.Decision) []string {
	var out []string
	for _, r := range d.Recommendations {
		out = append(out, "rec "+r.ActionID)
	}
	for _, s := range d.Suppressed {
		out = append(out, fmt.Sprintf("sup %s %v", s.ActionID, s.Reason))
	}
	return out
}

func TestDecideBatchBadInput(t *testing.T) {
	ts := start(t, embedded, 5)
	ctx := context.Background()
	many := make([]string, client.MaxBatch+1)
	for i := range many {
		many[i] = demo.HCPID(1)
	}
	for _, tt := range []struct {
		name  string
		ids   []string
		opts  client.DecideOptions
		field string
	}{
		{"no HCPs", nil, client.DecideOptions{}, "hcp_ids"},
		{"too many HCPs", many, client.DecideOptions{}, "hcp_ids"},
		{"a malformed id", []string{"HCP-000001", "HCP 2", "HCP-000003"}, client.DecideOptions{}, "hcp_ids[1]"},
		{"limit too large", []string{"HCP-000001"}, client.DecideOptions{Limit: 51}, "limit"},
		{"unknown candidate set", []string{"HCP-000001", "HCP-000002"}, client.DecideOptions{CandidateSet: "no-such-set"}, "candidate_set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			items, err := ts.client.DecideBatch(ctx, tt.ids, tt.opts)
			if status.Code(err) != codes.InvalidArgument || len(items) != 0 {
				t.Fatalf("%d items, error %v; want InvalidArgument and no item", len(items), err)
			}
			if v := client.FieldViolations(err); v[tt.field] == "" {
				t.Errorf("field violations %v, want one for %q", v, tt.field)
			}
		})
	}
}
