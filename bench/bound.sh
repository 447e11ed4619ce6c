#!/usr/bin/env bash
# bench/bound.sh [OUT_DIR]: the best throughput ratio any server could
# reach against B0 and B2, given what the load generator itself spends.
#
# On a machine whose CPUs the load generator shares with the servers and
# Redis, closed-loop throughput is set by the CPU all of them spend per
# call. A D(N) call cannot cost less than the client's own CPU for it
# (encoding the request, decoding the response) plus the server's CPU for
# an empty call (B0's: the transport and the interceptors, no work). So
#
#     bound vs B0 = B0's total CPU per call / (client CPU per D(N) call + B0's server CPU per call)
#
# and the same with B2's total for the bound against B2: the ratio a
# server that did the decision in zero time, with zero Redis, would
# reach. (It assumes both runs keep the CPUs equally busy, as the "cores
# used" column of the report shows they do at c >= 16; at lower
# concurrency throughput is set by latency, not CPU, and no row is given.)
#
# Reads the per-run reports bench/run.sh leaves in OUT_DIR/raw (default
# bench/out); with several rounds each figure is the median of the
# rounds. Prints a Markdown table, one row per client, concurrency and
# D(N) of the main sweep.
set -euo pipefail

out=${1:-bench/out}
[[ -d $out/raw ]] || { echo "bound.sh: no $out/raw (run bench/run.sh first)" >&2; exit 1; }
command -v jq >/dev/null || { echo "bound.sh: jq is required" >&2; exit 1; }

# median FILTER CLIENT SCENARIO C: the median over the rounds of FILTER
# applied to .bench of each report of that cell; empty if there is none.
median() {
	local files=("$out/raw/$2-$3-c$4"-r[0-9]*.json)
	[[ -f ${files[0]} ]] || files=("$out/raw/$2-$3-c$4.json")
	[[ -f ${files[0]} ]] || return 0
	jq -s "map(.bench | $1) | sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end" "${files[@]}"
}
per_call() { echo "(.cpu_seconds.$1) / .calls * 1e6"; }
total='(.cpu_seconds.server + .cpu_seconds.redis + .cpu_seconds.client) / .calls * 1e6'

echo "| client | c | scenario | client µs/call | floor µs/call (client + B0's server) | B0 total µs/call | bound vs B0 | measured vs B0 | B2 total µs/call | bound vs B2 | measured vs B2 |"
echo "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|"
# Cells of the main sweep: CLIENT-SCENARIO-cC[-rR].json, scenario B0, B2 or D<N>.
for f in "$out"/raw/*-D[0-9]*-c[0-9]*.json; do
	[[ -f $f ]] || continue
	b=$(basename "$f" .json)
	b=${b%-r[0-9]*}
	IFS=- read -r client scenario c <<<"$b"
	echo "$client ${c#c} $scenario"
done | sort -u -k1,1 -k2,2n -k3,3V | while read -r client c scenario; do
	((c >= 16)) || continue
	b0_server=$(median "$(per_call server)" "$client" B0 "$c")
	b0_total=$(median "$total" "$client" B0 "$c")
	b0_rps=$(median .rps "$client" B0 "$c")
	[[ -n $b0_total ]] || continue
	b2_total=$(median "$total" "$client" B2 "$c")
	b2_rps=$(median .rps "$client" B2 "$c")
	d_client=$(median "$(per_call client)" "$client" "$scenario" "$c")
	d_rps=$(median .rps "$client" "$scenario" "$c")
	awk -v cl="$client" -v c="$c" -v s="$scenario" -v dc="$d_client" -v drps="$d_rps" \
		-v b0s="$b0_server" -v b0t="$b0_total" -v b0r="$b0_rps" -v b2t="${b2_total:-0}" -v b2r="${b2_rps:-0}" 'BEGIN {
		floor = dc + b0s
		printf "| %s | %s | D(%s) | %.0f | %.0f | %.0f | %.2f | %.2f | ", cl, c, substr(s, 2), dc, floor, b0t, b0t / floor, drps / b0r
		if (b2t > 0) printf "%.0f | %.2f | %.2f |\n", b2t, b2t / floor, drps / b2r
		else print "– | – | – |"
	}'
done
