package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
)

// /metrics counts what the server did, by method and code, caller kind,
// channel and suppression reason, and the HCP cache's work; and it names
// no HCP.
func TestMetrics(t *testing.T) {
	ts := start(t, singleRedis(t), 20, "-hcp-cache", "100", "-metrics-addr", "127.0.0.1:0")
	ctx := context.Background()
	c := ts.client
	hcp := demo.HCPID(7)

	recs, sups := 0, 0
	decide := func() {
		t.Helper()
		d, err := c.Decide(ctx, hcp, client.DecideOptions{Limit: 5, Caller: arbiter.CallerRepTool})
		if err != nil {
			t.Fatal(err)
		}
		recs += len(d.Recommendations)
		sups += len(d.Suppressed)
	}
	decide() // a miss: read and cached
	decide() // a hit
	if _, err := c.SetConsent(ctx, hcp, client.ConsentRecord{
		Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: client.ConsentOptOut,
		CapturedAt: time.Now(), Source: "preference-centre", CapturedBy: "metrics-test",
	}, false); err != nil {
		t.Fatal(err)
	}
	// The barrier makes this decision wait for the opt-out's invalidation:
	// by the time it returns, the cache has dropped the HCP.
	decide()
	if _, err := c.Decide(ctx, "", client.DecideOptions{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty hcp_id: %v, want InvalidArgument", err)
	}
	if recs == 0 || sups == 0 {
		t.Fatalf("%d recommendations and %d suppressions: the test exercises nothing", recs, sups)
	}

	body := scrape(t, "http://"+ts.MetricsAddr()+"/metrics")
	decideLabels := []string{`grpc_method="Decide"`, `grpc_service="nba.v1.DecisionService"`, `grpc_type="unary"`}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"arbiter_decisions_total", []string{`caller="rep_tool"`}, 3},
		{"arbiter_decisions_total", []string{`caller="marketing_platform"`}, 0},
		{"arbiter_decide_seconds_count", nil, 3},
		{"grpc_server_handled_total", append([]string{`grpc_code="OK"`}, decideLabels...), 3},
		{"grpc_server_handled_total", append([]string{`grpc_code="InvalidArgument"`}, decideLabels...), 1},
		{"grpc_server_handled_total", []string{`grpc_code="OK"`, `grpc_method="SetConsent"`}, 1},
		{"arbiter_hcp_cache_hits_total", nil, 1},
		{"arbiter_hcp_cache_misses_total", nil, 2},
		{"arbiter_hcp_cache_invalidations_total", nil, 1},
		{"arbiter_hcp_cache_losses_total", nil, 0},
		{"arbiter_hcp_cache_entries", nil, 1},
		{"arbiter_hcp_cache_up", nil, 1},
	} {
		if got := metricSum(t, body, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := metricSum(t, body, "arbiter_recommendations_total"); got != float64(recs) {
		t.Errorf("arbiter_recommendations_total sums to %v, want the %d recommendations returned", got, recs)
	}
	if got := metricSum(t, body, "arbiter_suppressions_total"); got != float64(sups) {
		t.Errorf("arbiter_suppressions_total sums to %v, want the %d suppressions returned", got, sups)
	}
	if got := metricSum(t, body, "arbiter_suppressions_total", `reason="no_consent"`); got < 1 {
		t.Errorf(`arbiter_suppressions_total{reason="no_consent"} = %v after an opt-out, want >= 1`, got)
	}
	if strings.Contains(body, "HCP-") {
		t.Error("/metrics names an HCP")
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %v", url, resp.Status, err)
	}
	return string(b)
}

// metricSum adds the values of every sample of the metric name (text
// exposition format) whose labels include all of labels (`key="value"`).
// No matching sample fails the test: a typo in a name or a label must not
// pass as zero.
func metricSum(t *testing.T, body, name string, labels ...string) float64 {
	t.Helper()
	sum, found := 0.0, false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, labelSet, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(labelSet, l)
		}
		if !match {
			continue
		}
		found = true
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += v
	}
	if !found {
		t.Fatalf("no %s%v in /metrics", name, labels)
	}
	return sum
}
