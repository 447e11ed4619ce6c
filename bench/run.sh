#!/usr/bin/env bash
# End-to-end load benchmark of Arbiter (see bench/README.md).
#
# Starts its own redis-server on a free loopback port, seeds the demo
# population, writes a large deterministic catalog (bench/catalog), starts
# the real server on it and the I/O-floor server against the same Redis,
# and drives these scenarios with ghz (and, as a cross-check, with
# bench/probe), interleaved per concurrency level, all with the same
# settings:
#
#   B0    grpc.health.v1.Health/Check on the real server      (the ceiling)
#   B2    nba.v1.DecisionService/Decide on bench/floor        (Redis load only)
#   D(N)  nba.v1.DecisionService/Decide on the real server, N candidates,
#         for each N in BENCH_CANDIDATES                      (the product)
#
# then measures Redis alone with Decide's command mix (redis-benchmark,
# pipelined HGETALL of a profile hash and a consent hash), and, with
# BENCH_SCALE=1, seeds BENCH_SCALE_HCPS HCPs into a second redis-server and
# compares D(BENCH_SCALE_CANDIDATES) on the small and the large store.
#
# Writes bench/out/latest.md (tables, bars, command, machine) and
# bench/out/scaling.svg (rps and p99 against N) and prints the former; one
# JSON report per run goes to bench/out/raw/. Stops everything it started
# on exit. Knobs (environment, defaults below): BENCH_DURATION,
# BENCH_WARMUP, BENCH_CONCURRENCY, BENCH_CONNECTIONS, BENCH_HCPS,
# BENCH_CANDIDATES, BENCH_FLOOR_CANDIDATES, BENCH_CATALOG_ACTIONS,
# BENCH_REQUESTS, BENCH_KEYS, BENCH_PIPELINE_WORKERS, BENCH_PROBE,
# BENCH_REDIS_BENCHMARK, BENCH_SCALE, BENCH_SCALE_HCPS,
# BENCH_SCALE_CANDIDATES, BENCH_SCALE_CONCURRENCY, BENCH_OUT,
# BENCH_FLOOR_CPUPROFILE, BENCH_OPENLOOP, BENCH_OPENLOOP_RATES,
# BENCH_OPENLOOP_CONCURRENCY, BENCH_OPENLOOP_PEAK_C, BENCH_PROFILE_SECONDS,
# BENCH_HCP_CACHE (the real server's -hcp-cache: HCPs kept in memory; 0,
# the default, is off), BENCH_CANDIDATE_SETS (1: Decide requests name the
# catalog's candidate set "first-N" instead of listing N ids; 0, the
# default, lists them), BENCH_GOGC (the real server's GOGC; default 100,
# Go's), BENCH_REDIS_NICE (the redis-servers' nice value; default 0;
# negative, root only, puts Redis first for the CPUs), BENCH_METRICS (1, the default: arbiter serves /metrics and the
# report gives its own time per decision; 0: no metrics), BENCH_ROUNDS
# (rounds of the main sweep; each figure is then the
# median of the rounds, with the range of rps; default 1), BENCH_SERVE (1:
# set everything up with arbiter on 127.0.0.1:50051
# and the floor on 127.0.0.1:50052, print the ghz commands, measure
# nothing, and keep serving until interrupted).
#
# ghz takes its settings from the scenario's config file in bench/ghz/
# (b0.json, b2.json, d<N>.json): the same files anyone can rerun by hand
# against BENCH_SERVE=1; this script overrides only the address, the
# concurrency, connections, duration, rate, request file and output.
#
# With BENCH_OPENLOOP=1 it also (after the runs above) measures the peak
# closed-loop rps of B0 and D(100) at c=BENCH_OPENLOOP_PEAK_C, taking a CPU
# profile of the real server (pprof, -debug-addr) during the D(100) one,
# then runs B0 and D(100) interleaved at fixed rates (ghz --rps: open loop
# while workers are free) of BENCH_OPENLOOP_RATES percent of D(100)'s peak,
# on the BENCH_SCALE store if BENCH_SCALE=1, else on the BENCH_HCPS store.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

# ghz is a tool binary, never a dependency of the module (lib.sh pins it:
# v0.121.0 is the newest tag the Go module proxy serves that installs; go
# list -m -versions shows only up to v0.93.0, the v0.1xx tags resolve).

BENCH_DURATION=${BENCH_DURATION:-30s}
BENCH_WARMUP=${BENCH_WARMUP:-10s}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-1 16 50}
# Throughput and cost are measured without shedding (the default bound, 16
# calls per CPU, would refuse part of c=50 and the open loop's 200); the
# fault suite (faults/) measures admission under overload.
BENCH_MAX_IN_FLIGHT=${BENCH_MAX_IN_FLIGHT:-1024}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-4}
BENCH_HCPS=${BENCH_HCPS:-10000}
BENCH_CANDIDATES=${BENCH_CANDIDATES:-10 100 1000}
BENCH_FLOOR_CANDIDATES=${BENCH_FLOOR_CANDIDATES:-100}
BENCH_CATALOG_ACTIONS=${BENCH_CATALOG_ACTIONS:-1000}
BENCH_REQUESTS=${BENCH_REQUESTS:-10000}
BENCH_KEYS=${BENCH_KEYS:-uniform}
BENCH_OUT=${BENCH_OUT:-bench/out}
BENCH_PIPELINE_WORKERS=${BENCH_PIPELINE_WORKERS:-4}
BENCH_PROBE=${BENCH_PROBE:-1}
BENCH_REDIS_BENCHMARK=${BENCH_REDIS_BENCHMARK:-1}
BENCH_SCALE=${BENCH_SCALE:-0}
BENCH_SCALE_HCPS=${BENCH_SCALE_HCPS:-1000000}
BENCH_SCALE_CANDIDATES=${BENCH_SCALE_CANDIDATES:-100}
BENCH_SCALE_CONCURRENCY=${BENCH_SCALE_CONCURRENCY:-16}
BENCH_FLOOR_CPUPROFILE=${BENCH_FLOOR_CPUPROFILE:-}
BENCH_OPENLOOP=${BENCH_OPENLOOP:-0}
BENCH_OPENLOOP_RATES=${BENCH_OPENLOOP_RATES:-10 30 50 70 90}
BENCH_OPENLOOP_CONCURRENCY=${BENCH_OPENLOOP_CONCURRENCY:-200}
BENCH_OPENLOOP_PEAK_C=${BENCH_OPENLOOP_PEAK_C:-50}
BENCH_PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-}
BENCH_HCP_CACHE=${BENCH_HCP_CACHE:-0}
BENCH_CANDIDATE_SETS=${BENCH_CANDIDATE_SETS:-0}
BENCH_GOGC=${BENCH_GOGC:-100}
BENCH_REDIS_NICE=${BENCH_REDIS_NICE:-0}
BENCH_SERVE=${BENCH_SERVE:-0}
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
BENCH_METRICS=${BENCH_METRICS:-1}
PREFIX=bench

