#!/usr/bin/env bash
# CheckSend latency at concurrency 1, without and with reserve, as a
# sender asking before each send sees it (bench/checksend/main.go).
#
#   bench/checksend.sh
#
# Builds ./cmd/arbiter of the checkout as it is, starts a redis-server of
# its own seeded with the 10,000 demo HCPs (four weeks of touches each) and
# one arbiter with the demo's definitions and contact policy, then runs
# BENCH_ROUNDS (10) rounds of BENCH_CALLS (1000) calls each way. Prints the
# table the tool writes; bench/out/checksend/report.md keeps it.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
BENCH_ROUNDS=${BENCH_ROUNDS:-10}
BENCH_CALLS=${BENCH_CALLS:-1000}
BENCH_OUT=${BENCH_OUT:-bench/out/checksend}

work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-checksend.XXXXXX")
. "$root/bench/lib.sh"
trap lib_cleanup EXIT
trap 'exit 130' INT TERM
lib_require go redis-server

go build -o "$work/arbiter" ./cmd/arbiter
go build -o "$work/checksend" ./bench/checksend
start_redis redis --save '' --appendonly no
addr=127.0.0.1:$redis_port
"$work/arbiter" seed -redis-addr "$addr" -log-level warn
start arbiter "$work/arbiter" serve -listen '127.0.0.1:{PORT}' -redis-addr "$addr" \
	-catalog catalog/demo_catalog.json -model scoring/demo_model.json \
	-consent-policy consent/policy.json -contact-policy contact/demo_policy.json -log-level warn
mkdir -p "$BENCH_OUT"
{
	echo "## CheckSend at concurrency 1"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), code $(git rev-parse --short HEAD)."
	echo "Command: \`bench/checksend.sh\` ($BENCH_ROUNDS rounds of $BENCH_CALLS calls each way; the Go client's round-trip time)."
	echo
	"$work/checksend" -addr "127.0.0.1:$arbiter_port" -n "$BENCH_CALLS" -rounds "$BENCH_ROUNDS"
} | tee "$BENCH_OUT/report.md"
