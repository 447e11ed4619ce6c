#!/usr/bin/env bash
# Server CPU per Decide of two builds of arbiter, interleaved (see
# bench/README.md, "A against B: bench/versus.sh").
#
#   bench/versus.sh [REV_A [REV_B]]     # default HEAD~ HEAD; "." is the checkout as it is
#
# Builds ./cmd/arbiter of each revision in a git worktree (/tmp/arb-<sha>),
# gives each side its own redis-server seeded by that side's own binary
# (so that neither reads data in the other's format) and its own arbiter,
# started as the production server must be: -redis-addr, -catalog (the
# 1000-action bench catalog), -model, -consent-policy, log level warn.
# Then, after a warm-up, BENCH_ROUNDS rounds of: D(100) on the first side,
# D(100) on the second, B0 (Health/Check) on the first, B0 on the second,
# the first side alternating from round to round, each a ghz closed loop
# of BENCH_DURATION at BENCH_CONCURRENCY. For every run it reads the CPU
# time arbiter and its redis-server used (/proc/PID/stat), so the figures
# compared are server and Redis µs of CPU per call: on a shared 2-CPU
# machine they move far less than rps does.
#
# Writes one JSON per run to $BENCH_OUT/raw/ (default bench/out/versus,
# git-ignored) and the report to $BENCH_OUT/report.md, and prints it.
# Stops everything it started on exit.
#
# Knobs (environment): BENCH_ROUNDS (10), BENCH_DURATION (10s),
# BENCH_WARMUP (5s), BENCH_CONCURRENCY (16), BENCH_CONNECTIONS (4),
# BENCH_CANDIDATES (100), BENCH_TOOLS_REV (HEAD: the revision whose
# bench/requests writes the requests), BENCH_OUT; per side X in A, B:
# ARB_X (a prebuilt binary instead of building REV_X; files still come
# from REV_X's tree), SEED_ARGS_X (default "seed"), ARGS_X (extra server
# flags), MODEL_X, POLICY_X (files instead of the tree's), TOKEN_X (a
# bearer token ghz sends with every call to side X: with ARGS_X's
# -auth-jwks, the cost of authentication; bench/token mints one, and it
# needs the admin role besides, for the server reflection ghz uses).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

REV_A=${1:-HEAD~}
REV_B=${2:-HEAD}
BENCH_ROUNDS=${BENCH_ROUNDS:-10}
BENCH_DURATION=${BENCH_DURATION:-10s}
BENCH_WARMUP=${BENCH_WARMUP:-5s}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-16}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-4}
BENCH_CANDIDATES=${BENCH_CANDIDATES:-100}
BENCH_TOOLS_REV=${BENCH_TOOLS_REV:-HEAD}
BENCH_OUT=${BENCH_OUT:-bench/out/versus}
PREFIX=bench
HCPS=10000 # the demo population `arbiter seed` writes by default

work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-versus.XXXXXX")
. "$root/bench/lib.sh"
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

lib_require go git jq redis-server
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS: want a number >= 1, got '$BENCH_ROUNDS'"
((BENCH_CANDIDATES >= 1 && BENCH_CANDIDATES <= 1000)) || die "BENCH_CANDIDATES: want 1 to 1000"
D=D$BENCH_CANDIDATES

# ------------------------------------------------------------------ build

ensure_ghz
tools_tree=$(lib_tree "$BENCH_TOOLS_REV")
build_tool requests "$work/requests"
setup_side A "$REV_A"
setup_side B "$REV_B"

# Each side's catalog from its own generator (validated by its own parser);
# the requests name the first N actions of A's. Identical bytes mean both
# servers decide over the same catalog.
side_catalog A 1000 "$work/catalog-A.json"
side_catalog B 1000 "$work/catalog-B.json"
if cmp -s "$work/catalog-A.json" "$work/catalog-B.json"; then
	catalogs="identical (bench/catalog -n 1000, $(wc -c <"$work/catalog-A.json") bytes, sha256 $(sha256sum "$work/catalog-A.json" | cut -c1-12))"
else
	catalogs="DIFFERENT: each side runs its own bench/catalog's output; the requests come from A's"
	log "warning: the two sides' bench catalogs differ"
fi
req=$work/decide-$BENCH_CANDIDATES.bin
"$work/requests" -catalog "$work/catalog-A.json" -hcps "$HCPS" -n "$HCPS" -candidates "$BENCH_CANDIDATES" \
	-limit 3 -keys uniform -o "$req"

