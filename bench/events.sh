#!/usr/bin/env bash
# Events at feed scale: a marketing platform's send, delivery, open and
# click log imported end to end (arbiterctl events import, RecordEvents
# batches) into arbiter serve on a redis-server with AOF (appendfsync
# everysec, as production).
#
#   bench/events.sh                      # 200,000 events, 10,000 HCPs, -batch 500 -concurrency 4
#   BENCH_SETTINGS="500x4 1000x4 500x8 250x8" bench/events.sh
#
# Builds ./cmd/arbiter and ./cmd/arbiterctl of the checkout as it is,
# starts a redis-server of its own (appendonly yes, appendfsync everysec)
# seeded with the demo population, and one arbiter with every demo
# definition (catalog, model, consent and contact policy, rules: its
# journeys are indexed as their steps' events arrive). It writes a CSV of
# BENCH_EVENTS events (an ESP's log: per message a send, then a delivery or
# a bounce, an open for 35%, a click for 12% of them; demo email actions,
# one in twelve the launch journey's email step; times over the past six
# days) and imports it once per setting BATCHxCONCURRENCY, each round on
# a freshly seeded store (the touch ledgers a round grows make the next
# one slower) with event ids of its own. Per round: the wall time of the
# command, the rows per second, the server's, Redis's and arbiterctl's
# CPU (/proc), the rest of the machine's busy CPU, and the summary.
#
# Knobs: BENCH_EVENTS (200000), BENCH_HCPS (10000), BENCH_SETTINGS
# ("500x4"), BENCH_PPROF (a file: a 10 s CPU profile of the server taken
# during the first round, through -debug-addr), BENCH_OUT
# (bench/out/events). Writes $BENCH_OUT/report.md and prints it.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
BENCH_EVENTS=${BENCH_EVENTS:-200000}
BENCH_HCPS=${BENCH_HCPS:-10000}
BENCH_SETTINGS=${BENCH_SETTINGS:-500x4}
BENCH_PPROF=${BENCH_PPROF:-}
BENCH_OUT=${BENCH_OUT:-bench/out/events}

work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-events.XXXXXX")
. "$root/bench/lib.sh"
trap lib_cleanup EXIT
trap 'exit 130' INT TERM
lib_require go redis-server awk

log "building arbiter and arbiterctl"
go build -o "$work/arbiter" ./cmd/arbiter
go build -o "$work/arbiterctl" ./cmd/arbiterctl

# stack_up: a redis-server of its own (AOF, everysec), seeded, and an
# arbiter on it: every round starts from the same state, so that rounds
# compare settings, not a store grown by the rounds before.
stack_up() {
	rm -rf "$work/redis"
	start_redis redis --save '' --appendonly yes --appendfsync everysec
	addr=127.0.0.1:$redis_port
	log "seeding $BENCH_HCPS demo HCPs"
	"$work/arbiter" seed -redis-addr "$addr" -demo-size "$BENCH_HCPS" -log-level warn
	debug_port=$(free_port)
	start arbiter "$work/arbiter" serve -listen '127.0.0.1:{PORT}' -redis-addr "$addr" \
		-catalog catalog/demo_catalog.json -model scoring/demo_model.json -consent-policy consent/policy.json \
		-contact-policy contact/demo_policy.json -rules rules/demo_rules.json \
		-debug-addr "127.0.0.1:$debug_port" -log-level warn
	srv=127.0.0.1:$arbiter_port
}
# redis_cpu PID: cpu_seconds, with the children Redis has reaped (its AOF
# rewrites: the log grows with every event).
redis_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15 + $16 + $17) / hz }' "/proc/$1/stat"; }
stack_down() {
	kill "$arbiter_pid" 2>/dev/null || true
	wait "$arbiter_pid" 2>/dev/null || true
	kill "$redis_pid" 2>/dev/null || true
	wait "$redis_pid" 2>/dev/null || true
}