work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-bench.XXXXXX")
# log, die, start, free_port, port_open, cpu_seconds, busy_seconds, minus,
# ensure_ghz and the cleanup of what start started; it also unsets the
# caller's ARBITER_* variables: the servers are configured by the flags and
# variables below only.
. "$root/bench/lib.sh"
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

command -v jq >/dev/null || die "jq is required (apt-get install jq)"
command -v redis-server >/dev/null || die "redis-server is required (apt-get install redis-server)"
command -v redis-cli >/dev/null || die "redis-cli is required (apt-get install redis-tools)"
command -v curl >/dev/null || die "curl is required (apt-get install curl): run.sh reads arbiter's /metrics"
if [[ $BENCH_REDIS_BENCHMARK == 1 ]] && ! command -v redis-benchmark >/dev/null; then
	die "redis-benchmark is required (apt-get install redis-tools), or set BENCH_REDIS_BENCHMARK=0"
fi
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS: want a number of rounds >= 1, got '$BENCH_ROUNDS'"
read -r -a cands <<<"$BENCH_CANDIDATES"
for n in "${cands[@]}" "$BENCH_FLOOR_CANDIDATES" "$BENCH_SCALE_CANDIDATES"; do
	((n >= 1 && n <= BENCH_CATALOG_ACTIONS && n <= 1000)) ||
		die "candidates $n: want 1 to min(1000, BENCH_CATALOG_ACTIONS=$BENCH_CATALOG_ACTIONS)"
done

# ------------------------------------------------------------------ helpers

# redis_priority PID: BENCH_REDIS_NICE, when not 0, is the nice value of
# the redis-servers run.sh starts (negative: ahead of the load generator
# and the servers for the CPUs; needs root or CAP_SYS_NICE). In production
# Redis has CPUs of its own; here one Redis thread waiting for a CPU holds
# up every decision waiting on it.
redis_priority() {
	[[ $BENCH_REDIS_NICE == 0 ]] && return
	renice -n "$BENCH_REDIS_NICE" -p "$1" >/dev/null || die "could not renice redis-server to $BENCH_REDIS_NICE (BENCH_REDIS_NICE needs root or CAP_SYS_NICE)"
}

# used_memory PORT: the used_memory of the redis-server on PORT, bytes.
used_memory() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }

# seed_store PORT HCPS NAME: seed HCPS demo HCPs into the redis-server on
# PORT and record the wall time and Redis memory in $work/NAME.seed:
# "hcps seconds used_before used_after".
seed_store() {
	local port=$1 n=$2 name=$3 before after t0 t1
	before=$(used_memory "$port")
	t0=$(date +%s.%N)
	bin/arbiter seed -redis-addr "127.0.0.1:$port" -redis-prefix "$PREFIX" -demo-size "$n" -log-level warn
	t1=$(date +%s.%N)
	after=$(used_memory "$port")
	echo "$n $(minus "$t1" "$t0") $before $after" >"$work/$name.seed"
}

# ------------------------------------------------------------------ build

log "building bin/arbiter and the bench tools"
tree=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || tree="$tree + uncommitted changes"
go build -o bin/arbiter ./cmd/arbiter
for tool in floor requests probe catalog plot; do
	go build -o "bench/.bin/$tool" "./bench/$tool"
done

ensure_ghz

# The catalog the real server decides over, and whose first N actions the
# requests name: deterministic, BENCH_CATALOG_ACTIONS actions.
catalog_file=$work/bench-catalog.json
bench/.bin/catalog -n "$BENCH_CATALOG_ACTIONS" -o "$catalog_file"

# ------------------------------------------------------------------ servers

start redis redis-server --bind 127.0.0.1 --port '{PORT}' \
	--save '' --appendonly no --dir "$work" --daemonize no
redis_priority "$redis_pid"
log "redis-server on 127.0.0.1:$redis_port"

log "seeding $BENCH_HCPS demo HCPs (prefix $PREFIX)"
seed_store "$redis_port" "$BENCH_HCPS" small

# start_arbiter NAME REDIS_PORT HCPS: the real server on the bench catalog.
# With BENCH_OPENLOOP=1 it also serves pprof on a free loopback port
# (ARBITER_DEBUG_ADDR; sets NAME_debug_port), for the peak profile; the
# default run does not enable it.
start_arbiter() {
	local debug=() metrics=() mport
	# /metrics, for the server's own time per decision (arbiter_decide_seconds).
	if [[ $BENCH_METRICS == 1 ]]; then
		mport=$(free_port)
		printf -v "${1}_metrics_port" '%s' "$mport"
		metrics=(ARBITER_METRICS_ADDR="127.0.0.1:$mport")
	else
		printf -v "${1}_metrics_port" '%s' ""
	fi
	if [[ $BENCH_OPENLOOP == 1 ]]; then
		local dport
		dport=$(free_port)
		printf -v "${1}_debug_port" '%s' "$dport"
		debug=(ARBITER_DEBUG_ADDR="127.0.0.1:$dport")
	fi
	start "$1" env ARBITER_LOG_LEVEL=warn ARBITER_REDIS_ADDR="127.0.0.1:$2" \
		ARBITER_REDIS_PREFIX="$PREFIX" ARBITER_DEMO_SIZE="$3" ARBITER_LISTEN='127.0.0.1:{PORT}' \
		ARBITER_CATALOG="$catalog_file" ARBITER_MODEL=scoring/demo_model.json ARBITER_CONSENT_POLICY=consent/policy.json \
		ARBITER_PIPELINE_WORKERS="$BENCH_PIPELINE_WORKERS" ARBITER_MAX_IN_FLIGHT="$BENCH_MAX_IN_FLIGHT" \
		ARBITER_HCP_CACHE="$BENCH_HCP_CACHE" GOGC="$BENCH_GOGC" "${metrics[@]}" "${debug[@]}" bin/arbiter
}
# BENCH_SERVE=1: fixed ports, so that the configs in bench/ghz/ reach them.
serve_port() { [[ $BENCH_SERVE == 1 ]] && echo "$1" || true; }
if [[ $BENCH_SERVE == 1 ]]; then
	for p in 50051 50052; do
		port_open "$p" && die "BENCH_SERVE=1 needs 127.0.0.1:$p, and something listens there (make run?)"
	done
fi
START_PORT=$(serve_port 50051) start_arbiter arbiter "$redis_port" "$BENCH_HCPS"
log "arbiter on 127.0.0.1:$arbiter_port (catalog: $BENCH_CATALOG_ACTIONS actions)"

floor_args=(-redis-addr "127.0.0.1:$redis_port" -redis-prefix "$PREFIX" -pipeline-workers "$BENCH_PIPELINE_WORKERS")
[[ -n $BENCH_FLOOR_CPUPROFILE ]] && floor_args+=(-cpuprofile "$BENCH_FLOOR_CPUPROFILE")
START_PORT=$(serve_port 50052) start floor bench/.bin/floor -listen '127.0.0.1:{PORT}' "${floor_args[@]}"
log "floor on 127.0.0.1:$floor_port"

# ------------------------------------------------------------------ load

