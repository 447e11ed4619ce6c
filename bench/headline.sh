#!/usr/bin/env bash
# The figures `make bench` ends with: the cost ratio first (bench/cost.sh's
# report), then the throughput ratios of bench/run.sh's report as
# secondary figures (on CPUs shared with the load generator, those are
# bounded by its own CPU: bench/bound.sh).
#
#   bench/headline.sh [COST_REPORT [RUN_REPORT]]   # default bench/out/cost/report.md bench/out/latest.md
set -euo pipefail
cd "$(dirname "$0")/.."
cost=${1:-bench/out/cost/report.md}
runs=${2:-bench/out/latest.md}
[[ -f $cost ]] || {
	echo "headline: no $cost (run bench/cost.sh)" >&2
	exit 1
}
echo
echo "== Cost per decision (server + Redis CPU per Decide / per Ping, median of rounds, with their range; bar 2.0x)"
grep '^- \*\*.*cost ratio' "$cost" | sed 's/\*\*//g'
grep -E '^\| \*\*(DecideBatch|CheckSendBatch)' "$cost" | sed -e 's/\*\*//g' -e 's/^| /- /' -e 's/ | / : /' -e 's/ |$//' || true
if [[ -f $runs ]]; then
	echo
	echo "== Throughput ratios (secondary: bounded by the load generator's CPU, bench/bound.sh)"
	awk '/^## Bars/ { on = 1; next } /^## / { on = 0 } on && /^- / { print }' "$runs"
fi
