package validate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// TestAlertsFire evaluates each alert's expression, as written in
// deploy/alerts.yaml, with Prometheus's own engine over series made up for
// the case it is for: it must return a series when it should fire and none
// when it should not. (`for:` is the rule manager's, not evaluated here.)
func TestAlertsFire(t *testing.T) {
	groups, errs := rulefmt.ParseFile(filepath.Join(deployDir, "alerts.yaml"), false, model.LegacyValidation,
		parser.NewParser(parser.Options{}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	exprs := map[string]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				exprs[r.Alert] = r.Expr
			}
		}
	}
	const (
		decideOK   = `grpc_server_handled_total{job="arbiter",grpc_type="unary",grpc_service="nba.v1.DecisionService",grpc_method="Decide",grpc_code="OK"}`
		decideUnav = `grpc_server_handled_total{job="arbiter",grpc_type="unary",grpc_service="nba.v1.DecisionService",grpc_method="Decide",grpc_code="Unavailable"}`
		healthUnav = `grpc_server_handled_total{job="arbiter",grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="Unavailable"}`
		twoDays    = 48 * time.Hour
	)
	type scenario struct {
		name  string
		load  string // promqltest load commands
		at    time.Duration
		fires bool
	}
	cases := map[string][]scenario{
		"ArbiterTargetDown": {
			{"scrape fails", `load 1m
  up{job="arbiter",instance="a"} 1 1 0 0 0`, 4 * time.Minute, true},
			{"another job down", `load 1m
  up{job="arbiter",instance="a"} 1 1 1 1 1
  up{job="postgres",instance="p"} 0 0 0 0 0`, 4 * time.Minute, false},
		},
		"ArbiterRedisUnavailable": {
			{"1 call in 11 unavailable", "load 1m\n  " + decideOK + " 0+600x20\n  " + decideUnav + " 0+60x20", 15 * time.Minute, true},
			{"1 call in 100 unavailable", "load 1m\n  " + decideOK + " 0+600x20\n  " + decideUnav + " 0+6x20", 15 * time.Minute, false},
			{"health checks are not calls", "load 1m\n  " + decideOK + " 0+600x20\n  " + healthUnav + " 0+600x20", 15 * time.Minute, false},
		},
		"ArbiterDecisionsStopped": {
			{"none today, some yesterday", `load 5m
  arbiter_decisions_total{job="arbiter",caller="rep_tool"} 0+300x288 86400x288`, twoDays, true},
			{"as many as yesterday", `load 5m
  arbiter_decisions_total{job="arbiter",caller="rep_tool"} 0+300x576`, twoDays, false},
			{"none yesterday either (a quiet hour)", `load 5m
  arbiter_decisions_total{job="arbiter",caller="rep_tool"} 0x576`, twoDays, false},
		},
		"ArbiterShedding": {
			{"1 call in 11 shed", "load 1m\n  " + decideOK + " 0+600x20\n  arbiter_shed_total{job=\"arbiter\"} 0+60x20", 15 * time.Minute, true},
			{"nothing shed", "load 1m\n  " + decideOK + " 0+600x20\n  arbiter_shed_total{job=\"arbiter\"} 0x20", 15 * time.Minute, false},
		},
		"ArbiterRateLimited": {
			{"2 refusals/s", `load 1m
  arbiter_rate_limited_total{job="arbiter"} 0+120x20`, 15 * time.Minute, true},
			{"one refusal every 2 s", `load 1m
  arbiter_rate_limited_total{job="arbiter"} 0+30x20`, 15 * time.Minute, false},
		},
		"ArbiterDecideP99OverBudget": {
			{"most decisions between 10 and 100 ms", `load 1m
  arbiter_decide_seconds_bucket{job="arbiter",le="0.01"} 0+60x20
  arbiter_decide_seconds_bucket{job="arbiter",le="0.1"} 0+600x20
  arbiter_decide_seconds_bucket{job="arbiter",le="+Inf"} 0+600x20
  arbiter_decide_seconds_count{job="arbiter"} 0+600x20`, 15 * time.Minute, true},
			{"all under 10 ms", `load 1m
  arbiter_decide_seconds_bucket{job="arbiter",le="0.01"} 0+600x20
  arbiter_decide_seconds_bucket{job="arbiter",le="0.1"} 0+600x20
  arbiter_decide_seconds_bucket{job="arbiter",le="+Inf"} 0+600x20
  arbiter_decide_seconds_count{job="arbiter"} 0+600x20`, 15 * time.Minute, false},
			{"slow but one decision a minute", `load 1m
  arbiter_decide_seconds_bucket{job="arbiter",le="0.01"} 0x20
  arbiter_decide_seconds_bucket{job="arbiter",le="0.1"} 0+1x20
  arbiter_decide_seconds_bucket{job="arbiter",le="+Inf"} 0+1x20
  arbiter_decide_seconds_count{job="arbiter"} 0+1x20`, 15 * time.Minute, false},
		},
		"ArbiterReceiptsDropped": {
			{"five dropped", `load 1m
  arbiter_receipts_total{job="arbiter",result="dropped"} 0 0 0 0 5 5 5
  arbiter_receipts_total{job="arbiter",result="written"} 0+100x6`, 6 * time.Minute, true},
			{"all written", `load 1m
  arbiter_receipts_total{job="arbiter",result="dropped"} 0x6
  arbiter_receipts_total{job="arbiter",result="written"} 0+100x6`, 6 * time.Minute, false},
		},
		"ArbiterReceiptsFailed": {
			{"a batch failed", `load 1m
  arbiter_receipts_total{job="arbiter",result="failed"} 0 0 0 0 32 32 32`, 6 * time.Minute, true},
			{"none failed", `load 1m
  arbiter_receipts_total{job="arbiter",result="failed"} 0x6
  arbiter_receipts_total{job="arbiter",result="erased"} 0 0 0 0 3 3 3`, 6 * time.Minute, false},
		},
		"ArbiterReceiptQueueFilling": {
			{"5,000 waiting", `load 1m
  arbiter_receipt_queue{job="arbiter"} 5000x10`, 9 * time.Minute, true},
			{"a few waiting", `load 1m
  arbiter_receipt_queue{job="arbiter"} 100x10`, 9 * time.Minute, false},
		},
		"ArbiterConsentUnknownRising": {
			// One decision a second; consent_unknown suppressions at 0.2 a
			// decision yesterday, 0.6 today.
			{"tripled against yesterday", `load 5m
  arbiter_decisions_total{job="arbiter",caller="rep_tool"} 0+300x576
  arbiter_suppressions_total{job="arbiter",reason="consent_unknown"} 0+60x288 17460+180x287
  arbiter_suppressions_total{job="arbiter",reason="no_consent"} 0+600x576`, twoDays, true},
			{"as yesterday", `load 5m
  arbiter_decisions_total{job="arbiter",caller="rep_tool"} 0+300x576
  arbiter_suppressions_total{job="arbiter",reason="consent_unknown"} 0+60x576`, twoDays, false},
			{"doubled, but from almost nothing", `load 5m
  arbiter_decisions_total{job="arbiter",caller="rep_tool"} 0+300x576
  arbiter_suppressions_total{job="arbiter",reason="consent_unknown"} 0+3x288 867+9x287`, twoDays, false},
		},
		"ArbiterRuleFailures": {
			{"a rule fails", `load 1m
  arbiter_rule_failures_total{job="arbiter",rule="msl-met-no-promo-email"} 0+5x20`, 15 * time.Minute, true},
			{"no failure", `load 1m
  arbiter_rule_failures_total{job="arbiter",rule="msl-met-no-promo-email"} 0x20`, 15 * time.Minute, false},
		},
	}
	for name := range exprs {
		if len(cases[name]) == 0 {
			t.Errorf("alert %s has no scenario here: add one that fires and one that does not", name)
		}
	}
	p := parser.NewParser(parser.Options{})
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, Parser: p})
	for alert, scenarios := range cases {
		expr, ok := exprs[alert]
		if !ok {
			t.Errorf("no alert %s in alerts.yaml", alert)
			continue
		}
		for _, sc := range scenarios {
			t.Run(alert+"/"+sc.name, func(t *testing.T) {
				st, err := load(p, sc.load)
				if err != nil {
					t.Fatal(err)
				}
				q, err := engine.NewInstantQuery(context.Background(), st, nil, expr, time.Unix(0, 0).UTC().Add(sc.at))
				if err != nil {
					t.Fatal(err)
				}
				defer q.Close()
				res := q.Exec(context.Background())
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				vec, err := res.Vector()
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s", vec)
				if fired := len(vec) > 0; fired != sc.fires {
					t.Errorf("fires: %v (%v), want %v", fired, vec, sc.fires)
				}
			})
		}
	}
}

// load reads promqltest's load command ("load 1m" and one line per series
// in the test files' notation, e.g. `m{a="b"} 0+10x20`: samples from time
// 0, one every interval) into an in-memory queryable: Prometheus's
// engine then evaluates over it, with no TSDB.
func load(p parser.Parser, text string) (storage.Queryable, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	cmd, step, ok := strings.Cut(strings.TrimSpace(lines[0]), " ")
	interval, err := model.ParseDuration(step)
	if !ok || cmd != "load" || err != nil {
		return nil, fmt.Errorf("want load <interval>, got %q", lines[0])
	}
	var series []storage.Series
	for _, line := range lines[1:] {
		lset, values, err := p.ParseSeriesDesc(strings.TrimSpace(line))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		var samples []chunks.Sample
		for i, v := range values {
			if !v.Omitted {
				samples = append(samples, floatSample{t: int64(i) * time.Duration(interval).Milliseconds(), f: v.Value})
			}
		}
		series = append(series, storage.NewListSeries(lset, samples))
	}
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range series {
				if matchAll(s.Labels(), ms) {
					out = append(out, s)
				}
			}
			return &seriesSet{series: out, i: -1}
		},
	}}, nil
}

func matchAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }
