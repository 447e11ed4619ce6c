#!/usr/bin/env bash
# The cost of a decision: server and Redis CPU per fully orchestrated
# Decide against the same for an empty authenticated call, interleaved
# (see bench/README.md, "The cost of a decision: bench/cost.sh").
#
#   bench/cost.sh [REV...]     # default "." (this checkout as it is)
#   bench/cost.sh HEAD~ .      # the previous code against this checkout
#
# Builds ./cmd/arbiter of each REV (a git worktree, as versus.sh does; the
# sides are named A, B, ... in the order given) and starts, for each side
# and each catalog in BENCH_CATALOGS, a redis-server of its own
# (no persistence) seeded with the demo population, and an arbiter on it
# as a production server runs, with every gate on:
#   - bench: the 1000-action bench catalog, bench/rules.json (20 rules,
#     4 personas, 3 journeys), the demo contact policy; Decide names the
#     first BENCH_CANDIDATES (100) actions;
#   - demo: the demo catalog (77 actions), the demo rules, personas and
#     journeys, the demo contact policy; Decide names no candidates (the
#     whole catalog), as `make run`'s callers do;
# both with the asynchronous decision log, bearer tokens verified against
# a JWKS file (a rep tool's token for all twenty territories, cached after
# its first use), TLS off on loopback, tracing off, metrics served.
#
# Each round runs, for each side and catalog, Ping (nba.v1.DecisionService/Ping,
# the empty call: the same interceptor chain, authentication included) and
# Decide, each a ghz closed loop of BENCH_DURATION at BENCH_CONCURRENCY,
# in an order that rotates from round to round, and reads the CPU time of
# the arbiter and of its redis-server before and after (/proc/PID/stat).
# The cost ratio of a round is
#
#     (server + Redis CPU per Decide) / (server + Redis CPU per Ping)
#
# and the headline is its median over BENCH_ROUNDS rounds, with the range.
# With two or more revisions, the report also gives each side's Decide
# cost over side A's, taken within each round (the previous code
# interleaved with the new).
#
# With BENCH_PROFILE=1, after the rounds: a CPU profile of each arbiter
# under Decide and under Ping (pprof, -debug-addr), summarised by
# bench/costsplit into where a decision's CPU goes (transport, auth and
# interceptors, request decoding, state load, gates and rules, scoring,
# response encoding, the decision log, GC), per call, against Ping's.
#
# With BENCH_BATCH=1, each round also runs, on the bench catalog, a
# marketing platform's campaign check three ways with bench/probe (the
# same client for all three): unary Decide, DecideBatch of
# BENCH_BATCH_SIZE (100) HCPs a call, and CheckSendBatch of as many checks
# a message (one action, no reservation), BENCH_BATCH_CONCURRENCY (4)
# callers for the batches; the report gives the recipients decided per
# server CPU second of each, and the batches' over unary Decide's.
#
# With BENCH_OPENLOOP=1, after the rounds: side A's arbiter with the bench
# definitions on a store of BENCH_OPENLOOP_HCPS (1,000,000) demo HCPs,
# Decide(100) requests spread over all of them; its peak closed-loop rate
# (ghz, c=50), then ghz at a fixed rate of each of BENCH_OPENLOOP_RATES
# percent (50) of the peak, 200 workers, for BENCH_OPENLOOP_DURATION (20s),
# and the server's own p50 and p99 from its arbiter_decide_seconds
# histogram, scraped before and after (the bar: p99 within 2x p50 at half
# the peak). With BENCH_OPENLOOP_PIN=1, the open loop's arbiter and
# redis-server run on the second CPU and ghz on the first (taskset), as a
# server with CPUs of its own would: on CPUs shared with the generator, a
# handler waits whole scheduler time slices for a CPU whenever ghz's
# threads hold both.
#
# Writes $BENCH_OUT/report.md (default bench/out/cost) and one JSON per
# run in $BENCH_OUT/raw/, and prints the report.
#
# Knobs (environment): BENCH_ROUNDS (10), BENCH_DURATION (10s),
# BENCH_WARMUP (5s), BENCH_CONCURRENCY (16), BENCH_CONNECTIONS (4),
# BENCH_CANDIDATES (100), BENCH_CATALOGS ("bench demo"), BENCH_PROFILE (0),
# BENCH_PROFILE_SECONDS (10), BENCH_MAX_IN_FLIGHT (1024: the benchmark
# measures cost, not shedding), BENCH_OUT, ARGS (extra server flags for
# every arbiter), ARGS_A, ARGS_B, ... (extra flags for one side's: the
# same revision twice with different flags compares settings), ARB_A,
# ARB_B, ... (a prebuilt binary instead of building that side's REV).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

