#!/usr/bin/env bash
# End-to-end load benchmark of Arbiter (see bench/README.md).
#
# Starts its own redis-server on a free loopback port, seeds the demo
# population, starts the real server and the I/O-floor server against it,
# and drives three scenarios with ghz (and, as a cross-check, with
# bench/probe), interleaved per concurrency level:
#
#   B0  grpc.health.v1.Health/Check on the real server  (the ceiling)
#   B2  nba.v1.DecisionService/Decide on bench/floor    (Redis load only)
#   D   nba.v1.DecisionService/Decide on the real server (the product)
#
# Writes bench/out/latest.md (table, bars, command, machine) and prints it;
# one JSON report per run goes to bench/out/raw/. Stops everything it
# started on exit. Knobs (environment, defaults below): BENCH_DURATION,
# BENCH_WARMUP, BENCH_CONCURRENCY, BENCH_CONNECTIONS, BENCH_HCPS,
# BENCH_CANDIDATES, BENCH_PIPELINE_WORKERS, BENCH_PROBE, BENCH_OUT,
# BENCH_FLOOR_CPUPROFILE.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

# ghz is a tool binary, never a dependency of the module. v0.121.0 is the
# newest tag the Go module proxy serves that installs (go list -m -versions
# shows only up to v0.93.0: the v0.1xx tags are not listed but resolve).
GHZ_VERSION=v0.121.0
GHZ=$root/bench/.bin/ghz

BENCH_DURATION=${BENCH_DURATION:-30s}
BENCH_WARMUP=${BENCH_WARMUP:-10s}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-1 16 50}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-4}
BENCH_HCPS=${BENCH_HCPS:-10000}
BENCH_CANDIDATES=${BENCH_CANDIDATES:-50}
BENCH_OUT=${BENCH_OUT:-bench/out}
BENCH_PIPELINE_WORKERS=${BENCH_PIPELINE_WORKERS:-4}
BENCH_PROBE=${BENCH_PROBE:-1}
BENCH_FLOOR_CPUPROFILE=${BENCH_FLOOR_CPUPROFILE:-}
PREFIX=bench

# The servers are configured by flags below only; an ARBITER_* variable from
# the caller's shell (a catalog, a model) must not change what is measured.
unset "${!ARBITER_@}"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

command -v jq >/dev/null || die "jq is required (apt-get install jq)"
command -v redis-server >/dev/null || die "redis-server is required (apt-get install redis-server)"

# ------------------------------------------------------------------ cleanup

work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-bench.XXXXXX")
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a loopback port nothing listens on (the caller retries if it
# is taken before use).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		port_open "$p" || { echo "$p"; return; }
	done
}

# start NAME CMD...: start CMD in the background with {PORT} replaced by a
# free port, retrying on another port if it cannot listen; sets NAME_port
# and NAME_pid.
start() {
	local name=$1 attempt port pid
	shift
	for attempt in 1 2 3; do
		port=$(free_port)
		"${@//\{PORT\}/$port}" >"$work/$name.log" 2>&1 &
		pid=$!
		for _ in $(seq 100); do
			if port_open "$port"; then
				pids+=("$pid")
				printf -v "${name}_port" '%s' "$port"
				printf -v "${name}_pid" '%s' "$pid"
				return
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	cat "$work/$name.log" >&2
	die "$name did not start"
}

# cpu_seconds PID: user + system CPU time PID has used so far, all threads.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# busy_seconds: CPU time the whole machine has spent busy so far, all CPUs.
busy_seconds() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }

# minus A B: A - B.
minus() { awk -v a="$1" -v b="$2" 'BEGIN { print a - b }'; }

# ------------------------------------------------------------------ build

log "building bin/arbiter and the bench tools"
tree=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || tree="$tree + uncommitted changes"
go build -o bin/arbiter ./cmd/arbiter
go build -o bench/.bin/floor ./bench/floor
go build -o bench/.bin/requests ./bench/requests
go build -o bench/.bin/probe ./bench/probe

if [[ ! -x $GHZ ]] || ! go version -m "$GHZ" | grep -q "mod[[:space:]]*github.com/bojand/ghz[[:space:]]*$GHZ_VERSION"; then
	log "installing ghz $GHZ_VERSION into bench/.bin"
	GOBIN=$root/bench/.bin go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
fi

# ------------------------------------------------------------------ servers

