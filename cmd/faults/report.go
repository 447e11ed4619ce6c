package main

import (
	"fmt"
	"strings"
	"time"
)

type report struct {
	pinned                                 bool
	phases                                 []phaseResult
	drains                                 []drainResult
	decisions, writes                      int64
	errCodes                               string
	violations                             int64
	violationSamples                       []string
	ackedEvents, ackedEntries              int
	lostEvents, lostEntries, wrongConsent  int
	badTried, badInternal                  int
	badCodes                               string
	badSamples                             []string
	capacity                               float64
	capP99                                 time.Duration
	capServerP99, capDecideP99             time.Duration
	overServerP99, overDecideP99           time.Duration
	overload                               overloadResult
	floodBefore, floodDuring, floodStreams float64
	floodConns                             int64
	failures                               []string
}

type phaseResult struct {
	name              string
	took, recovery    time.Duration
	decisions, errors int64
}

type drainResult struct {
	frozen                   bool
	exit                     time.Duration
	checks, notServing       int
	inFlight, inFlightFailed int
}

type overloadResult struct {
	rate                        float64
	sent, admitted, shed, other int
	admittedP50, admittedP99    time.Duration
	shedP99, shedMax            time.Duration
	maxRSSMiB, seconds          float64
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func (r *report) String() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Fault suite report\n\n")
	if r.pinned {
		w("Server and Redis on CPU 0, the suite (load and probes) on CPU 1 (taskset).\n\n")
	} else {
		w("Not pinned (one CPU, or no taskset): overload figures are indicative only.\n\n")
	}
	w("## Faults survived, under load\n\n| fault | took | decisions | failed calls | first decision after |\n|---|---|---|---|---|\n")
	for _, p := range r.phases {
		w("| %s | %s | %d | %d | %s |\n", p.name, p.took.Round(10*time.Millisecond), p.decisions, p.errors, ms(p.recovery))
	}
	w("\nLoad held: %d decisions and %d acknowledged writes; failed calls by code:%s.\n", r.decisions, r.writes, r.errCodes)
	w("\n## Shutdown (SIGTERM) under load\n\n| Redis | exit after SIGTERM | readiness checks in the drain | NOT_SERVING | calls in flight at SIGTERM | of them failed |\n|---|---|---|---|---|---|\n")
	for _, d := range r.drains {
		redis := "running"
		if d.frozen {
			redis = "frozen"
		}
		w("| %s | %s | %d | %d | %d | %d |\n", redis, d.exit.Round(10*time.Millisecond), d.checks, d.notServing, d.inFlight, d.inFlightFailed)
	}
	w("\n(drain %s, grace %s; with Redis frozen, calls in flight cannot finish and are cut at the grace.)\n", drain, grace)
	w("\n## Durability and consent\n\n")
	w("- acknowledged events: %d, lost: **%d** (each sent again must be a duplicate)\n", r.ackedEvents, r.lostEvents)
	w("- acknowledged consent changes: %d, lost: **%d** (each must be in its ledger, as acknowledged)\n", r.ackedEntries, r.lostEntries)
	w("- recipients whose consent is not their last acknowledged change: **%d**\n", r.wrongConsent)
	w("- consent violations: **%d**\n", r.violations)
	for _, s := range r.violationSamples {
		w("  - %s\n", s)
	}
	w("\n## Bad input\n\n%d malformed or mutated requests over 9 RPCs: %s; Internal or Unknown: **%d**.\n", r.badTried, r.badCodes, r.badInternal)
	for _, s := range r.badSamples {
		w("- %s\n", s)
	}
	o := r.overload
	w("\n## Overload\n\n")
	w("- capacity (32 callers, closed loop): %.0f decisions/s, p99 %s\n", r.capacity, ms(r.capP99))
	if o.sent > 0 {
		w("- open loop at 3x (%.0f/s for %.0f s): %d sent, %d admitted, %d shed (ResourceExhausted), %d other\n",
			o.rate, o.seconds, o.sent, o.admitted, o.shed, o.other)
		w("- admitted: p50 %s, p99 %s (%.2fx the p99 at capacity)\n", ms(o.admittedP50), ms(o.admittedP99),
			float64(o.admittedP99)/float64(max(r.capP99, 1)))
		w("- the server's own p99 (grpc_server_handling_seconds, Decide, the wait for a slot included): %s at capacity, %s at 3x (%.2fx)\n",
			ms(r.capServerP99), ms(r.overServerP99), float64(r.overServerP99)/float64(max(r.capServerP99, 1)))
		w("- the decision's p99 (arbiter_decide_seconds): %s at capacity, %s at 3x\n", ms(r.capDecideP99), ms(r.overDecideP99))
		w("- shed: p99 %s, max %s after the call started\n", ms(o.shedP99), ms(o.shedMax))
		w("- server RSS at most %.0f MiB\n", o.maxRSSMiB)
	}
	if r.floodStreams > 0 {
		w("\n## Rapid reset (HEADERS then RST_STREAM) on one connection\n\n")
		w("Decide, 16 callers: %.0f/s alone, %.0f/s during a flood of %.0f reset streams/s over %d connections, each reopened when the server closed it (%.2fx).\n",
			r.floodBefore, r.floodDuring, r.floodStreams, r.floodConns, r.floodDuring/max(r.floodBefore, 1))
	}
	if len(r.failures) > 0 {
		w("\n## FAILED\n\n")
		for _, f := range r.failures {
			w("- %s\n", f)
		}
	} else {
		w("\nAll checks passed.\n")
	}
	return b.String()
}
