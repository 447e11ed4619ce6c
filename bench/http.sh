#!/usr/bin/env bash
# HTTP/JSON Decide against gRPC Decide and against a trivial net/http
# handler, in the same run: server CPU per call (from /proc) and throughput.
#
#   bench/http.sh          # BENCH_ROUNDS (5) rounds of BENCH_DURATION (5s) each
#
# One redis-server (no persistence) seeded with BENCH_HCPS (10,000) demo
# HCPs; arbiter serve on the demo definitions with -http-listen (receipts
# async, admission bound high so that nothing is shed); bench/httpfloor, a
# net/http server answering a fixed JSON body. Each round runs, in an order
# that rotates from round to round: gRPC Decide (bench/probe -call decide),
# HTTP/JSON Decide (POST /v1/recipients/{id}:decide, HTTP/1.1 keep-alive,
# -call http-decide) and GET on the floor (-call http-get), each a closed
# loop of BENCH_CONCURRENCY (16) callers with BENCH_CANDIDATES (50)
# candidates per Decide. For each run it reads the CPU time the server
# (arbiter, or the floor) and Redis used. Prints the medians of the rounds
# and writes them to bench/out/http.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d)
# shellcheck source=bench/lib.sh
source bench/lib.sh
trap lib_cleanup EXIT

ROUNDS=${BENCH_ROUNDS:-5}
DUR=${BENCH_DURATION:-5s}
C=${BENCH_CONCURRENCY:-16}
HCPS=${BENCH_HCPS:-10000}
CANDS=${BENCH_CANDIDATES:-50}
lib_require redis-server go awk

log "building arbiter, the probe and the floor"
go build -o "$work/arbiter" ./cmd/arbiter
go build -o "$work/probe" ./bench/probe
go build -o "$work/httpfloor" ./bench/httpfloor

start_redis redis --save '' --appendonly no
"$work/arbiter" seed -redis-addr "127.0.0.1:$redis_port" -demo-size "$HCPS" -log-level warn
hport=$(free_port)
start arbiter "$work/arbiter" serve -listen '127.0.0.1:{PORT}' -http-listen "127.0.0.1:$hport" \
	-redis-addr "127.0.0.1:$redis_port" -catalog catalog/demo_catalog.json -model scoring/demo_model.json \
	-consent-policy consent/policy.json -durability off -max-in-flight 1024 -log-level warn
start floor "$work/httpfloor" -listen '127.0.0.1:{PORT}'

probe() { # KIND DURATION: one closed loop; prints the probe's JSON line
	case $1 in
	grpc) "$work/probe" -addr "127.0.0.1:$arbiter_port" -call decide -c "$C" -connections 4 -d "$2" -hcps "$HCPS" -candidates "$CANDS" ;;
	http) "$work/probe" -url "http://127.0.0.1:$hport" -call http-decide -c "$C" -d "$2" -hcps "$HCPS" -candidates "$CANDS" ;;
	floor) "$work/probe" -url "http://127.0.0.1:$floor_port/" -call http-get -c "$C" -d "$2" ;;
	esac
}
field() { sed -E "s/.*\"$1\":([0-9.eE+-]+).*/\1/"; }

log "warm-up"
for k in grpc http floor; do probe "$k" 2s >/dev/null; done

kinds=(grpc http floor)
: >"$work/runs.tsv"
for ((r = 0; r < ROUNDS; r++)); do
	for ((j = 0; j < 3; j++)); do
		k=${kinds[(r + j) % 3]}
		pid=$arbiter_pid
		[[ $k == floor ]] && pid=$floor_pid
		s0=$(cpu_seconds "$pid") r0=$(cpu_seconds "$redis_pid")
		out=$(probe "$k" "$DUR")
		s1=$(cpu_seconds "$pid") r1=$(cpu_seconds "$redis_pid")
		calls=$(field calls <<<"$out") rps=$(field rps <<<"$out") errs=$(field errors <<<"$out") p50=$(field p50_ms <<<"$out")
		awk -v k="$k" -v c="$calls" -v rps="$rps" -v e="$errs" -v p="$p50" -v s="$(minus "$s1" "$s0")" -v rd="$(minus "$r1" "$r0")" \
			'BEGIN { printf "%s\t%.0f\t%.1f\t%.1f\t%s\t%s\n", k, rps, s * 1e6 / c, rd * 1e6 / c, e, p }' >>"$work/runs.tsv"
		log "round $((r + 1)) $k: $(tail -1 "$work/runs.tsv")"
	done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
col() { awk -v k="$1" -v c="$2" -F'\t' '$1 == k { print $c }' "$work/runs.tsv" | median; }
mkdir -p bench/out
{
	echo "| call | rps | server CPU µs/call | Redis CPU µs/call | p50 ms |"
	echo "|---|---|---|---|---|"
	for k in grpc http floor; do
		printf '| %s | %s | %s | %s | %s |\n' "$k" "$(col "$k" 2)" "$(col "$k" 3)" "$(col "$k" 4)" "$(col "$k" 6)"
	done
	g=$(col grpc 3) h=$(col http 3) f=$(col floor 3)
	awk -v g="$g" -v h="$h" -v f="$f" 'BEGIN { printf "\nHTTP/JSON Decide costs %.2fx the server CPU of gRPC Decide; the floor (a net/http handler) costs %.2fx of HTTP/JSON Decide.\n", h / g, f / h }'
	echo
	echo "Medians of $ROUNDS rounds of $DUR, $C callers, $CANDS candidates, $HCPS HCPs; $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); $(go version | awk '{ print $3 }'); $(date -u +%Y-%m-%d)."
	errs=$(awk -F'\t' '{ s += $5 } END { print s + 0 }' "$work/runs.tsv")
	echo "Errors: $errs."
} | tee bench/out/http.md
