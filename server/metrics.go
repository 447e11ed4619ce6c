package server

import (
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/rules"
)

// decideSecondsBuckets are the bounds of arbiter_decide_seconds and of
// grpc_server_handling_seconds: 10 µs to ~12.9 s, each 25% above the last,
// fine enough to read a p50 or p99 of well under a millisecond, and past
// the 5 s deadline, so that overload shows.
var decideSecondsBuckets = prometheus.ExponentialBuckets(10e-6, 1.25, 64)

// metrics are the server's Prometheus metrics. No label carries personal
// data: the labels are gRPC method names and codes, caller kinds,
// channels and suppression reasons, each from a fixed set. The per-label
// children are resolved once here, so a decision only adds to counters
// and observes a histogram: no label lookup, no allocation.
type metrics struct {
	grpc        *grpcprom.ServerMetrics
	decideTime  prometheus.Histogram
	decisions   [arbiter.NumCallerKinds]prometheus.Counter
	recommended [arbiter.NumChannels]prometheus.Counter
	// suppressed is indexed by the SuppressionReason code (dense from 0).
	suppressed []prometheus.Counter
	// The journeys' KPIs, as of their last GetJourneyStats: labels are the
	// journey's and step's ids, never a recipient's.
	// shed counts the calls refused at capacity (admission.go).
	shed prometheus.Counter
	// limited counts the calls refused by a caller's rate limit.
	limited        prometheus.Counter
	journeyMembers *prometheus.GaugeVec // journey, status
	journeyDropped *prometheus.GaugeVec // journey, step
	journeyRates   *prometheus.GaugeVec // journey, rate
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets(decideSecondsBuckets))),
		decideTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arbiter_decide_seconds",
			Help:    "Server time of each successful Decide, from the handler's start to the response built (validation, load, rules, scoring; not the transport).",
			Buckets: decideSecondsBuckets,
		}),
	}
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arbiter_decisions_total",
		Help: "Successful decisions, by caller kind.",
	}, []string{"caller"})
	recommended := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arbiter_recommendations_total",
		Help: "Recommendations returned, by channel.",
	}, []string{"channel"})
	suppressed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arbiter_suppressions_total",
		Help: "Candidates returned as suppressed, by reason (not-applicable ones only when explaining).",
	}, []string{"reason"})
	for k := range m.decisions {
		m.decisions[k] = decisions.WithLabelValues(arbiter.CallerKind(k).String())
	}
	for ch := range m.recommended {
		m.recommended[ch] = recommended.WithLabelValues(arbiter.Channel(ch).String())
	}
	m.suppressed = make([]prometheus.Counter, len(nbapb.SuppressionReason_name))
	for code := range m.suppressed {
		m.suppressed[code] = suppressed.WithLabelValues(reasonOf(nbapb.SuppressionReason(code).String()).String())
	}
	m.journeyMembers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "arbiter_journey_members",
		Help: "A journey's members by status (entered, active, completed, converted, exited, expired), as of its last stats run (arbiterctl journey stats).",
	}, []string{"journey", "status"})
	m.journeyDropped = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "arbiter_journey_dropped",
		Help: "A journey's members who left (exited or expired) with this step next, as of its last stats run.",
	}, []string{"journey", "step"})
	m.journeyRates = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "arbiter_journey_rate",
		Help: "A journey's completion and conversion rates (of those who entered), and the median seconds to engagement after a field interaction, as of its last stats run.",
	}, []string{"journey", "rate"})
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "arbiter_shed_total",
		Help: "Calls refused with RESOURCE_EXHAUSTED because the server was at its bound of calls in flight (-max-in-flight).",
	})
	m.limited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "arbiter_rate_limited_total",
		Help: "Calls (and streams) refused because their caller's rate limit was reached (-rate-limit).",
	})
	reg.MustRegister(m.grpc, m.decideTime, decisions, recommended, suppressed, m.shed, m.limited, m.journeyMembers, m.journeyDropped, m.journeyRates)
	return m
}

// journeyStats records a journey's KPIs; without metrics it does nothing.
func (m *metrics) journeyStats(j *rules.Journey, st *decision.JourneyStats) {
	if m == nil {
		return
	}
	for status, n := range map[string]int64{"entered": st.Entered, "active": st.Active, "completed": st.Completed,
		"converted": st.Converted, "exited": st.Exited, "expired": st.Expired} {
		m.journeyMembers.WithLabelValues(j.ID, status).Set(float64(n))
	}
	for k := range j.Steps {
		m.journeyDropped.WithLabelValues(j.ID, j.Steps[k].ID).Set(float64(st.Dropped[k]))
	}
	completion, conversion := st.Rates()
	m.journeyRates.WithLabelValues(j.ID, "completion").Set(completion)
	m.journeyRates.WithLabelValues(j.ID, "conversion").Set(conversion)
	m.journeyRates.WithLabelValues(j.ID, "engagement_after_field_p50_seconds").Set(st.FieldPercentile(0.5).Seconds())
}

// start is when a decision starts, for decided: the zero time without
// metrics (nil m), so that a server without them reads no clock.
func (m *metrics) start() time.Time {
	if m == nil {
		return time.Time{}
	}
	return time.Now()
}

// decided records one successful decision that started at start; without
// metrics (nil m) it does nothing.
func (m *metrics) decided(start time.Time, caller arbiter.CallerKind, res *decision.Result) {
	if m == nil {
		return
	}
	m.decideTime.Observe(time.Since(start).Seconds())
	if int(caller) < len(m.decisions) {
		m.decisions[caller].Inc()
	}
	for i := range res.Recommendations {
		if ch := res.Recommendations[i].Action.Channel; int(ch) < len(m.recommended) {
			m.recommended[ch].Inc()
		}
	}
	// Counted per code first: a counter's Add is an atomic operation, a
	// decision suppresses dozens of candidates, mostly for a few reasons.
	var n [32]int
	for i := range res.Suppressed {
		if code := int(reasonCode(res.Suppressed[i].Reason)); code < len(n) && code < len(m.suppressed) {
			n[code]++
		} else if code < len(m.suppressed) {
			m.suppressed[code].Inc()
		}
	}
	for code, k := range n[:min(len(n), len(m.suppressed))] {
		if k > 0 {
			m.suppressed[code].Add(float64(k))
		}
	}
}