mkdir -p "$BENCH_OUT/raw"
# The request files go to bench/out/requests/, where bench/ghz/*.json look
# for them; a run writes them afresh (the catalog or the knobs may differ).
rm -rf "$BENCH_OUT/requests"
mkdir -p "$BENCH_OUT/requests"
rm -f "$BENCH_OUT"/raw/*.json "$BENCH_OUT"/raw/*.csv "$BENCH_OUT"/{scaling,concurrency,openloop}.{tsv,svg}

# Decide requests (bench/requests): the first N actions of the bench
# catalog, limit 3, a rep tool calling, in ghz's binary format, HCPs chosen
# by BENCH_KEYS. ghz decodes the file once at start-up and sends call i the
# (i mod n)-th message; the probe is given the same file. A file holds
# min(BENCH_REQUESTS, HCPs, 2,000,000 / N) messages (a 1000-candidate
# request is ~15 KB); with fewer messages than HCPs they are spread over the
# whole population (see bench/requests).
# requests_file HCPS N: writes the file, prints its path.
requests_file() {
	local hcps=$1 n=$2 f=$BENCH_OUT/requests/decide-$1-$2-$BENCH_CANDIDATE_SETS.bin msgs set=()
	msgs=$((BENCH_REQUESTS < hcps ? BENCH_REQUESTS : hcps))
	msgs=$((msgs < 2000000 / n ? msgs : 2000000 / n))
	[[ $BENCH_CANDIDATE_SETS == 1 ]] && set=(-candidate-set)
	[[ -f $f ]] || bench/.bin/requests -catalog "$catalog_file" -hcps "$hcps" -n "$msgs" \
		-candidates "$n" -limit 3 -keys "$BENCH_KEYS" "${set[@]}" -o "$f"
	echo "$f"
}

# ghz_config SCENARIO: the bench/ghz/ config file ghz runs SCENARIO with:
# b0.json for the empty handler, b2.json for the floor, d<N>.json for
# D(N) where there is one, else d100.json (the request file is then
# always given on the command line).
ghz_config() {
	case $1 in
	B0 | OB0) echo bench/ghz/b0.json ;;
	B2) echo bench/ghz/b2.json ;;
	D*) [[ -f bench/ghz/d${1#D}.json ]] && echo "bench/ghz/d${1#D}.json" || echo bench/ghz/d100.json ;;
	*) echo bench/ghz/d100.json ;;
	esac
}

# Scenarios: B0, B2, D<N> per N; scale runs add L<N> (the large store).
declare -A addr_of pid_of req_of label_of metrics_of
scenarios=(B0 B2)
addr_of[B0]=127.0.0.1:$arbiter_port pid_of[B0]=$arbiter_pid label_of[B0]=B0
addr_of[B2]=127.0.0.1:$floor_port pid_of[B2]=$floor_pid label_of[B2]=B2
req_of[B2]=$(requests_file "$BENCH_HCPS" "$BENCH_FLOOR_CANDIDATES")
for n in "${cands[@]}"; do
	scenarios+=("D$n")
	addr_of[D$n]=127.0.0.1:$arbiter_port pid_of[D$n]=$arbiter_pid label_of[D$n]="D($n)" metrics_of[D$n]=$arbiter_metrics_port
	req_of[D$n]=$(requests_file "$BENCH_HCPS" "$n")
done

# serve mode: everything is up; say how to drive it, then wait.
if [[ $BENCH_SERVE == 1 ]]; then
	log "serving: arbiter on 127.0.0.1:$arbiter_port (bench catalog, $BENCH_HCPS HCPs), floor on 127.0.0.1:$floor_port, redis-server on 127.0.0.1:$redis_port; Ctrl-C stops all"
	for s in "${scenarios[@]}"; do
		cfg=$(ghz_config "$s")
		cmd="bench/.bin/ghz --config $cfg"
		if [[ -n ${req_of[$s]:-} && ${req_of[$s]} != "$(jq -r '."binary-file"' "$cfg")" ]]; then
			cmd+=" --binary-file ${req_of[$s]}"
		fi
		printf '  %-6s %s\n' "$s" "$cmd" >&2
	done
	wait
	exit 0
fi

# load CLIENT SCENARIO CONCURRENCY DURATION OUTPUT [RPS]: one closed-loop
# run, or, with RPS (ghz only), one at a fixed rate of RPS calls per second
# (ghz --rps; CONCURRENCY is then the number of workers the ticks go to).
# Every run has the same settings: plaintext, min(BENCH_CONNECTIONS, c)
# connections (ghz needs connections <= c); ghz finds the methods by
# reflection and does no template processing (bench/ghz/*.json). OUTPUT is the client's own
# report (ghz's without the per-call details) plus .bench: the figures the
# table uses, and the CPU time the server under test, redis-server, the
# client and the whole machine used during the run.
load() {
	local client=$1 scenario=$2 c=$3 dur=$4 out=$5 rps=${6:-} cmd
	local conns=$((c < BENCH_CONNECTIONS ? c : BENCH_CONNECTIONS))
	local addr=${addr_of[$scenario]} pid=${pid_of[$scenario]} rpid=${redis_pid_of[$scenario]:-$redis_pid}
	case $client/$scenario in
	ghz/*) cmd=("$GHZ" --config "$(ghz_config "$scenario")")
		[[ -n ${req_of[$scenario]:-} ]] && cmd+=(--binary-file "${req_of[$scenario]}") ;;
	probe/B0) cmd=(bench/.bin/probe -call health) ;;
	probe/*) cmd=(bench/.bin/probe -call decide -requests "${req_of[$scenario]}") ;;
	esac
	case $client in
	ghz) cmd+=(--connections "$conns" --concurrency "$c" --duration "$dur"
		--format json --output "$work/report.json" "$addr")
		[[ -n $rps ]] && cmd+=(--rps "$rps") ;;
	probe) cmd+=(-addr "$addr" -connections "$conns" -c "$c" -d "$dur") ;;
	esac

	local server0 redis0 busy0 TIMEFORMAT='%3U %3S' mport=${metrics_of[$scenario]:-} st=null
	[[ -n $mport ]] && decide_buckets "127.0.0.1:$mport" >"$work/buckets0"
	server0=$(cpu_seconds "$pid") redis0=$(cpu_seconds "$rpid") busy0=$(busy_seconds)
	if ! { time "${cmd[@]}" >"$work/stdout" 2>"$work/stderr"; } 2>"$work/time"; then
		cat "$work/stderr" >&2
		die "$client failed: $scenario c=$c"
	fi
	local server1 redis1 busy1
	server1=$(cpu_seconds "$pid") redis1=$(cpu_seconds "$rpid") busy1=$(busy_seconds)
	[[ $client == probe ]] && mv "$work/stdout" "$work/report.json"
	if [[ -n $mport ]]; then
		decide_buckets "127.0.0.1:$mport" >"$work/buckets1"
		st=$(server_quantiles "$work/buckets0" "$work/buckets1")
	fi

	# ghz cuts the calls in flight when the duration ends ("use of closed
	# network connection", "transport is closing", "the client connection
	# is closing"; at most c per run): those are not errors.
	jq --arg client "$client" --arg scenario "$scenario" --argjson c "$c" --arg target "$rps" \
		--argjson server "$(minus "$server1" "$server0")" --argjson redis "$(minus "$redis1" "$redis0")" \
		--argjson load "$(awk '{ print $1 + $2 }' "$work/time")" \
		--argjson machine "$(minus "$busy1" "$busy0")" --argjson st "$st" '
		def pct(p): ([.latencyDistribution[]? | select(.percentage == p) | .latency][0] // 0) / 1e6;
		del(.details, .options.data)
		| .bench = {client: $client, scenario: $scenario, c: $c}
		| if $target != "" then .bench.target_rps = ($target | tonumber) else . end
		| .bench += if $client == "ghz" then {
			rps: .rps, p50_ms: pct(50), p99_ms: pct(99), calls: .count, seconds: (.total / 1e9),
			errors: ([.errorDistribution // {} | to_entries[]
				| select(.key | test("closed network connection|client connection is closing|transport is closing") | not) | .value] | add // 0)}
		  else {rps: .rps, p50_ms: .p50_ms, p99_ms: .p99_ms, calls: .calls, seconds: .seconds, errors: .errors} end
		| .bench.cpu_seconds = {server: $server, redis: $redis, client: $load, machine: $machine}
		| if $st != null then .bench.server_time = $st else . end
	' "$work/report.json" >"$out"
}

read -r -a levels <<<"$BENCH_CONCURRENCY"
max_c=$(printf '%s\n' "${levels[@]}" | sort -n | tail -1)
clients=(ghz)
[[ $BENCH_PROBE == 1 ]] && clients+=(probe)
declare -A redis_pid_of

log "warm-up: $BENCH_WARMUP per scenario at c=$max_c"
for s in "${scenarios[@]}"; do
	load ghz "$s" "$max_c" "$BENCH_WARMUP" "$work/warmup.json"
done

# BENCH_ROUNDS rounds of the whole sweep, so that drift on a shared
# machine spreads over every cell; the report gives each cell's median and
# its range of rps.
for round in $(seq "$BENCH_ROUNDS"); do
	for c in "${levels[@]}"; do
		for client in "${clients[@]}"; do
			for s in "${scenarios[@]}"; do
				log "$client ${label_of[$s]} c=$c for $BENCH_DURATION (round $round of $BENCH_ROUNDS)"
				load "$client" "$s" "$c" "$BENCH_DURATION" "$BENCH_OUT/raw/$client-$s-c$c-r$round.json"
			done
		done
	done
done

# ------------------------------------------------------------------ redis alone

# Redis alone with Decide's command mix: a decision is one pipelined round
# trip of HGETALL <prefix>:{id}:p and HGETALL <prefix>:{id}:consent.
# redis-benchmark sends one command per test, so each hash is measured on
# its own with a pipeline of 2 (-P 2) at the highest concurrency level;
# decisions/s is what Redis could serve if it did nothing else: the
# harmonic combination 1 / (1/ops_p + 1/ops_consent). The ghz runs'
# "redis µs/call" is the same question answered under the real load.
if [[ $BENCH_REDIS_BENCHMARK == 1 ]]; then
	rb_id=HCP-000042
	rb_n=$((max_c * 4000))
	for h in p consent; do
		log "redis-benchmark HGETALL $PREFIX:{$rb_id}:$h, c=$max_c, -P 2, $rb_n requests"
		redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$max_c" -n "$rb_n" -P 2 --csv \
			HGETALL "$PREFIX:{$rb_id}:$h" >"$BENCH_OUT/raw/redis-benchmark-$h.csv" 2>/dev/null
	done
fi

# ------------------------------------------------------------------ scale

# Stored-HCP scaling: a second redis-server with BENCH_SCALE_HCPS HCPs and a
# second arbiter on it; D(BENCH_SCALE_CANDIDATES) at BENCH_SCALE_CONCURRENCY
# on the small store (S) and the large one (L), interleaved twice, with
# requests spread uniformly (BENCH_KEYS) over each store's population.
scale_runs=()
if [[ $BENCH_SCALE == 1 ]]; then
	start redis_large redis-server --bind 127.0.0.1 --port '{PORT}' \
		--save '' --appendonly no --dir "$work" --daemonize no
	redis_priority "$redis_large_pid"
	log "seeding $BENCH_SCALE_HCPS demo HCPs into a second redis-server (127.0.0.1:$redis_large_port)"
	seed_store "$redis_large_port" "$BENCH_SCALE_HCPS" large
	start_arbiter arbiter_large "$redis_large_port" "$BENCH_SCALE_HCPS"
	n=$BENCH_SCALE_CANDIDATES
	addr_of[S]=127.0.0.1:$arbiter_port pid_of[S]=$arbiter_pid label_of[S]="D($n) $BENCH_HCPS HCPs" metrics_of[S]=$arbiter_metrics_port
	req_of[S]=$(requests_file "$BENCH_HCPS" "$n")
	addr_of[L]=127.0.0.1:$arbiter_large_port pid_of[L]=$arbiter_large_pid label_of[L]="D($n) $BENCH_SCALE_HCPS HCPs"
	redis_pid_of[L]=$redis_large_pid metrics_of[L]=$arbiter_large_metrics_port
	req_of[L]=$(requests_file "$BENCH_SCALE_HCPS" "$n")
	c=$BENCH_SCALE_CONCURRENCY
	load ghz L "$c" "$BENCH_WARMUP" "$work/warmup.json"
	for round in 1 2; do
		for s in S L; do
			log "ghz ${label_of[$s]} c=$c for $BENCH_DURATION (round $round)"
			load ghz "$s" "$c" "$BENCH_DURATION" "$BENCH_OUT/raw/ghz-$s$round-c$c.json"
			scale_runs+=("$s$round")
		done
	done
fi

# ------------------------------------------------------------------ open loop

# BENCH_OPENLOOP=1: peak closed-loop rps of B0 and D(100) at
# c=BENCH_OPENLOOP_PEAK_C on one store (the BENCH_SCALE store if
# BENCH_SCALE=1, else the BENCH_HCPS one), with a pprof CPU profile of the
# real server taken during the D(100) run; then B0 and D(100), interleaved,
# at fixed rates of BENCH_OPENLOOP_RATES percent of D(100)'s peak (ghz
# --rps with BENCH_OPENLOOP_CONCURRENCY workers, so the rate, not the
# number of callers, sets the load). Scenarios OB0 and OD; reports in
# raw/ghz-OB0-peak.json, raw/ghz-OD-peak.json, raw/ghz-O{B0,D}-r<pct>.json;
# the profile in $BENCH_OUT/arbiter-d100-peak.pprof.
ol_rows=()
if [[ $BENCH_OPENLOOP == 1 ]]; then
	if [[ $BENCH_SCALE == 1 ]]; then
		ol_port=$arbiter_large_port ol_pid=$arbiter_large_pid ol_dport=$arbiter_large_debug_port metrics_of[OD]=$arbiter_large_metrics_port
		ol_hcps=$BENCH_SCALE_HCPS redis_pid_of[OB0]=$redis_large_pid redis_pid_of[OD]=$redis_large_pid
	else
		ol_port=$arbiter_port ol_pid=$arbiter_pid ol_dport=$arbiter_debug_port ol_hcps=$BENCH_HCPS metrics_of[OD]=$arbiter_metrics_port
	fi
	addr_of[OB0]=127.0.0.1:$ol_port pid_of[OB0]=$ol_pid label_of[OB0]="B0 ($ol_hcps HCPs)"
	addr_of[OD]=127.0.0.1:$ol_port pid_of[OD]=$ol_pid label_of[OD]="D(100) ($ol_hcps HCPs)"
	req_of[OD]=$(requests_file "$ol_hcps" 100)
	pc=$BENCH_OPENLOOP_PEAK_C

	# Profile length: the run's length less a second (ghz's start-up, the
	# end of the run), unless BENCH_PROFILE_SECONDS says otherwise.
	case $BENCH_DURATION in
	*ms) dur_s=0 ;;
	*h*|*m*) dur_s=$(awk -v d="$BENCH_DURATION" 'BEGIN { s = 0; if (match(d, /[0-9]+h/)) s += 3600 * substr(d, RSTART, RLENGTH - 1);
		if (match(d, /[0-9]+m/)) s += 60 * substr(d, RSTART, RLENGTH - 1); if (match(d, /[0-9]+s/)) s += substr(d, RSTART, RLENGTH - 1); print s }') ;;
	*s) dur_s=${BENCH_DURATION%s} dur_s=${dur_s%.*} ;;
	*) dur_s=0 ;;
	esac
	prof_s=${BENCH_PROFILE_SECONDS:-$((dur_s > 2 ? dur_s - 1 : 1))}
	prof=$BENCH_OUT/arbiter-d100-peak.pprof
	rm -f "$prof" "$BENCH_OUT/profile-top.txt" "$BENCH_OUT"/raw/ghz-O*.json

	load ghz OD "$pc" "$BENCH_WARMUP" "$work/warmup.json"
	log "ghz ${label_of[OB0]} c=$pc for $BENCH_DURATION (peak)"
	load ghz OB0 "$pc" "$BENCH_DURATION" "$BENCH_OUT/raw/ghz-OB0-peak.json"
	log "ghz ${label_of[OD]} c=$pc for $BENCH_DURATION (peak), CPU profile of arbiter for ${prof_s}s"
	# The profile starts half a second into the run, after ghz's start-up.
	(sleep 0.5 && curl -sSf -o "$prof" "http://127.0.0.1:$ol_dport/debug/pprof/profile?seconds=$prof_s") &
	curl_pid=$!
	load ghz OD "$pc" "$BENCH_DURATION" "$BENCH_OUT/raw/ghz-OD-peak.json"
	wait "$curl_pid" || die "could not fetch the CPU profile from 127.0.0.1:$ol_dport"
	go tool pprof -top -cum -nodecount=25 bin/arbiter "$prof" >"$BENCH_OUT/profile-top.txt" 2>/dev/null ||
		die "go tool pprof failed on $prof"

	peak_b0=$(jq -r '.bench.rps' "$BENCH_OUT/raw/ghz-OB0-peak.json")
	peak_d=$(jq -r '.bench.rps' "$BENCH_OUT/raw/ghz-OD-peak.json")
	for pct in $BENCH_OPENLOOP_RATES; do
		r=$(awk -v p="$peak_d" -v q="$pct" 'BEGIN { r = int(p * q / 100 + 0.5); print (r < 1 ? 1 : r) }')
		for s in OB0 OD; do
			log "ghz ${label_of[$s]} at $r rps ($pct% of D(100)'s peak), $BENCH_OPENLOOP_CONCURRENCY workers, for $BENCH_DURATION"
			load ghz "$s" "$BENCH_OPENLOOP_CONCURRENCY" "$BENCH_DURATION" "$BENCH_OUT/raw/ghz-$s-r$pct.json" "$r"
		done
		ol_rows+=("$pct")
	done
fi

# ------------------------------------------------------------------ report

# figures CLIENT SCENARIO C: "rps p50 p99 calls errors cores other server_us
# redis_us client_us" of a run. cores is the CPU the server under test,
# redis-server and the client used, other what the rest of the machine
# used, in cores; *_us is CPU time per call in microseconds.
# With several rounds, each figure is the median of the rounds' (each
# column on its own), except errors: the most any round had.
figures() {
	local files
	mapfile -t files < <(raw_files "$@")
	jq -rs 'def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		map(.bench | .cpu_seconds as $t | [.rps, .p50_ms, .p99_ms, .calls, .errors,
		(($t.server + $t.redis + $t.client) / .seconds),
		(([$t.machine - $t.server - $t.redis - $t.client, 0] | max) / .seconds),
		($t.server / .calls * 1e6), ($t.redis / .calls * 1e6), ($t.client / .calls * 1e6)])
		| transpose | to_entries | map(if .key == 4 then (.value | max) else (.value | median) end) | @tsv
	' "${files[@]}"
}
# raw_files CLIENT SCENARIO C: the reports of that cell: one per round of
# the main sweep, or the one report of a scale or open-loop run.
raw_files() {
	local f=("$BENCH_OUT/raw/$1-$2-c$3"-r[0-9]*.json)
	[[ -f ${f[0]} ]] || f=("$BENCH_OUT/raw/$1-$2-c$3.json")
	printf '%s\n' "${f[@]}"
}
have() { [[ -f $(raw_files "$@" | head -1) ]]; }
# rps_range CLIENT SCENARIO C: "min–max (rounds)" of the cell's rps.
rps_range() {
	local files
	mapfile -t files < <(raw_files "$@")
	jq -rs 'map(.bench.rps) | "\(min | round)–\(max | round) (\(length))"' "${files[@]}"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
# vratio A B: A / B to three places, for a verdict line; atleast and atmost
# are then given the exact quotient (xratio), never the rounded one, so that
# 0.397 is not passed as 0.40.
vratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "n/a" }'; }
xratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.9f", a / b; else printf "0" }'; }
atleast() { awk -v x="$1" -v bar="$2" 'BEGIN { print (x >= bar ? "met" : "NOT met") }'; }
atmost() { awk -v x="$1" -v bar="$2" 'BEGIN { print (x <= bar ? "met" : "NOT met") }'; }

# rb_ops H: ops/s redis-benchmark reported for hash H.
rb_ops() { awk -F'"' 'NR == 2 { print $4 }' "$BENCH_OUT/raw/redis-benchmark-$1.csv"; }

# bars CLIENT: the issue's bars, from CLIENT's runs.
bars() {
	local b0_rps b0_p99 b2_rps d_rps d_p99 d_p50 c
	if have "$1" D50 16; then
		read -r b0_rps _ b0_p99 _ < <(figures "$1" B0 16)
		read -r d_rps _ d_p99 _ < <(figures "$1" D50 16)
		echo "- $1 (a) c=16, D(50) rps >= 0.40 x B0 rps: $(vratio "$d_rps" "$b0_rps"): $(atleast "$(xratio "$d_rps" "$b0_rps")" 0.40)"
		echo "- $1 (a) c=16, D(50) p99 <= 2.5 x B0 p99: $(vratio "$d_p99" "$b0_p99"): $(atmost "$(xratio "$d_p99" "$b0_p99")" 2.5)"
	fi
	if have "$1" D50 1; then
		read -r _ d_p50 _ < <(figures "$1" D50 1)
		printf -- '- %s (b) c=1, D(50) p50 <= 0.300 ms: %.3f ms: %s\n' "$1" "$d_p50" "$(atmost "$d_p50" 0.3)"
	fi
	if have "$1" D100 50; then
		read -r b0_rps _ < <(figures "$1" B0 50)
		read -r b2_rps _ < <(figures "$1" B2 50)
		read -r d_rps _ < <(figures "$1" D100 50)
		echo "- $1 issue 3: c=50, D(100) rps >= 0.60 x B0 rps: $(vratio "$d_rps" "$b0_rps"): $(atleast "$(xratio "$d_rps" "$b0_rps")" 0.60)"
		echo "- $1 issue 3: c=50, D(100) rps >= 0.85 x B2 rps (B2 with $BENCH_FLOOR_CANDIDATES-candidate requests): $(vratio "$d_rps" "$b2_rps"): $(atleast "$(xratio "$d_rps" "$b2_rps")" 0.85)"
	else
		echo "- $1 issue 3: D(100)/B0 and D(100)/B2 at c=50 not measured (need N=100 and c=50)"
	fi
	for c in "${levels[@]}"; do
		have "$1" D1000 "$c" || continue
		read -r b0_rps _ < <(figures "$1" B0 "$c")
		read -r d_rps _ < <(figures "$1" D1000 "$c")
		echo "- $1 issue 3: c=$c, D(1000) rps >= 0.35 x B0 rps: $(vratio "$d_rps" "$b0_rps"): $(atleast "$(xratio "$d_rps" "$b0_rps")" 0.35)"
	done
}

# seed_line NAME: a table row of the seeding of store NAME.
seed_line() {
	local n secs before after
	read -r n secs before after <"$work/$1.seed"
	awk -v n="$n" -v s="$secs" -v b="$before" -v a="$after" 'BEGIN {
		printf "| %d | %.1f | %.0f | %.1f | %.0f | %.0f | %s |\n", n, s, n / s, a / 1048576, (a - b) / n, a / n,
			((a - b) / n <= 1024 ? "met" : "NOT met") }'
}

md=$BENCH_OUT/latest.md
tsv=$BENCH_OUT/scaling.tsv
svg=$BENCH_OUT/scaling.svg
{
	echo "# scenario c N rps p99_ms (ghz)"
	for c in "${levels[@]}"; do
		for s in "${scenarios[@]}"; do
			read -r rps _ p99 _ < <(figures ghz "$s" "$c")
			case $s in
			D*) printf 'D %s %s %s %s\n' "$c" "${s#D}" "$rps" "$p99" ;;
			*) printf '%s %s 0 %s %s\n' "$s" "$c" "$rps" "$p99" ;;
			esac
		done
	done
} >"$tsv"
bench/.bin/plot -i "$tsv" -o "$svg" \
	-title "Arbiter, ghz, $BENCH_DURATION runs: D(N) vs B0 (empty handler) and B2 (Redis floor), $BENCH_HCPS HCPs"

# The same runs against concurrency (closed loop), one line per scenario.
plots=("$svg")
if ((${#levels[@]} > 1)); then
	for s in "${scenarios[@]}"; do
		for c in "${levels[@]}"; do
			read -r rps _ p99 _ < <(figures ghz "$s" "$c")
			printf '%s %s %s %s\n' "${label_of[$s]}" "$c" "$rps" "$p99"
		done
	done >"$BENCH_OUT/concurrency.tsv"
	bench/.bin/plot -series -xlog -xlabel "concurrency c (closed loop; log scale)" -i "$BENCH_OUT/concurrency.tsv" \
		-o "$BENCH_OUT/concurrency.svg" -title "Arbiter, ghz, $BENCH_DURATION runs: against concurrency, $BENCH_HCPS HCPs"
	plots+=("$BENCH_OUT/concurrency.svg")
fi

{
	echo "# Arbiter end-to-end benchmark"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- command: \`BENCH_DURATION=$BENCH_DURATION BENCH_WARMUP=$BENCH_WARMUP BENCH_ROUNDS=$BENCH_ROUNDS BENCH_METRICS=$BENCH_METRICS BENCH_CONCURRENCY='$BENCH_CONCURRENCY' BENCH_CONNECTIONS=$BENCH_CONNECTIONS BENCH_HCPS=$BENCH_HCPS BENCH_CANDIDATES='$BENCH_CANDIDATES' BENCH_FLOOR_CANDIDATES=$BENCH_FLOOR_CANDIDATES BENCH_CATALOG_ACTIONS=$BENCH_CATALOG_ACTIONS BENCH_REQUESTS=$BENCH_REQUESTS BENCH_KEYS=$BENCH_KEYS BENCH_PIPELINE_WORKERS=$BENCH_PIPELINE_WORKERS BENCH_HCP_CACHE=$BENCH_HCP_CACHE BENCH_CANDIDATE_SETS=$BENCH_CANDIDATE_SETS BENCH_GOGC=$BENCH_GOGC$([[ $BENCH_REDIS_NICE != 0 ]] && echo " BENCH_REDIS_NICE=$BENCH_REDIS_NICE") BENCH_PROBE=$BENCH_PROBE BENCH_REDIS_BENCHMARK=$BENCH_REDIS_BENCHMARK BENCH_SCALE=$BENCH_SCALE$([[ $BENCH_SCALE == 1 ]] && echo " BENCH_SCALE_HCPS=$BENCH_SCALE_HCPS BENCH_SCALE_CANDIDATES=$BENCH_SCALE_CANDIDATES BENCH_SCALE_CONCURRENCY=$BENCH_SCALE_CONCURRENCY")$([[ $BENCH_OPENLOOP == 1 ]] && echo " BENCH_OPENLOOP=1 BENCH_OPENLOOP_RATES='$BENCH_OPENLOOP_RATES' BENCH_OPENLOOP_CONCURRENCY=$BENCH_OPENLOOP_CONCURRENCY BENCH_OPENLOOP_PEAK_C=$BENCH_OPENLOOP_PEAK_C") bench/run.sh\`"
	echo "- code: $tree"
	echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
	echo "- $(go version | cut -d' ' -f3-), $(redis-server --version | cut -d' ' -f1-3), ghz $GHZ_VERSION"
	echo "- the load generator, redis-server, arbiter and floor all run on this machine and share its $(nproc) CPUs; traffic is loopback"
	echo "- $BENCH_DURATION per run, after a $BENCH_WARMUP ghz warm-up per scenario at c=$max_c; min($BENCH_CONNECTIONS, c) connections; runs interleaved per concurrency level"
	echo "- B0: Health/Check on arbiter; B2: Decide on bench/floor (Redis load only) with $BENCH_FLOOR_CANDIDATES-candidate requests; D(N): Decide on arbiter with N candidates; both Decide servers with -pipeline-workers $BENCH_PIPELINE_WORKERS, arbiter with -hcp-cache $BENCH_HCP_CACHE; requests $([[ $BENCH_CANDIDATE_SETS == 1 ]] && echo 'name the candidate set first-N' || echo 'list the N candidate ids')"
	echo "- arbiter's catalog: bench/catalog -n $BENCH_CATALOG_ACTIONS (deterministic; channels, topics, specialties, purposes, ~85% of content MLR-approved, some pending, expired, withdrawn, rejected)"
	echo "- Decide requests: the first N catalog actions, limit 3, caller REP_TOOL, hcp_id chosen by -keys $BENCH_KEYS over HCP-000001..$(printf 'HCP-%06d' "$BENCH_HCPS"); min($BENCH_REQUESTS, HCPs, 2e6/N) messages per file"
	echo "- clients: ghz (dynamic messages)$([[ $BENCH_PROBE == 1 ]] && echo "; probe (bench/probe, generated Go types: a cheaper client, as a cross-check)")"
	echo
	echo "| client | scenario | c | rps | rps min–max (rounds) | p50 ms | p99 ms | calls | errors | cores used | other cores | server µs/call | redis µs/call | client µs/call |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	for c in "${levels[@]}"; do
		for client in "${clients[@]}"; do
			for s in "${scenarios[@]}"; do
				read -r rps p50 p99 n errs cores other srv rds cl < <(figures "$client" "$s" "$c")
				printf '| %s | %s | %s | %.0f | %s | %.3f | %.3f | %.0f | %.0f | %.2f | %.2f | %.0f | %.0f | %.0f |\n' \
					"$client" "${label_of[$s]}" "$c" "$rps" "$(rps_range "$client" "$s" "$c")" "$p50" "$p99" "$n" "$errs" "$cores" "$other" "$srv" "$rds" "$cl"
			done
		done
	done
	echo
	echo "$( ((BENCH_ROUNDS > 1)) && echo "Each figure is the median of $BENCH_ROUNDS rounds of the whole sweep, each column on its own; the range is of rps. ")Errors exclude the calls ghz cuts when the duration ends. CPU, from /proc: cores used is what the server under test, redis-server and the client used during the run; other cores is what the rest of the machine used (more than ~0.05: something else competed for the CPUs); µs/call is each process's user + system time over the calls made (the client's includes its start-up, which grows with the request file: ghz decodes every message first)."
	echo
	if [[ $BENCH_METRICS == 1 ]]; then
		echo "## Server time per decision"
		echo
		echo "arbiter_decide_seconds from arbiter's /metrics, scraped before and after each run (with several rounds: decisions summed, the rest medians of the rounds): the server's own time per Decide, from the handler's start to the response built (validation, load, rules, scoring), without the transport, the client or the queueing before the handler. Buckets are 25% wide; quantiles are interpolated within them."
		echo
		echo "| client | scenario | c | target rps | decisions | server p50 ms | server p99 ms | client p50 ms | client p99 ms |"
		echo "|---|---|--:|--:|--:|--:|--:|--:|--:|"
		jq -rs 'def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
			map(.bench | select(.server_time != null)) | group_by([.client, .scenario, .c, .target_rps])[]
			| [.[0].client, .[0].scenario, .[0].c, (.[0].target_rps // "–"), (map(.server_time.decisions) | add),
				(map(.server_time.p50_ms) | median * 1000 | round / 1000), (map(.server_time.p99_ms) | median * 1000 | round / 1000),
				(map(.p50_ms) | median * 1000 | round / 1000), (map(.p99_ms) | median * 1000 | round / 1000)] | @tsv
		' "$BENCH_OUT"/raw/*.json | sort -t$'\t' -k2,2 -k3,3n -k1,1 | while IFS=$'\t' read -r cl sc cc tr nd s50 s99 c50 c99; do
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$cl" "${label_of[$sc]}" "$cc" "$tr" "$nd" "$s50" "$s99" "$c50" "$c99"
		done
		echo
	fi
	echo "Plots: [scaling.svg](scaling.svg) (ghz; rps and p99 against N, B0 and B2 as dashed lines)$( ((${#levels[@]} > 1)) && echo ", [concurrency.svg](concurrency.svg) (the same runs against c)")$([[ $BENCH_OPENLOOP == 1 ]] && echo ", [openloop.svg](openloop.svg) (the open-loop sweep)")."
	echo
	printf '| client | c |'
	for n in "${cands[@]}"; do printf ' D(%s)/B0 rps | D(%s)/B2 rps | D(%s)/B0 p99 |' "$n" "$n" "$n"; done
	echo
	printf '|---|--:|'
	for n in "${cands[@]}"; do printf -- '--:|--:|--:|'; done
	echo
	for c in "${levels[@]}"; do
		for client in "${clients[@]}"; do
			read -r b0_rps _ b0_p99 _ < <(figures "$client" B0 "$c")
			read -r b2_rps _ < <(figures "$client" B2 "$c")
			printf '| %s | %s |' "$client" "$c"
			for n in "${cands[@]}"; do
				read -r d_rps _ d_p99 _ < <(figures "$client" "D$n" "$c")
				printf ' %s | %s | %s |' "$(ratio "$d_rps" "$b0_rps")" "$(ratio "$d_rps" "$b2_rps")" "$(ratio "$d_p99" "$b0_p99")"
			done
			echo
		done
	done
	echo
	echo "## Stored HCPs: seeding and Redis memory"
	echo
	echo "\`arbiter seed\` (features.Import, pipelined batches of 1000) into an empty redis-server; bytes per HCP = growth of INFO memory used_memory / HCPs (and used_memory / HCPs, with Redis's own ~1 MB)."
	echo
	echo "| HCPs | seed s | HCPs/s | used_memory MiB | bytes/HCP (growth) | used_memory / HCPs | <= 1 KB per HCP |"
	echo "|--:|--:|--:|--:|--:|--:|---|"
	seed_line small
	[[ $BENCH_SCALE == 1 ]] && seed_line large
	if ((${#scale_runs[@]} > 0)); then
		echo
		echo "D($BENCH_SCALE_CANDIDATES) at c=$BENCH_SCALE_CONCURRENCY, ghz, small and large store interleaved (two rounds), requests -keys $BENCH_KEYS over each store's population:"
		echo
		echo "| store | round | rps | p50 ms | p99 ms | calls | errors | other cores | server µs/call | redis µs/call |"
		echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
		for r in "${scale_runs[@]}"; do
			read -r rps p50 p99 n errs _ other srv rds _ < <(figures ghz "$r" "$BENCH_SCALE_CONCURRENCY")
			printf '| %s | %s | %.0f | %.3f | %.3f | %s | %s | %.2f | %.0f | %.0f |\n' \
				"${label_of[${r%?}]}" "${r: -1}" "$rps" "$p50" "$p99" "$n" "$errs" "$other" "$srv" "$rds"
		done
		c=$BENCH_SCALE_CONCURRENCY
		mean() { jq -s "map(.bench.$1) | add / length" "$BENCH_OUT/raw/ghz-${2}1-c$c.json" "$BENCH_OUT/raw/ghz-${2}2-c$c.json"; }
		s50=$(mean p50_ms S) l50=$(mean p50_ms L) s99=$(mean p99_ms S) l99=$(mean p99_ms L)
		echo
		echo "- issue 3: latency flat within 10% from $BENCH_HCPS to $BENCH_SCALE_HCPS HCPs (mean of the two rounds, large / small): p50 $(vratio "$l50" "$s50"), p99 $(vratio "$l99" "$s99"): $(atmost "$(xratio "$l50" "$s50")" 1.10) (p50), $(atmost "$(xratio "$l99" "$s99")" 1.10) (p99)"
	fi
	if [[ $BENCH_REDIS_BENCHMARK == 1 ]]; then
		echo
		echo "## Redis alone with Decide's command mix"
		echo
		p_ops=$(rb_ops p) c_ops=$(rb_ops consent)
		echo "redis-benchmark -c $max_c -P 2 -n $rb_n, HGETALL of $PREFIX:{$rb_id}:p and of $PREFIX:{$rb_id}:consent, each on its own (redis-benchmark runs one command per test); a decision needs one of each:"
		echo
		echo "| command | ops/s |"
		echo "|---|--:|"
		echo "| HGETALL $PREFIX:{$rb_id}:p | $p_ops |"
		echo "| HGETALL $PREFIX:{$rb_id}:consent | $c_ops |"
		echo "| decisions/s Redis could serve (1 / (1/p + 1/consent)) | $(awk -v a="$p_ops" -v b="$c_ops" 'BEGIN { printf "%.0f", 1 / (1 / a + 1 / b) }') |"
		echo
		echo "Note: redis-benchmark runs on the same CPUs as redis-server, as ghz does in the runs above."
	fi
	echo
	echo "## Bars"
	echo
	echo "From the issues; B0 is the empty handler. Issue 3's ratios are of throughput (rps)."
	echo
	for client in "${clients[@]}"; do
		bars "$client"
	done
	echo "- issue 3: Redis memory <= 1 KB per HCP: see the seeding table"
	if [[ $BENCH_OPENLOOP == 1 ]]; then
		echo
		echo "## Open-loop rate sweep (BENCH_OPENLOOP=1)"
		echo
		echo "Store: $ol_hcps HCPs$([[ $BENCH_SCALE == 1 ]] && echo " (the BENCH_SCALE store)" || echo " (the BENCH_HCPS store; the issue asks for 1,000,000: BENCH_SCALE=1)"). Peak = closed-loop ghz at c=$pc, $BENCH_DURATION, just before the sweep: B0 $(printf '%.0f' "$peak_b0") rps, D(100) $(printf '%.0f' "$peak_d") rps (p99 $(jq -r '.bench.p99_ms | . * 1000 | round / 1000' "$BENCH_OUT/raw/ghz-OD-peak.json") ms)."
		echo
		echo "Then B0 and D(100) interleaved at each rate (ghz --rps R, --concurrency $BENCH_OPENLOOP_CONCURRENCY --connections $((BENCH_OPENLOOP_CONCURRENCY < BENCH_CONNECTIONS ? BENCH_OPENLOOP_CONCURRENCY : BENCH_CONNECTIONS)), $BENCH_DURATION each). ghz spaces the calls evenly (not Poisson) and measures each call from its start, not from its scheduled time: if all workers are busy the schedule slips and the wait is not counted, so an achieved rate below the target (flagged) means the figures are not open-loop."
		echo
		echo "| % of D(100) peak | target rps | B0 rps | B0 p50 ms | B0 p99 ms | D(100) rps | D(100) p50 ms | D(100) p99 ms | D p99 / B0 p99 | errors B0/D |"
		echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
		for pct in "${ol_rows[@]}"; do
			read -r tb rb b50 b99 eb < <(jq -r '.bench | [.target_rps, .rps, .p50_ms, .p99_ms, .errors] | @tsv' "$BENCH_OUT/raw/ghz-OB0-r$pct.json")
			read -r _ rd d50 d99 ed < <(jq -r '.bench | [.target_rps, .rps, .p50_ms, .p99_ms, .errors] | @tsv' "$BENCH_OUT/raw/ghz-OD-r$pct.json")
			flag() { awk -v a="$1" -v t="$2" 'BEGIN { printf "%.0f%s", a, (a < 0.97 * t ? " (below target)" : "") }'; }
			printf '| %s%% | %s | %s | %.3f | %.3f | %s | %.3f | %.3f | %s | %s/%s |\n' "$pct" "$tb" "$(flag "$rb" "$tb")" "$b50" "$b99" \
				"$(flag "$rd" "$tb")" "$d50" "$d99" "$(ratio "$d99" "$b99")" "$eb" "$ed"
		done
		echo
		if [[ -f $BENCH_OUT/raw/ghz-OD-r50.json ]]; then
			od=$(jq -r .bench.p99_ms "$BENCH_OUT/raw/ghz-OD-r50.json") ob=$(jq -r .bench.p99_ms "$BENCH_OUT/raw/ghz-OB0-r50.json")
			echo "- bar: at 50% of D(100)'s peak rate, D(100) p99 <= 2 x B0 p99 at the same rate: $(vratio "$od" "$ob"): $(atmost "$(xratio "$od" "$ob")" 2) ($ol_hcps HCPs$([[ $ol_hcps -lt 1000000 ]] && echo "; the issue asks for 1,000,000"), $BENCH_DURATION runs)"
		else
			echo "- bar (50% of peak) not measured: 50 is not in BENCH_OPENLOOP_RATES"
		fi
		echo
		echo "## CPU profile of arbiter at peak (D(100), c=$pc)"
		echo
		echo "pprof CPU profile (-debug-addr, /debug/pprof/profile?seconds=$prof_s) during the peak D(100) run above: $(basename "$prof"); \`go tool pprof -top -cum -nodecount=25 bin/arbiter $prof\`:"
		echo
		echo '```'
		cat "$BENCH_OUT/profile-top.txt"
		echo '```'
	fi
} >"$md"

# The open-loop sweep: achieved rps and p99 against the offered rate.
if ((${#ol_rows[@]} > 0)); then
	for s in OB0 OD; do
		for pct in "${ol_rows[@]}"; do
			jq -r --arg name "${label_of[$s]%% (*}" '.bench | "\($name) \(.target_rps) \(.rps) \(.p99_ms)"' "$BENCH_OUT/raw/ghz-$s-r$pct.json"
		done
	done >"$BENCH_OUT/openloop.tsv"
	bench/.bin/plot -series -xlabel "offered rate (rps; ghz --rps)" -i "$BENCH_OUT/openloop.tsv" -o "$BENCH_OUT/openloop.svg" \
		-title "Arbiter, ghz, $BENCH_DURATION runs at fixed rates, $ol_hcps HCPs"
	plots+=("$BENCH_OUT/openloop.svg")
fi

cat "$md"
log "report: $md; plots: ${plots[*]}; per-run reports: $BENCH_OUT/raw/"
