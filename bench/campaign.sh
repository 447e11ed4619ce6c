#!/usr/bin/env bash
# A campaign list checked before a send: CheckSendBatch with reservations
# (arbiterctl campaign check -reserve) against DecideBatch (arbiterctl
# batch) over the same list of HCPs, on one server, interleaved.
#
#   bench/campaign.sh            # 100,000 demo HCPs, 3 rounds
#
# Builds ./cmd/arbiter and ./cmd/arbiterctl of the checkout as it is,
# starts a redis-server of its own (no persistence) seeded with the demo
# population (four weeks of touches each), and one arbiter with the demo's
# definitions and contact policy (contact/demo_policy.json: five caps, a
# gap, quiet hours). Each round runs both commands, the order alternating,
# and records their wall time, the server's and Redis's CPU (/proc), and
# the server's resident memory (VmRSS after, VmHWM: the peak). Round r
# plans its sends at 17:00 UTC (working hours in both demo markets' zones)
# 60 + 31 r days ahead, under a campaign name of its own: no window of the
# demo policy (30 days at most) holds two rounds' bookings, so every round
# does the same work, booking every send its checks allow.
#
# Knobs: BENCH_HCPS (100000), BENCH_ROUNDS (5), BENCH_ACTION (the action
# checked; default email-glucanor-efficacy, promotional email), BENCH_OUT
# (bench/out/campaign). Writes $BENCH_OUT/report.md and prints it.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
BENCH_HCPS=${BENCH_HCPS:-100000}
BENCH_ROUNDS=${BENCH_ROUNDS:-5}
BENCH_ACTION=${BENCH_ACTION:-email-glucanor-efficacy}
BENCH_OUT=${BENCH_OUT:-bench/out/campaign}

work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-campaign.XXXXXX")
. "$root/bench/lib.sh"
trap lib_cleanup EXIT
trap 'exit 130' INT TERM
lib_require go redis-server awk

log "building arbiter and arbiterctl"
go build -o "$work/arbiter" ./cmd/arbiter
go build -o "$work/arbiterctl" ./cmd/arbiterctl

start_redis redis --save '' --appendonly no
addr=127.0.0.1:$redis_port
log "seeding $BENCH_HCPS demo HCPs"
seed_start=$(date +%s.%N)
"$work/arbiter" seed -redis-addr "$addr" -demo-size "$BENCH_HCPS" -log-level warn
log "seeded in $(awk -v a="$seed_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
start arbiter "$work/arbiter" serve -listen '127.0.0.1:{PORT}' -redis-addr "$addr" \
	-catalog catalog/demo_catalog.json -model scoring/demo_model.json \
	-consent-policy consent/policy.json -contact-policy contact/demo_policy.json -log-level warn
srv=127.0.0.1:$arbiter_port

seq -f 'HCP-%06g' 1 "$BENCH_HCPS" >"$work/ids.txt"
{
	echo hcp_id
	cat "$work/ids.txt"
} >"$work/list.csv"

rss_kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
rss_before=$(rss_kb "$arbiter_pid" VmRSS)

mkdir -p "$BENCH_OUT"
rows=$work/rows.tsv
: >"$rows"
# run KIND ROUND: one command, timed, with the server's and Redis's CPU.
run() {
	local kind=$1 r=$2 t0 t1 s0 s1 r0 r1 out
	s0=$(cpu_seconds "$arbiter_pid") r0=$(cpu_seconds "$redis_pid") t0=$(date +%s.%N)
	case $kind in
	decide)
		"$work/arbiterctl" batch -addr "$srv" -ids "$work/ids.txt" -quiet 2>"$work/$kind-$r.txt"
		;;
	checksend)
		local at
		at=$(date -u -d "$((60 + 31 * r)) days" +%Y-%m-%dT17:00:00Z)
		"$work/arbiterctl" campaign check -addr "$srv" -list "$work/list.csv" -action "$BENCH_ACTION" \
			-reserve -campaign "bench-$r-$$" -at "$at" -quiet 2>"$work/$kind-$r.txt"
		;;
	esac
	t1=$(date +%s.%N) s1=$(cpu_seconds "$arbiter_pid") r1=$(cpu_seconds "$redis_pid")
	out=$(tr '\r' '\n' <"$work/$kind-$r.txt" | grep -v '^\[' | grep -v 'checked,' | tr '\n' ' ')
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$r" "$(minus "$t1" "$t0")" "$(minus "$s1" "$s0")" "$(minus "$r1" "$r0")" "$out" >>"$rows"
	log "round $r $kind: $(minus "$t1" "$t0") s: $out"
}
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	if ((r % 2)); then
		run decide "$r"
		run checksend "$r"
	else
		run checksend "$r"
		run decide "$r"
	fi
done
rss_after=$(rss_kb "$arbiter_pid" VmRSS)
rss_peak=$(rss_kb "$arbiter_pid" VmHWM)

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k { print $c }' "$rows" | median; }
d_wall=$(med decide 3) c_wall=$(med checksend 3)
d_srv=$(med decide 4) c_srv=$(med checksend 4)
d_red=$(med decide 5) c_red=$(med checksend 5)
{
	echo "## CheckSendBatch with reserve against DecideBatch, $BENCH_HCPS HCPs"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(go version | awk '{ print $3 }'), $(redis-server --version | awk '{ print $3 }'), code $(git rev-parse --short HEAD)$( [[ -n $(git status --porcelain --untracked-files=no) ]] && echo ' + uncommitted changes')."
	echo "Command: \`bench/campaign.sh\` (BENCH_HCPS=$BENCH_HCPS BENCH_ROUNDS=$BENCH_ROUNDS BENCH_ACTION=$BENCH_ACTION)."
	echo
	echo "| round | command | wall s | server CPU s | Redis CPU s | summary |"
	echo "|---|---|---|---|---|---|"
	awk -F'\t' '{ printf "| %s | %s | %.2f | %.2f | %.2f | %s |\n", $2, ($1 == "decide" ? "DecideBatch (arbiterctl batch)" : "CheckSendBatch -reserve (arbiterctl campaign check)"), $3, $4, $5, $6 }' "$rows"
	echo
	ratio=$(awk -F'\t' '$1 == "decide" { d[$2] = $3 } $1 == "checksend" { c[$2] = $3 } END { for (r in d) print c[r] / d[r] }' "$rows" | median)
	echo "**Time ratio CheckSendBatch / DecideBatch, median of the rounds' ratios: $(printf '%.2f' "$ratio")** (bar: at most 1.5)."
	awk -v dw="$d_wall" -v cw="$c_wall" -v ds="$d_srv" -v cs="$c_srv" -v dr="$d_red" -v cr="$c_red" -v n="$BENCH_HCPS" 'BEGIN {
		printf "Medians: DecideBatch %.2f s (%.0f µs server + %.0f µs Redis CPU per HCP); CheckSendBatch with reserve %.2f s (%.0f µs server + %.0f µs Redis CPU per HCP).\n", dw, ds / n * 1e6, dr / n * 1e6, cw, cs / n * 1e6, cr / n * 1e6
		printf "Ratio of the medians: %.2f.\n", cw / dw
	}'
	awk -v b="$rss_before" -v a="$rss_after" -v p="$rss_peak" 'BEGIN {
		printf "Server RSS: %.0f MiB before the rounds, %.0f MiB after, peak %.0f MiB: **growth %.0f MiB** (peak minus before; bar: under 100 MB).\n", b / 1024, a / 1024, p / 1024, (p - b) / 1024
	}'
} >"$BENCH_OUT/report.md"
cat "$BENCH_OUT/report.md"