start redis redis-server --bind 127.0.0.1 --port '{PORT}' \
	--save '' --appendonly no --dir "$work" --daemonize no
log "redis-server on 127.0.0.1:$redis_port"

log "seeding $BENCH_HCPS demo HCPs (prefix $PREFIX)"
bin/arbiter seed -redis-addr "127.0.0.1:$redis_port" -redis-prefix "$PREFIX" \
	-demo-size "$BENCH_HCPS" -log-level warn

start arbiter env ARBITER_LOG_LEVEL=warn ARBITER_REDIS_ADDR="127.0.0.1:$redis_port" \
	ARBITER_REDIS_PREFIX="$PREFIX" ARBITER_DEMO_SIZE="$BENCH_HCPS" ARBITER_LISTEN='127.0.0.1:{PORT}' \
	ARBITER_PIPELINE_WORKERS="$BENCH_PIPELINE_WORKERS" bin/arbiter
log "arbiter on 127.0.0.1:$arbiter_port"

floor_args=(-redis-addr "127.0.0.1:$redis_port" -redis-prefix "$PREFIX" -pipeline-workers "$BENCH_PIPELINE_WORKERS")
[[ -n $BENCH_FLOOR_CPUPROFILE ]] && floor_args+=(-cpuprofile "$BENCH_FLOOR_CPUPROFILE")
start floor bench/.bin/floor -listen '127.0.0.1:{PORT}' "${floor_args[@]}"
log "floor on 127.0.0.1:$floor_port"

# ------------------------------------------------------------------ load

