package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/arbiter-nba/arbiter/hcpcache"
)

// newRegistry returns the registry /metrics serves: the Go runtime and
// process collectors, and the HCP cache's counters when there is one.
// The server adds its own (server.WithMetrics).
// resetClosed counts the connections closed for too many stream resets.
var resetClosed atomic.Int64

func newRegistry(cache *hcpcache.Cache) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cache != nil {
		reg.MustRegister(cacheCollector{cache})
	}
	reg.MustRegister(ruleFailures)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "arbiter_connections_reset_limited_total",
		Help: "Client connections closed for resetting streams past -stream-reset-limit (the rapid-reset attack).",
	}, func() float64 { return float64(resetClosed.Load()) }))
	return reg
}

// ruleFailures counts the behaviour rules' evaluation failures, by rule id
// (a definitions name, never personal data). A failing suppression holds
// back what it selects; any other failing rule has no effect.
var ruleFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "arbiter_rule_failures_total",
	Help: "Evaluations of a behaviour rule that failed, by rule id.",
}, []string{"rule"})

// serveMetrics serves reg on lis at /metrics until the returned server is
// shut down.
func serveMetrics(lis net.Listener, reg *prometheus.Registry, log *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return srv
}

// cacheCollector reports hcpcache.Cache.Stats, read once per scrape.
type cacheCollector struct{ cache *hcpcache.Cache }

var (
	cacheHitsDesc = prometheus.NewDesc("arbiter_hcp_cache_hits_total",
		"Decision loads served from the HCP cache (after the barrier PING).", nil, nil)
	cacheMissesDesc = prometheus.NewDesc("arbiter_hcp_cache_misses_total",
		"Decision loads that read Redis for an HCP the cache did not hold.", nil, nil)
	cacheBypassedDesc = prometheus.NewDesc("arbiter_hcp_cache_bypassed_total",
		"Decision loads that read Redis without the cache because tracking was down (or lost while they waited for the barrier).", nil, nil)
	cacheInvalidationsDesc = prometheus.NewDesc("arbiter_hcp_cache_invalidations_total",
		"HCPs dropped from the cache because their profile or consent was written.", nil, nil)
	cacheLossesDesc = prometheus.NewDesc("arbiter_hcp_cache_losses_total",
		"Tracking connections lost or given up; each empties the cache until tracking is back.", nil, nil)
	cacheEntriesDesc = prometheus.NewDesc("arbiter_hcp_cache_entries",
		"HCPs (and slots reserved by reads in flight) the cache holds.", nil, nil)
	cacheUpDesc = prometheus.NewDesc("arbiter_hcp_cache_up",
		"1 when the tracking connection is up and the cache is in use, else 0.", nil, nil)
)

func (cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHitsDesc, cacheMissesDesc, cacheBypassedDesc,
		cacheInvalidationsDesc, cacheLossesDesc, cacheEntriesDesc, cacheUpDesc} {
		ch <- d
	}
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cache.Stats()
	up := 0.0
	if st.Up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(cacheBypassedDesc, prometheus.CounterValue, float64(st.Bypassed))
	ch <- prometheus.MustNewConstMetric(cacheInvalidationsDesc, prometheus.CounterValue, float64(st.Invalidations))
	ch <- prometheus.MustNewConstMetric(cacheLossesDesc, prometheus.CounterValue, float64(st.Losses))
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(cacheUpDesc, prometheus.GaugeValue, up)
}