# gen TAG: the events file of a round, event ids "TAG-<n>".
gen() {
	awk -v n="$BENCH_EVENTS" -v hcps="$BENCH_HCPS" -v tag="$1" -v base="$(($(date +%s) - 6 * 86400))" 'BEGIN {
		split("email-cardiolex-efficacy email-cardiolex-safety email-oncovia-efficacy email-oncovia-dosing email-glucanor-efficacy " \
			"email-glucanor-safety email-glucanor-dosing email-respiral-efficacy email-respiral-trial_summary email-congress-invite " \
			"email-oncovia-new-indication email-glucanor-launch-followup", actions, " ")
		srand(42)
		print "event_id,hcp_id,type,channel,occurred_at,action_id,topic,decision_id,message_id,purpose"
		for (i = m = 0; i < n; m++) {
			hcp = sprintf("HCP-%06d", 1 + int(rand() * hcps))
			a = actions[1 + m % 12]
			topic = a; sub(/^email-/, "", topic); gsub(/-/, "_", topic)
			t = base + int(m * 5 * 86400 / (n / 2.4))
			msg = tag "-m" m
			split("sent " (rand() < 0.97 ? "delivered" : "bounced") (rand() < 0.35 ? " opened" (rand() < 0.35 ? " clicked" : "") : ""), types, " ")
			for (k = 1; k in types && i < n; k++) {
				printf "%s-%d,%s,%s,email,%s,%s,%s,,%s,\n", tag, i, hcp, types[k], strftime("%Y-%m-%dT%H:%M:%SZ", t + (k - 1) * 600, 1), a, topic, msg
				i++
			}
		}
	}'
}

mkdir -p "$BENCH_OUT"
rows=$work/rows.tsv
: >"$rows"
r=0
for setting in $BENCH_SETTINGS; do
	r=$((r + 1))
	b=${setting%x*} c=${setting#*x}
	stack_up
	gen "r$r-$$" >"$work/events.csv"
	prof=
	if [[ -n $BENCH_PPROF && $r == 1 ]]; then
		(sleep 1 && curl -s -o "$BENCH_PPROF" "http://127.0.0.1:$debug_port/debug/pprof/profile?seconds=10") &
		prof=$!
	fi
	s0=$(cpu_seconds "$arbiter_pid") r0=$(redis_cpu "$redis_pid") m0=$(busy_seconds) t0=$(date +%s.%N)
	TIMEFORMAT='%U %S'
	{ time "$work/arbiterctl" events import -addr "$srv" -file "$work/events.csv" -batch "$b" -concurrency "$c" \
		-errors "$work/errors-$r.csv" >"$work/out-$r.txt" 2>"$work/err-$r.txt"; } 2>"$work/time-$r.txt"
	t1=$(date +%s.%N) s1=$(cpu_seconds "$arbiter_pid") r1=$(redis_cpu "$redis_pid") m1=$(busy_seconds)
	[[ -n $prof ]] && wait "$prof"
	summary=$(head -1 "$work/out-$r.txt")
	ctl=$(awk '{ print $1 + $2 }' "$work/time-$r.txt")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$setting" "$(minus "$t1" "$t0")" "$(minus "$s1" "$s0")" "$(minus "$r1" "$r0")" \
		"$ctl" "$(minus "$m1" "$m0")" "$summary" >>"$rows"
	log "round $r ($setting): $summary"
	stack_down
done

{
	echo "## Events at feed scale: arbiterctl events import, $BENCH_EVENTS events, $BENCH_HCPS HCPs"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(go version | awk '{ print $3 }'), Redis $(redis-server --version | awk '{ print $3 }' | sed 's/v=//') (appendonly yes, appendfsync everysec), code $(git rev-parse --short HEAD)$( [[ -n $(git status --porcelain --untracked-files=no) ]] && echo ' + uncommitted changes')."
	echo "Command: \`BENCH_EVENTS=$BENCH_EVENTS BENCH_HCPS=$BENCH_HCPS BENCH_SETTINGS=\"$BENCH_SETTINGS\" bench/events.sh\`. arbiterctl, arbiter and redis-server share the machine's CPUs."
	echo
	echo "CPU per event is CPU seconds over the round divided by the events; \"rest\" is the machine's busy CPU time during the round that is none of the three processes' (the shared machine's other tenants, and the kernel's loopback networking)."
	echo
	echo "| round | -batch x -concurrency | wall s | events/s | server CPU µs/event | Redis CPU µs/event | arbiterctl CPU µs/event | rest CPU s | summary |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|---|"
	awk -F'\t' -v n="$BENCH_EVENTS" '{ printf "| %s | %s | %.2f | **%.0f** | %.1f | %.1f | %.1f | %.1f | %s |\n", $1, $2, $3, n / $3, $4 / n * 1e6, $5 / n * 1e6, $6 / n * 1e6, $7 - $4 - $5 - $6, $8 }' "$rows"
} >"$BENCH_OUT/report.md"
cat "$BENCH_OUT/report.md"