mkdir -p "$BENCH_OUT/raw"
rm -f "$BENCH_OUT"/raw/*.json

# One DecideRequest per HCP (bench/requests): the first BENCH_CANDIDATES
# catalog actions, limit 3, a rep tool calling, in ghz's binary format.
# ghz decodes them once at start-up and sends call i the (i mod N)-th, so
# the load walks the whole population round-robin. bench/probe builds the
# same requests itself.
requests=$work/decide-requests.bin
bench/.bin/requests -hcps "$BENCH_HCPS" -candidates "$BENCH_CANDIDATES" -limit 3 -o "$requests"

# load CLIENT SCENARIO CONCURRENCY DURATION OUTPUT: one closed-loop run.
# Every run has the same settings: plaintext, min(BENCH_CONNECTIONS, c)
# connections (ghz needs connections <= c); ghz finds the methods by
# reflection and does no template processing. OUTPUT is the client's own
# report (ghz's without the per-call details) plus .bench: the figures the
# table uses, and the CPU time the server under test, redis-server, the
# client and the whole machine used during the run.
load() {
	local client=$1 scenario=$2 c=$3 dur=$4 out=$5 addr pid cmd
	local conns=$((c < BENCH_CONNECTIONS ? c : BENCH_CONNECTIONS))
	case $scenario in
	B0) addr=127.0.0.1:$arbiter_port pid=$arbiter_pid ;;
	B2) addr=127.0.0.1:$floor_port pid=$floor_pid ;;
	D) addr=127.0.0.1:$arbiter_port pid=$arbiter_pid ;;
	esac
	case $client/$scenario in
	ghz/B0) cmd=("$GHZ" --call grpc.health.v1.Health/Check) ;;
	ghz/*) cmd=("$GHZ" --call nba.v1.DecisionService/Decide --binary-file "$requests") ;;
	probe/B0) cmd=(bench/.bin/probe -call health) ;;
	probe/*) cmd=(bench/.bin/probe -call decide -hcps "$BENCH_HCPS" -candidates "$BENCH_CANDIDATES") ;;
	esac
	case $client in
	ghz) cmd+=(--insecure --disable-template-functions --disable-template-data
		--connections "$conns" --concurrency "$c" --duration "$dur"
		--format json --output "$work/report.json" "$addr") ;;
	probe) cmd+=(-addr "$addr" -connections "$conns" -c "$c" -d "$dur") ;;
	esac

	local server0 redis0 busy0 TIMEFORMAT='%3U %3S'
	server0=$(cpu_seconds "$pid") redis0=$(cpu_seconds "$redis_pid") busy0=$(busy_seconds)
	if ! { time "${cmd[@]}" >"$work/stdout" 2>"$work/stderr"; } 2>"$work/time"; then
		cat "$work/stderr" >&2
		die "$client failed: $scenario c=$c"
	fi
	[[ $client == probe ]] && mv "$work/stdout" "$work/report.json"

	# ghz cuts the calls in flight when the duration ends ("use of closed
	# network connection", "transport is closing", "the client connection
	# is closing"; at most c per run): those are not errors.
	jq --arg client "$client" --arg scenario "$scenario" --argjson c "$c" \
		--argjson server "$(minus "$(cpu_seconds "$pid")" "$server0")" \
		--argjson redis "$(minus "$(cpu_seconds "$redis_pid")" "$redis0")" \
		--argjson load "$(awk '{ print $1 + $2 }' "$work/time")" \
		--argjson machine "$(minus "$(busy_seconds)" "$busy0")" '
		def pct(p): ([.latencyDistribution[]? | select(.percentage == p) | .latency][0] // 0) / 1e6;
		del(.details, .options.data)
		| .bench = {client: $client, scenario: $scenario, c: $c}
		| .bench += if $client == "ghz" then {
			rps: .rps, p50_ms: pct(50), p99_ms: pct(99), calls: .count, seconds: (.total / 1e9),
			errors: ([.errorDistribution // {} | to_entries[]
				| select(.key | test("closed network connection|client connection is closing|transport is closing") | not) | .value] | add // 0)}
		  else {rps: .rps, p50_ms: .p50_ms, p99_ms: .p99_ms, calls: .calls, seconds: .seconds, errors: .errors} end
		| .bench.cpu_seconds = {server: $server, redis: $redis, client: $load, machine: $machine}
	' "$work/report.json" >"$out"
}

read -r -a levels <<<"$BENCH_CONCURRENCY"
max_c=$(printf '%s\n' "${levels[@]}" | sort -n | tail -1)
clients=(ghz)
[[ $BENCH_PROBE == 1 ]] && clients+=(probe)

log "warm-up: $BENCH_WARMUP per scenario at c=$max_c"
for s in B0 B2 D; do
	load ghz "$s" "$max_c" "$BENCH_WARMUP" "$work/warmup.json"
done

for c in "${levels[@]}"; do
	for client in "${clients[@]}"; do
		for s in B0 B2 D; do
			log "$client $s c=$c for $BENCH_DURATION"
			load "$client" "$s" "$c" "$BENCH_DURATION" "$BENCH_OUT/raw/$client-$s-c$c.json"
		done
	done
done

# ------------------------------------------------------------------ report

# figures CLIENT SCENARIO C: "rps p50 p99 calls errors cores other server_us
# redis_us client_us" of a run. cores is the CPU the server under test,
# redis-server and the client used, other what the rest of the machine
# used, in cores; *_us is CPU time per call in microseconds.
figures() {
	jq -r '.bench | .cpu_seconds as $t | [.rps, .p50_ms, .p99_ms, .calls, .errors,
		(($t.server + $t.redis + $t.client) / .seconds),
		(([$t.machine - $t.server - $t.redis - $t.client, 0] | max) / .seconds),
		($t.server / .calls * 1e6), ($t.redis / .calls * 1e6), ($t.client / .calls * 1e6)] | @tsv
	' "$BENCH_OUT/raw/$1-$2-c$3.json"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
atleast() { awk -v x="$1" -v bar="$2" 'BEGIN { print (x >= bar ? "met" : "NOT met") }'; }
atmost() { awk -v x="$1" -v bar="$2" 'BEGIN { print (x <= bar ? "met" : "NOT met") }'; }

# bars CLIENT: the issue's bars, from CLIENT's runs.
bars() {
	local b0_rps b0_p99 d_rps d_p99 d_p50 r p
	if [[ -f $BENCH_OUT/raw/$1-D-c16.json ]]; then
		read -r b0_rps _ b0_p99 _ < <(figures "$1" B0 16)
		read -r d_rps _ d_p99 _ < <(figures "$1" D 16)
		r=$(ratio "$d_rps" "$b0_rps") p=$(ratio "$d_p99" "$b0_p99")
		echo "- $1 (a) c=16, D rps >= 0.40 x B0 rps: $r: $(atleast "$r" 0.40)"
		echo "- $1 (a) c=16, D p99 <= 2.5 x B0 p99: $p: $(atmost "$p" 2.5)"
	else
		echo "- $1 (a) not measured (needs c=16)"
	fi
	if [[ -f $BENCH_OUT/raw/$1-D-c1.json ]]; then
		read -r _ d_p50 _ < <(figures "$1" D 1)
		printf -- '- %s (b) c=1, D p50 <= 0.300 ms: %.3f ms: %s\n' "$1" "$d_p50" "$(atmost "$d_p50" 0.3)"
	else
		echo "- $1 (b) not measured (needs c=1)"
	fi
}

md=$BENCH_OUT/latest.md
{
	echo "# Arbiter end-to-end benchmark"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- command: \`BENCH_DURATION=$BENCH_DURATION BENCH_WARMUP=$BENCH_WARMUP BENCH_CONCURRENCY='$BENCH_CONCURRENCY' BENCH_CONNECTIONS=$BENCH_CONNECTIONS BENCH_HCPS=$BENCH_HCPS BENCH_CANDIDATES=$BENCH_CANDIDATES BENCH_PIPELINE_WORKERS=$BENCH_PIPELINE_WORKERS BENCH_PROBE=$BENCH_PROBE bench/run.sh\`"
	echo "- code: $tree"
	echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
	echo "- $(go version | cut -d' ' -f3-), $(redis-server --version | cut -d' ' -f1-3), ghz $GHZ_VERSION"
	echo "- the load generator, redis-server, arbiter and floor all run on this machine and share its $(nproc) CPUs; traffic is loopback"
	echo "- $BENCH_DURATION per run, after a $BENCH_WARMUP ghz warm-up per scenario at c=$max_c; min($BENCH_CONNECTIONS, c) connections; runs interleaved per concurrency level"
	echo "- B0: Health/Check on arbiter; B2: Decide on bench/floor (Redis load only); D: Decide on arbiter; both Decide servers with -pipeline-workers $BENCH_PIPELINE_WORKERS"
	echo "- Decide requests: $BENCH_CANDIDATES candidates, limit 3, caller REP_TOOL, hcp_id round-robin over HCP-000001..$(printf 'HCP-%06d' "$BENCH_HCPS")"
	echo "- clients: ghz (dynamic messages); probe (bench/probe, generated Go types: a cheaper client, as a cross-check)"
	echo
	echo "| client | scenario | c | rps | p50 ms | p99 ms | calls | errors | cores used | other cores | server µs/call | redis µs/call | client µs/call |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	for c in "${levels[@]}"; do
		for client in "${clients[@]}"; do
			for s in B0 B2 D; do
				read -r rps p50 p99 n errs cores other srv rds cl < <(figures "$client" "$s" "$c")
				printf '| %s | %s | %s | %.0f | %.3f | %.3f | %s | %s | %.2f | %.2f | %.0f | %.0f | %.0f |\n' \
					"$client" "$s" "$c" "$rps" "$p50" "$p99" "$n" "$errs" "$cores" "$other" "$srv" "$rds" "$cl"
			done
		done
	done
	echo
	echo "Errors exclude the calls ghz cuts when the duration ends. CPU, from /proc: cores used is what the server under test, redis-server and the client used during the run; other cores is what the rest of the machine used (more than ~0.05: something else competed for the CPUs); µs/call is each process's user + system time over the calls made (the client's includes its start-up: ~0.4 s for ghz with the Decide requests)."
	echo
	echo "| client | c | D/B0 rps | D/B0 p99 | D/B2 rps | D/B2 p99 |"
	echo "|---|--:|--:|--:|--:|--:|"
	for c in "${levels[@]}"; do
		for client in "${clients[@]}"; do
			read -r b0_rps _ b0_p99 _ < <(figures "$client" B0 "$c")
			read -r b2_rps _ b2_p99 _ < <(figures "$client" B2 "$c")
			read -r d_rps _ d_p99 _ < <(figures "$client" D "$c")
			printf '| %s | %s | %s | %s | %s | %s |\n' "$client" "$c" \
				"$(ratio "$d_rps" "$b0_rps")" "$(ratio "$d_p99" "$b0_p99")" \
				"$(ratio "$d_rps" "$b2_rps")" "$(ratio "$d_p99" "$b2_p99")"
		done
	done
	echo
	echo "Bars (from the issue; B0 is the empty handler):"
	echo
	for client in "${clients[@]}"; do
		bars "$client"
	done
} >"$md"

cat "$md"
log "report: $md; per-run reports: $BENCH_OUT/raw/"