# ------------------------------------------------------------------ servers

declare -A addr pid rpid
for x in A B; do
	start_redis "redis_$x" --save '' --appendonly no
	p=redis_${x}_port
	seed_side "$x" "${!p}" "$work/catalog-$x.json"
	start_side "$x" "arbiter_$x" "${!p}" "$work/catalog-$x.json"
	p=arbiter_${x}_port
	addr[$x]=127.0.0.1:${!p}
	p=arbiter_${x}_pid
	pid[$x]=${!p}
	p=redis_${x}_pid
	rpid[$x]=${!p}
	log "side $x: arbiter on ${addr[$x]} (pid ${pid[$x]}), redis-server pid ${rpid[$x]}"
done

# ------------------------------------------------------------------ runs

mkdir -p "$BENCH_OUT/raw"
rm -f "$BENCH_OUT"/raw/*.json "$BENCH_OUT/report.md"

# run SIDE SCENARIO DURATION OUT ROUND ORDER: one ghz closed loop of
# SCENARIO (D<N> or B0) on SIDE's arbiter; OUT is ghz's report (without
# per-call details) plus .bench: the figures the tables use and the CPU
# seconds arbiter, its redis-server, ghz and the whole machine used.
run() {
	local x=$1 s=$2 dur=$3 out=$4 round=$5 order=$6 cmd server0 redis0 busy0 server1 redis1 busy1
	local conns=$((BENCH_CONCURRENCY < BENCH_CONNECTIONS ? BENCH_CONCURRENCY : BENCH_CONNECTIONS))
	cmd=("$GHZ" --insecure --disable-template-functions --disable-template-data
		--concurrency "$BENCH_CONCURRENCY" --connections "$conns" --duration "$dur"
		--format json --output "$work/report.json")
	case $s in
	B0) cmd+=(--call grpc.health.v1.Health/Check) ;;
	*) cmd+=(--call nba.v1.DecisionService/Decide --binary-file "$req") ;;
	esac
	if [[ -n $(side "$x" token) ]]; then
		# ghz finds the method by server reflection, which is the admin's:
		# the token must carry the admin role too.
		cmd+=(--metadata "{\"authorization\":\"Bearer $(side "$x" token)\"}"
			--reflect-metadata "{\"authorization\":\"Bearer $(side "$x" token)\"}")
	fi
	cmd+=("${addr[$x]}")
	local TIMEFORMAT='%3U %3S'
	server0=$(cpu_seconds "${pid[$x]}") redis0=$(cpu_seconds "${rpid[$x]}") busy0=$(busy_seconds)
	if ! { time "${cmd[@]}" >"$work/ghz.out" 2>&1; } 2>"$work/time"; then
		cat "$work/ghz.out" >&2
		die "ghz failed: side $x $s"
	fi
	server1=$(cpu_seconds "${pid[$x]}") redis1=$(cpu_seconds "${rpid[$x]}") busy1=$(busy_seconds)
	# ghz cuts the calls in flight when the duration ends (at most c per
	# run, "closed network connection" and the like): not errors.
	jq --arg side "$x" --arg rev "$(side "$x" rev)" --arg sha "$(side "$x" sha)" --arg scenario "$s" \
		--argjson round "$round" --argjson order "$order" --argjson c "$BENCH_CONCURRENCY" \
		--argjson server "$(minus "$server1" "$server0")" --argjson redis "$(minus "$redis1" "$redis0")" \
		--argjson client "$(awk '{ print $1 + $2 }' "$work/time")" --argjson machine "$(minus "$busy1" "$busy0")" '
		def pct(p): ([.latencyDistribution[]? | select(.percentage == p) | .latency][0] // 0) / 1e6;
		del(.details, .options.data)
		| .bench = {side: $side, rev: $rev, sha: $sha, scenario: $scenario, round: $round, order: $order, c: $c,
			calls: .count, rps: .rps, p50_ms: pct(50), p99_ms: pct(99), seconds: (.total / 1e9),
			errors: ([.errorDistribution // {} | to_entries[]
				| select(.key | test("closed network connection|client connection is closing|transport is closing") | not) | .value] | add // 0),
			cpu_seconds: {server: $server, redis: $redis, client: $client, machine: $machine}}
		| .bench += {
			server_us_per_call: (if .bench.calls > 0 then $server / .bench.calls * 1e6 else null end),
			redis_us_per_call: (if .bench.calls > 0 then $redis / .bench.calls * 1e6 else null end),
			client_us_per_call: (if .bench.calls > 0 then $client / .bench.calls * 1e6 else null end),
			other_cores: (([$machine - $server - $redis - $client, 0] | max) / .bench.seconds)}
	' "$work/report.json" >"$out"
	# Per-call CPU of failing calls says nothing about the product: stop.
	local calls errors
	read -r calls errors < <(jq -r '.bench | "\(.calls) \(.errors)"' "$out")
	if ((calls == 0 || errors * 100 > calls)); then
		jq '.errorDistribution' "$out" >&2
		die "side $x $s: $errors errors in $calls calls (server log: $work/arbiter_$x.log)"
	fi
}

# row FILE: the Markdown table row of one run.
row() {
	jq -r '.bench | "| \(.round) | \(.order) | \(.side) | \(if .scenario == "B0" then "B0" else "D(\(.scenario[1:]))" end) | \(.calls) | \(.rps | round) | \(.p50_ms * 1000 | round / 1000) | \(.p99_ms * 1000 | round / 1000) | \(.errors) | \(.server_us_per_call * 10 | round / 10) | \(.redis_us_per_call * 10 | round / 10) | \(.client_us_per_call * 10 | round / 10) | \(.other_cores * 100 | round / 100) |"' "$1"
}
header='| round | order | side | scenario | calls | rps | p50 ms | p99 ms | errors | server µs/call | redis µs/call | ghz µs/call | other cores |
|--:|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|'

log "warm-up: $BENCH_WARMUP of D($BENCH_CANDIDATES) and of B0 per side, c=$BENCH_CONCURRENCY"
for x in A B; do
	for s in "$D" B0; do
		run "$x" "$s" "$BENCH_WARMUP" "$work/warmup.json" 0 0
	done
done

for round in $(seq "$BENCH_ROUNDS"); do
	if ((round % 2 == 1)); then order=(A B); else order=(B A); fi
	files=()
	for s in "$D" B0; do
		for i in 0 1; do
			x=${order[i]}
			log "round $round of $BENCH_ROUNDS: side $x $s, $BENCH_DURATION at c=$BENCH_CONCURRENCY"
			files+=("$BENCH_OUT/raw/r$round-$x-$s.json")
			run "$x" "$s" "$BENCH_DURATION" "${files[-1]}" "$round" "$((i + 1))"
		done
	done
	{
		echo "$header"
		for f in "${files[@]}"; do row "$f"; done
	} >"$work/round-$round.md"
	cat "$work/round-$round.md" >&2
done

# ------------------------------------------------------------------ report

# summary: per metric, the median (min–max) over rounds of each side's
# figure, and of the per-round ratio B/A (each round's B over the same
# round's A, so that drift between rounds cancels).
summary() {
	jq -rs --arg d "$D" --arg dl "D($BENCH_CANDIDATES)" '
		def med: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		def r(k): (. * k | round) / k;
		def cell(k): "\(med | r(k)) (\(min | r(k))–\(max | r(k)))";
		map(.bench) | group_by(.round)
		| map(reduce .[] as $r ({}; .[$r.side][$r.scenario] = $r))
		| . as $rounds
		| def line(name; k; f):
			($rounds | map(.A | f)) as $a | ($rounds | map(.B | f)) as $b
			| ($rounds | map((.B | f) / (.A | f))) as $ratio
			| "| \(name) | \($a | cell(k)) | \($b | cell(k)) | \($ratio | cell(1000)) |";
		line("\($dl) server µs/call"; 10; .["\($d)"].server_us_per_call),
		line("\($dl) Redis µs/call"; 10; .["\($d)"].redis_us_per_call),
		line("B0 server µs/call"; 10; .B0.server_us_per_call),
		line("\($dl) / B0 server cost"; 100; .["\($d)"].server_us_per_call / .B0.server_us_per_call),
		line("\($dl) rps"; 1; .["\($d)"].rps),
		line("\($dl) p50 ms"; 1000; .["\($d)"].p50_ms),
		line("\($dl) p99 ms"; 1000; .["\($d)"].p99_ms),
		line("B0 rps"; 1; .B0.rps),
		line("ghz µs/call, \($dl)"; 10; .["\($d)"].client_us_per_call)
	' "$BENCH_OUT"/raw/r*.json
}
# verdict: one sentence on B/A of D's server µs/call.
verdict() {
	jq -rs --arg d "$D" '
		def med: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		map(.bench) | group_by(.round)
		| map(reduce .[] as $r ({}; .[$r.side][$r.scenario] = $r) | .B[$d].server_us_per_call / .A[$d].server_us_per_call)
		| (med) as $m
		| "B/A of server CPU per D call: median \($m * 1000 | round / 1000) over \(length) rounds (min \(min * 1000 | round / 1000), max \(max * 1000 | round / 1000)): B costs \(if $m <= 1 then "\((1 - $m) * 1000 | round / 10)% less" else "\(($m - 1) * 1000 | round / 10)% more" end) server CPU per decision than A\(if (min < 1 and max > 1) then "; the rounds disagree on the sign" else "" end)."
	' "$BENCH_OUT"/raw/r*.json
}

md=$BENCH_OUT/report.md
{
	echo "# arbiter A against B: server CPU per Decide"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- command: \`BENCH_ROUNDS=$BENCH_ROUNDS BENCH_DURATION=$BENCH_DURATION BENCH_WARMUP=$BENCH_WARMUP BENCH_CONCURRENCY=$BENCH_CONCURRENCY BENCH_CONNECTIONS=$BENCH_CONNECTIONS BENCH_CANDIDATES=$BENCH_CANDIDATES bench/versus.sh $REV_A $REV_B\`"
	for x in A B; do
		echo "- $x: $(rev_line "$x")$([[ -n $(side "$x" args) ]] && echo "; extra flags: \`$(side "$x" args)\`")"
		echo "  - binary: $([[ $(side "$x" bin) == "$work"/* ]] && echo "built from $(side "$x" tree)" || side "$x" bin); model: $(side "$x" model); policy: $(side "$x" policy); seeded with \`$(side "$x" seed)\` in $(side "$x" seed_seconds | awk '{ printf "%.1f", $1 }') s"
	done
	machine_lines
	echo "- ghz $GHZ_VERSION, closed loop, c=$BENCH_CONCURRENCY, $((BENCH_CONCURRENCY < BENCH_CONNECTIONS ? BENCH_CONCURRENCY : BENCH_CONNECTIONS)) connections, $BENCH_DURATION per run after a $BENCH_WARMUP warm-up per side and scenario; ghz, both redis-servers and both arbiters share the machine's CPUs, loopback traffic"
	echo "- D($BENCH_CANDIDATES): nba.v1.DecisionService/Decide, the first $BENCH_CANDIDATES actions of the bench catalog as candidates, limit 3, caller REP_TOOL, HCP-000001..HCP-0$HCPS round-robin ($HCPS messages, bench/requests of $BENCH_TOOLS_REV); B0: grpc.health.v1.Health/Check on the same arbiter"
	echo "- catalogs: $catalogs"
	echo "- each side has its own redis-server (--save '' --appendonly no), seeded by its own binary, prefix $PREFIX"
	echo
	echo "## Summary"
	echo
	echo "Median (min–max) over $BENCH_ROUNDS rounds. B/A is computed within each round, then the median taken. µs/call is CPU time (user + system, all threads, /proc/PID/stat) of the process over the run divided by the calls ghz made."
	echo
	echo "| metric | A | B | B/A |"
	echo "|---|--:|--:|--:|"
	summary
	echo
	echo "$(verdict)"
	echo
	echo "\"other cores\" (CPU the rest of the machine used during a run, in cores) was at most $(jq -s 'map(.bench.other_cores) | max * 100 | round / 100' "$BENCH_OUT"/raw/r*.json); above ~0.05 something else competed for the CPUs."
	echo
	echo "## Rounds"
	for round in $(seq "$BENCH_ROUNDS"); do
		echo
		echo "Round $round (order: $( ((round % 2 == 1)) && echo "A first" || echo "B first"))"
		echo
		cat "$work/round-$round.md"
	done
	echo
	echo "Raw ghz reports with the CPU figures (.bench): $BENCH_OUT/raw/r<round>-<side>-<scenario>.json."
} >"$md"

cat "$md"
log "report: $md"