revs=("$@")
((${#revs[@]} > 0)) || revs=(.)
((${#revs[@]} <= 4)) || die "at most four revisions"
sides=()
for ((i = 0; i < ${#revs[@]}; i++)); do
	sides+=("$(printf "\\$(printf %o $((65 + i)))")")
done
BENCH_ROUNDS=${BENCH_ROUNDS:-10}
BENCH_DURATION=${BENCH_DURATION:-10s}
BENCH_WARMUP=${BENCH_WARMUP:-5s}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-16}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-4}
BENCH_CANDIDATES=${BENCH_CANDIDATES:-100}
BENCH_CATALOGS=${BENCH_CATALOGS:-bench demo}
BENCH_PROFILE=${BENCH_PROFILE:-0}
BENCH_BATCH=${BENCH_BATCH:-0}
BENCH_OPENLOOP=${BENCH_OPENLOOP:-0}
BENCH_OPENLOOP_HCPS=${BENCH_OPENLOOP_HCPS:-1000000}
BENCH_OPENLOOP_RATES=${BENCH_OPENLOOP_RATES:-50}
BENCH_OPENLOOP_DURATION=${BENCH_OPENLOOP_DURATION:-20s}
BENCH_OPENLOOP_PIN=${BENCH_OPENLOOP_PIN:-0}
BENCH_BATCH_SIZE=${BENCH_BATCH_SIZE:-100}
BENCH_BATCH_CONCURRENCY=${BENCH_BATCH_CONCURRENCY:-4}
BENCH_PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-10}
BENCH_MAX_IN_FLIGHT=${BENCH_MAX_IN_FLIGHT:-1024}
BENCH_OUT=${BENCH_OUT:-bench/out/cost}
PREFIX=bench
HCPS=10000

work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-cost.XXXXXX")
. "$root/bench/lib.sh"
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

lib_require go git jq redis-server curl
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS: want a number >= 1, got '$BENCH_ROUNDS'"
((BENCH_CANDIDATES >= 1 && BENCH_CANDIDATES <= 1000)) || die "BENCH_CANDIDATES: want 1 to 1000"
read -r -a catalogs <<<"$BENCH_CATALOGS"
for c in "${catalogs[@]}"; do
	[[ $c == bench || $c == demo ]] || die "BENCH_CATALOGS: want bench and/or demo, got '$c'"
done

# ------------------------------------------------------------------ build

ensure_ghz
tools_tree=$root # the tools of this checkout
for ((i = 0; i < ${#revs[@]}; i++)); do
	setup_side "${sides[i]}" "${revs[i]}"
done
build_tool requests "$work/requests"
build_tool token "$work/token"
[[ $BENCH_BATCH == 1 ]] && build_tool probe "$work/probe"
[[ $BENCH_PROFILE == 1 ]] && build_tool costsplit "$work/costsplit"
side_catalog A 1000 "$work/catalog-bench.json"
cp "$(side A tree)/catalog/demo_catalog.json" "$work/catalog-demo.json"

# A rep tool for every demo territory; admin besides, for the server
# reflection ghz finds the methods by (it changes nothing else: the
# caller kind is the rep tool's).
territories=$(printf 'T%02d,' $(seq 20))
"$work/token" -jwks "$work/jwks-rep.json" -kid rep -roles rep_tool,admin -territories "${territories%,}" >"$work/token.txt"
token=$(cat "$work/token.txt")
# The campaign runs (BENCH_BATCH=1) call as a marketing platform, whose
# role DecideBatch and CheckSendBatch need; its key joins the same JWKS.
"$work/token" -jwks "$work/jwks-mkt.json" -kid mkt -roles marketing_platform -sub campaign >"$work/token-mkt.txt"
mkt_token=$(cat "$work/token-mkt.txt")
jq -s '{keys: (map(.keys) | add)}' "$work/jwks-rep.json" "$work/jwks-mkt.json" >"$work/jwks.json"

"$work/requests" -catalog "$work/catalog-bench.json" -hcps "$HCPS" -n "$HCPS" -candidates "$BENCH_CANDIDATES" \
	-limit 3 -keys uniform -o "$work/decide-bench.bin"
"$work/requests" -catalog "$work/catalog-demo.json" -hcps "$HCPS" -n "$HCPS" -candidates 0 \
	-limit 3 -keys uniform -o "$work/decide-demo.bin"

# ------------------------------------------------------------------ servers

# A target is one side's arbiter on one catalog ("A-bench"), with its own
# redis-server.
declare -A addr pid rpid debug flags
targets=()
for x in "${sides[@]}"; do
	tree=$(side "$x" tree)
	for c in "${catalogs[@]}"; do
		t=$x-$c
		targets+=("$t")
		start_redis "redis_${x}_$c" --save '' --appendonly no
		p=redis_${x}_${c}_port
		rport=${!p}
		seed_side "$x" "$rport" "$work/catalog-$c.json"
		if [[ $c == bench ]]; then
			rules=$tree/bench/rules.json
		else
			rules=$tree/rules/demo_rules.json
		fi
		debug[$t]=127.0.0.1:$(free_port)
		flags[$t]="-contact-policy $tree/contact/demo_policy.json -rules $rules -receipts async -auth-jwks $work/jwks.json -auth-issuer https://bench.invalid -auth-audience arbiter-bench -max-in-flight $BENCH_MAX_IN_FLIGHT -metrics-addr 127.0.0.1:$(free_port) -debug-addr ${debug[$t]} ${ARGS:-}"
		v=ARGS_$x
		flags[$t]+=" ${!v:-}"
		printf -v "${x}_args" '%s' "${flags[$t]}"
		start_side "$x" "arbiter_${x}_$c" "$rport" "$work/catalog-$c.json"
		p=arbiter_${x}_${c}_port
		addr[$t]=127.0.0.1:${!p}
		p=arbiter_${x}_${c}_pid
		pid[$t]=${!p}
		p=redis_${x}_${c}_pid
		rpid[$t]=${!p}
		log "$t: arbiter on ${addr[$t]} (pid ${pid[$t]}), redis-server pid ${rpid[$t]}"
	done
done

# ------------------------------------------------------------------ runs

mkdir -p "$BENCH_OUT/raw"
rm -f "$BENCH_OUT"/raw/*.json "$BENCH_OUT/report.md" "$BENCH_OUT"/*.pprof "$BENCH_OUT"/*-split.md "$BENCH_OUT"/openloop-*.json

# ghz_cmd TARGET SCENARIO DURATION: the command line of one run: ghz, or
# for the probe-* scenarios (BENCH_BATCH=1) bench/probe.
ghz_cmd() {
	local t=$1 s=$2 dur=$3 c=${1#*-}
	local conns=$((BENCH_CONCURRENCY < BENCH_CONNECTIONS ? BENCH_CONCURRENCY : BENCH_CONNECTIONS))
	if [[ $s == probe-* ]]; then
		local bc=$BENCH_BATCH_CONCURRENCY call
		case $s in
		probe-decide) call=decide bc=$BENCH_CONCURRENCY ;;
		probe-batch) call=decide-batch ;;
		probe-checksend) call=checksend-batch ;;
		esac
		cmd=("$work/probe" -addr "${addr[$t]}" -call "$call" -c "$bc" -connections "$((bc < BENCH_CONNECTIONS ? bc : BENCH_CONNECTIONS))"
			-d "$dur" -token "$mkt_token" -requests "$work/decide-$c.bin" -batch "$BENCH_BATCH_SIZE")
		return
	fi
	cmd=("$GHZ" --insecure --disable-template-functions --disable-template-data
		--concurrency "$BENCH_CONCURRENCY" --connections "$conns" --duration "$dur"
		--format json --output "$work/report.json"
		--metadata "{\"authorization\":\"Bearer $token\"}"
		--reflect-metadata "{\"authorization\":\"Bearer $token\"}")
	case $s in
	ping) cmd+=(--call nba.v1.DecisionService/Ping -d '{}') ;;
	decide) cmd+=(--call nba.v1.DecisionService/Decide --binary-file "$work/decide-$c.bin") ;;
	esac
	cmd+=("${addr[$t]}")
}

# run TARGET SCENARIO DURATION OUT ROUND ORDER: one ghz closed loop; OUT
# is ghz's report (without per-call details) plus .bench: calls, rps,
# percentiles, errors and the CPU seconds of arbiter, its redis-server,
# ghz and the machine, and the µs per call of each.
run() {
	local t=$1 s=$2 dur=$3 out=$4 round=$5 order=$6 server0 redis0 busy0 server1 redis1 busy1
	ghz_cmd "$t" "$s" "$dur"
	local TIMEFORMAT='%3U %3S'
	server0=$(cpu_seconds "${pid[$t]}") redis0=$(cpu_seconds "${rpid[$t]}") busy0=$(busy_seconds)
	if [[ $s == probe-* ]]; then
		if ! { time "${cmd[@]}" >"$work/probe.json" 2>"$work/ghz.out"; } 2>"$work/time"; then
			cat "$work/ghz.out" >&2
			die "probe failed: $t $s"
		fi
		# The probe's figures in ghz's shape; a "call" is one recipient
		# decided or checked, whatever the batch.
		jq '{count: .recipients, rps: (.recipients / .seconds), total: (.seconds * 1e9),
			latencyDistribution: [{percentage: 50, latency: (.p50_ms * 1e6)}, {percentage: 99, latency: (.p99_ms * 1e6)}],
			errorDistribution: {"errors": .errors}, probe: .}' "$work/probe.json" >"$work/report.json"
	elif ! { time "${cmd[@]}" >"$work/ghz.out" 2>&1; } 2>"$work/time"; then
		cat "$work/ghz.out" >&2
		die "ghz failed: $t $s"
	fi
	server1=$(cpu_seconds "${pid[$t]}") redis1=$(cpu_seconds "${rpid[$t]}") busy1=$(busy_seconds)
	jq --arg side "${t%%-*}" --arg catalog "${t#*-}" --arg scenario "$s" --argjson round "$round" --argjson order "$order" \
		--argjson server "$(minus "$server1" "$server0")" --argjson redis "$(minus "$redis1" "$redis0")" \
		--argjson client "$(awk '{ print $1 + $2 }' "$work/time")" --argjson machine "$(minus "$busy1" "$busy0")" '
		def pct(p): ([.latencyDistribution[]? | select(.percentage == p) | .latency][0] // 0) / 1e6;
		del(.details, .options.data, .options.metadata, .options.reflectMetadata)
		| .bench = {side: $side, catalog: $catalog, scenario: $scenario, round: $round, order: $order,
			calls: .count, rps: .rps, p50_ms: pct(50), p99_ms: pct(99), seconds: (.total / 1e9),
			errors: ([.errorDistribution // {} | to_entries[]
				| select(.key | test("closed network connection|client connection is closing|transport is closing") | not) | .value] | add // 0),
			cpu_seconds: {server: $server, redis: $redis, client: $client, machine: $machine}}
		| .bench += {
			server_us: (if .bench.calls > 0 then $server / .bench.calls * 1e6 else null end),
			redis_us: (if .bench.calls > 0 then $redis / .bench.calls * 1e6 else null end),
			client_us: (if .bench.calls > 0 then $client / .bench.calls * 1e6 else null end),
			other_cores: (([$machine - $server - $redis - $client, 0] | max) / .bench.seconds)}
	' "$work/report.json" >"$out"
	local calls errors
	read -r calls errors < <(jq -r '.bench | "\(.calls) \(.errors)"' "$out")
	if ((calls == 0 || errors * 100 > calls)); then
		jq '.errorDistribution' "$out" >&2
		die "$t $s: $errors errors in $calls calls (server log: $work/arbiter_${t/-/_}.log)"
	fi
}

# BENCH_SERVE=1: leave the servers up for runs and profiles by hand.
if [[ ${BENCH_SERVE:-0} == 1 ]]; then
	for t in "${targets[@]}"; do
		for s in ping decide; do
			ghz_cmd "$t" "$s" 10s
			printf "%s %s: " "$t" "$s"; printf "%q " "${cmd[@]}" | sed "s|--output $work/report.json|--output /dev/null|"; echo
		done
		echo "$t: pprof at http://${debug[$t]}/debug/pprof/, arbiter pid ${pid[$t]}, redis-server pid ${rpid[$t]}"
	done
	log "serving until interrupted"
	while :; do
		sleep 3600 &
		wait $! # interruptible: Ctrl-C stops everything at once
	done
fi

# The runs of a round: every target's Ping and Decide, rotated by round.
runs=()
for t in "${targets[@]}"; do
	runs+=("$t ping" "$t decide")
	if [[ $BENCH_BATCH == 1 && $t == *-bench ]]; then
		runs+=("$t probe-decide" "$t probe-batch" "$t probe-checksend")
	fi
done

log "warm-up: $BENCH_WARMUP of each run, c=$BENCH_CONCURRENCY"
for r in "${runs[@]}"; do
	read -r t s <<<"$r"
	run "$t" "$s" "$BENCH_WARMUP" "$work/warmup.json" 0 0
done

header='| round | order | side | catalog | call | calls | rps | p50 ms | p99 ms | server µs/call | Redis µs/call | ghz µs/call | other cores |
|--:|--:|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|'
row() {
	jq -r '.bench | "| \(.round) | \(.order) | \(.side) | \(.catalog) | \(.scenario) | \(.calls) | \(.rps | round) | \(.p50_ms * 1000 | round / 1000) | \(.p99_ms * 1000 | round / 1000) | \(.server_us * 10 | round / 10) | \(.redis_us * 10 | round / 10) | \(.client_us * 10 | round / 10) | \(.other_cores * 100 | round / 100) |"' "$1"
}

n=${#runs[@]}
for round in $(seq "$BENCH_ROUNDS"); do
	files=()
	for ((i = 0; i < n; i++)); do
		read -r t s <<<"${runs[(i + round - 1) % n]}"
		log "round $round of $BENCH_ROUNDS: $t $s, $BENCH_DURATION at c=$BENCH_CONCURRENCY"
		files+=("$BENCH_OUT/raw/r$round-$t-$s.json")
		run "$t" "$s" "$BENCH_DURATION" "${files[-1]}" "$round" "$((i + 1))"
	done
	{
		echo "$header"
		for f in "${files[@]}"; do row "$f"; done
	} >"$work/round-$round.md"
	cat "$work/round-$round.md" >&2
done

# ------------------------------------------------------------------ profiles

if [[ $BENCH_PROFILE == 1 ]]; then
	for t in "${targets[@]}"; do
		for s in decide ping; do
			log "profile: $t $s, ${BENCH_PROFILE_SECONDS}s of CPU profile during a run"
			dur=$((BENCH_PROFILE_SECONDS + 2))s
			ghz_cmd "$t" "$s" "$dur"
			"${cmd[@]}" >"$work/ghz.out" 2>&1 &
			gpid=$!
			sleep 1 # ghz's start-up (reflection, decoding the request file) is not profiled
			server0=$(cpu_seconds "${pid[$t]}")
			curl -sf -o "$BENCH_OUT/$t-$s.pprof" "http://${debug[$t]}/debug/pprof/profile?seconds=$BENCH_PROFILE_SECONDS" ||
				die "profile of $t $s failed"
			server1=$(cpu_seconds "${pid[$t]}")
			wait "$gpid" || die "ghz failed during the profile of $t $s"
			jq -n --arg c "$t" --arg s "$s" --argjson cpu "$(minus "$server1" "$server0")" \
				--argjson calls "$(jq '.count' "$work/report.json")" --argjson total "$(jq '.total / 1e9' "$work/report.json")" \
				'{catalog: $c, scenario: $s, server_cpu: $cpu, calls_per_second: ($calls / $total)}' >"$BENCH_OUT/$t-$s.json"
		done
		"$work/costsplit" -bin "$(side "${t%%-*}" bin)" -decide "$BENCH_OUT/$t-decide.pprof" -ping "$BENCH_OUT/$t-ping.pprof" \
			-decide-rate "$(jq .calls_per_second "$BENCH_OUT/$t-decide.json")" \
			-ping-rate "$(jq .calls_per_second "$BENCH_OUT/$t-ping.json")" >"$BENCH_OUT/$t-split.md" ||
			die "costsplit failed for $t"
	done
fi

# ------------------------------------------------------------------ open loop

ol_rows=()
if [[ $BENCH_OPENLOOP == 1 ]]; then
	start_redis redis_ol --save '' --appendonly no
	log "open loop: seeding $BENCH_OPENLOOP_HCPS demo HCPs"
	A_seed="seed -demo-size $BENCH_OPENLOOP_HCPS"
	seed_side A "$redis_ol_port" "$work/catalog-bench.json"
	log "open loop: seeded in $(side A seed_seconds | awk '{ printf "%.0f", $1 }') s"
	ol_metrics=127.0.0.1:$(free_port)
	A_args=$(echo "${flags[A-bench]}" | sed -e "s/-metrics-addr [^ ]*/-metrics-addr $ol_metrics/" -e 's/-debug-addr [^ ]*//')
	start_side A arbiter_ol "$redis_ol_port" "$work/catalog-bench.json"
	addr[ol]=127.0.0.1:$arbiter_ol_port
	ol_pin=()
	if [[ $BENCH_OPENLOOP_PIN == 1 ]]; then
		lib_require taskset
		taskset -a -p -c 1 "$arbiter_ol_pid" >/dev/null
		taskset -a -p -c 1 "$redis_ol_pid" >/dev/null
		ol_pin=(taskset -c 0)
	fi
	"$work/requests" -catalog "$work/catalog-bench.json" -hcps "$BENCH_OPENLOOP_HCPS" -n 100000 -candidates "$BENCH_CANDIDATES" \
		-limit 3 -keys uniform -o "$work/decide-ol.bin"
	ol_ghz() { # ol_ghz DURATION OUT [ghz flags...]
		local dur=$1 out=$2
		shift 2
		"${ol_pin[@]}" "$GHZ" --insecure --disable-template-functions --disable-template-data --connections 4 --duration "$dur" \
			--format json --output "$out" --metadata "{\"authorization\":\"Bearer $token\"}" \
			--reflect-metadata "{\"authorization\":\"Bearer $token\"}" --call nba.v1.DecisionService/Decide \
			--binary-file "$work/decide-ol.bin" "$@" "${addr[ol]}" >"$work/ghz.out" 2>&1 || {
			cat "$work/ghz.out" >&2
			die "ghz failed in the open-loop runs"
		}
	}
	log "open loop: warm-up, then the peak: closed loop c=50 for $BENCH_OPENLOOP_DURATION"
	ol_ghz "$BENCH_WARMUP" "$work/warmup.json" --concurrency 50
	ol_ghz "$BENCH_OPENLOOP_DURATION" "$BENCH_OUT/openloop-peak.json" --concurrency 50
	ol_peak=$(jq '.rps' "$BENCH_OUT/openloop-peak.json")
	for pct in $BENCH_OPENLOOP_RATES; do
		r=$(awk -v p="$ol_peak" -v q="$pct" 'BEGIN { r = int(p * q / 100 + 0.5); print (r < 1 ? 1 : r) }')
		log "open loop: $r Decides a second ($pct% of the peak), 200 workers, for $BENCH_OPENLOOP_DURATION"
		decide_buckets "$ol_metrics" >"$work/b0"
		ol_ghz "$BENCH_OPENLOOP_DURATION" "$BENCH_OUT/openloop-$pct.json" --concurrency 200 --rps "$r"
		decide_buckets "$ol_metrics" >"$work/b1"
		q=$(server_quantiles "$work/b0" "$work/b1")
		ol_rows+=("$(jq -r --argjson q "$q" --arg pct "$pct" --argjson rate "$r" '
			def pc(p): ([.latencyDistribution[]? | select(.percentage == p) | .latency][0] // 0) / 1e6;
			def r3: . * 1000 | round / 1000;
			"| \($pct)% | \($rate) | \(.rps | round) | \($q.decisions) | \($q.p50_ms | r3) | \($q.p99_ms | r3) | **\($q.p99_ms / $q.p50_ms * 100 | round / 100)** | \(pc(50) | r3) | \(pc(99) | r3) |"
		' "$BENCH_OUT/openloop-$pct.json")")
	done
fi

# ------------------------------------------------------------------ report

# summary TARGET: per metric, the median (min–max) over rounds.
summary() {
	jq -rs --arg x "${1%%-*}" --arg c "${1#*-}" '
		def med: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		def r(k): (. * k | round) / k;
		def cell(k): "\(med | r(k)) (\(min | r(k))–\(max | r(k)))";
		map(.bench | select(.side == $x and .catalog == $c)) | group_by(.round)
		| map(reduce .[] as $r ({}; .[$r.scenario] = $r)) as $rounds
		| def line(name; k; f): "| \(name) | \($rounds | map(f) | cell(k)) |";
		line("**cost ratio: (server + Redis) per Decide / per Ping**"; 100; (.decide.server_us + .decide.redis_us) / (.ping.server_us + .ping.redis_us)),
		line("server-only ratio: server per Decide / per Ping"; 100; .decide.server_us / .ping.server_us),
		line("Decide server µs/call"; 10; .decide.server_us),
		line("Decide Redis µs/call"; 10; .decide.redis_us),
		line("Ping server µs/call"; 10; .ping.server_us),
		line("Ping Redis µs/call"; 10; .ping.redis_us),
		line("Decide rps"; 1; .decide.rps),
		line("Ping rps"; 1; .ping.rps),
		line("Decide / Ping rps (bounded by ghz: bench/bound.sh)"; 100; .decide.rps / .ping.rps),
		line("Decide p50 ms"; 1000; .decide.p50_ms),
		line("Decide p99 ms"; 1000; .decide.p99_ms),
		line("ghz µs per Decide"; 10; .decide.client_us),
		if ($rounds[0]["probe-batch"] // null) != null then
			line("campaign (probe): unary Decide recipients per server CPU second"; 1; 1e6 / .["probe-decide"].server_us),
			line("campaign (probe): DecideBatch recipients per server CPU second"; 1; 1e6 / .["probe-batch"].server_us),
			line("campaign (probe): CheckSendBatch recipients per server CPU second"; 1; 1e6 / .["probe-checksend"].server_us),
			line("**DecideBatch / unary Decide, recipients per server CPU second**"; 100; .["probe-decide"].server_us / .["probe-batch"].server_us),
			line("**CheckSendBatch / unary Decide, recipients per server CPU second**"; 100; .["probe-decide"].server_us / .["probe-checksend"].server_us),
			line("DecideBatch / unary Decide, per server + Redis CPU second"; 100; (.["probe-decide"].server_us + .["probe-decide"].redis_us) / (.["probe-batch"].server_us + .["probe-batch"].redis_us)),
			line("CheckSendBatch / unary Decide, per server + Redis CPU second"; 100; (.["probe-decide"].server_us + .["probe-decide"].redis_us) / (.["probe-checksend"].server_us + .["probe-checksend"].redis_us))
		else empty end
	' "$BENCH_OUT"/raw/r*.json
}
headline() {
	jq -rs --arg x "${1%%-*}" --arg c "${1#*-}" '
		def med: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		map(.bench | select(.side == $x and .catalog == $c)) | group_by(.round)
		| map(reduce .[] as $r ({}; .[$r.scenario] = $r) | (.decide.server_us + .decide.redis_us) / (.ping.server_us + .ping.redis_us))
		| "\(med * 100 | round / 100)x (rounds \(min * 100 | round / 100)x to \(max * 100 | round / 100)x, \(length) rounds)"
	' "$BENCH_OUT"/raw/r*.json
}

# versus X CATALOG: side X's Decide cost (server + Redis) over side A's,
# within each round, then the median (min–max).
versus() {
	jq -rs --arg x "$1" --arg c "$2" '
		def med: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		def r(k): (. * k | round) / k;
		map(.bench | select(.catalog == $c and .scenario == "decide")) | group_by(.round)
		| map(reduce .[] as $r ({}; .[$r.side] = ($r.server_us + $r.redis_us)) | .[$x] / .A)
		| "\(med | r(1000)) (\(min | r(1000))–\(max | r(1000)))"
	' "$BENCH_OUT"/raw/r*.json
}

md=$BENCH_OUT/report.md
{
	echo "# The cost of a decision against an empty call"
	echo
	for t in "${targets[@]}"; do
		echo "- **${t%%-*}, ${t#*-} catalog: cost ratio $(headline "$t")**, bar 2.0x"
	done
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- command: \`BENCH_ROUNDS=$BENCH_ROUNDS BENCH_DURATION=$BENCH_DURATION BENCH_WARMUP=$BENCH_WARMUP BENCH_CONCURRENCY=$BENCH_CONCURRENCY BENCH_CONNECTIONS=$BENCH_CONNECTIONS BENCH_CANDIDATES=$BENCH_CANDIDATES BENCH_CATALOGS='$BENCH_CATALOGS'$([[ -n ${ARGS:-} ]] && echo " ARGS='$ARGS'") bench/cost.sh ${revs[*]}\`"
	for x in "${sides[@]}"; do
		v=ARGS_$x
		echo "- side $x: $(rev_line "$x")$([[ -n ${!v:-} ]] && echo "; with \`${!v}\`")"
	done
	machine_lines
	echo "- ghz $GHZ_VERSION, closed loop, c=$BENCH_CONCURRENCY, $((BENCH_CONCURRENCY < BENCH_CONNECTIONS ? BENCH_CONCURRENCY : BENCH_CONNECTIONS)) connections, $BENCH_DURATION per run after a $BENCH_WARMUP warm-up of each; ghz, the redis-servers and the arbiters share the machine's CPUs, loopback, plaintext"
	for c in "${catalogs[@]}"; do
		echo "- $c: arbiter \`$(echo "${flags[A-$c]}" | sed -e "s|$(side A tree)/||g" -e "s|$work/||g" -e 's/-debug-addr [^ ]*//; s/-metrics-addr [^ ]*/-metrics-addr <port>/' -e 's/ *$//')\` (paths in each side's tree), on a redis-server of its own seeded with $HCPS demo HCPs; Decide: $([[ $c == bench ]] && echo "the first $BENCH_CANDIDATES actions of the 1000-action bench catalog" || echo "no candidates (the whole demo catalog)"), limit 3, HCP-000001..HCP-0$HCPS round-robin, a rep tool's bearer token"
	done
	echo "- Ping: nba.v1.DecisionService/Ping with the same token, on the same arbiter"
	if ((${#sides[@]} > 1)); then
		echo
		echo "## Against side A"
		echo
		echo "Decide's server + Redis CPU per call over side A's, taken within each round, median (min–max):"
		echo
		echo "| side | $(printf '%s catalog | ' "${catalogs[@]}")"
		echo "|---|$(printf -- '--:|%.0s' "${catalogs[@]}")"
		for x in "${sides[@]:1}"; do
			line="| $x |"
			for c in "${catalogs[@]}"; do line+=" $(versus "$x" "$c") |"; done
			echo "$line"
		done
	fi
	for t in "${targets[@]}"; do
		echo
		echo "## Side ${t%%-*}, ${t#*-} catalog"
		echo
		echo "Median (min–max) over $BENCH_ROUNDS rounds; each ratio is taken within its round, then the median. CPU per call: user + system time of the process (all threads, /proc/PID/stat) over the run, divided by the calls made."
		echo
		echo "| metric | median (min–max) |"
		echo "|---|--:|"
		summary "$t"
		if [[ -f $BENCH_OUT/$t-split.md ]]; then
			echo
			cat "$BENCH_OUT/$t-split.md"
		fi
	done
	if ((${#ol_rows[@]} > 0)); then
		echo
		echo "## Open loop, $BENCH_OPENLOOP_HCPS stored HCPs"
		echo
		echo "Side A, the bench definitions, Decide($BENCH_CANDIDATES) spread over all $BENCH_OPENLOOP_HCPS HCPs$([[ $BENCH_OPENLOOP_PIN == 1 ]] && echo ", arbiter and redis-server pinned to CPU 1 and ghz to CPU 0 (taskset)"). Peak: $(jq '.rps | round' "$BENCH_OUT/openloop-peak.json") Decides a second (ghz closed loop, c=50, $BENCH_OPENLOOP_DURATION). Then ghz --rps at a share of it, 200 workers, 4 connections, $BENCH_OPENLOOP_DURATION each. Server p50 and p99: arbiter_decide_seconds (from the handler's start to the answer built), scraped before and after the run; client: ghz's."
		echo
		echo "| share of peak | target rps | achieved rps | decisions | server p50 ms | server p99 ms | **server p99 / p50** (bar 2) | client p50 ms | client p99 ms |"
		echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
		printf '%s\n' "${ol_rows[@]}"
	fi
	echo
	echo "\"other cores\" (CPU the rest of the machine used during a run) was at most $(jq -s 'map(.bench.other_cores) | max * 100 | round / 100' "$BENCH_OUT"/raw/r*.json); above ~0.05 something else competed for the CPUs."
	echo
	echo "## Rounds"
	for round in $(seq "$BENCH_ROUNDS"); do
		echo
		echo "Round $round"
		echo
		cat "$work/round-$round.md"
	done
} >"$md"

cat "$md"
log "report: $md"
