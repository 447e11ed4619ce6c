#!/usr/bin/env bash
# What one recipient's consent ledger costs as it grows (see bench/README.md,
# "Consent ledger growth: bench/ledger.sh").
#
#   bench/ledger.sh [REV] [bench/ledger flags...]   # REV default HEAD; "." is the checkout as it is
#   bench/ledger.sh HEAD -changes 2000 -block 500   # a short run
#
# Builds ./cmd/arbiter of REV in a git worktree (/tmp/arb-<sha>), starts a
# redis-server of its own with production-like durability (--appendonly
# yes --appendfsync always: every acknowledged change is on disk), seeds
# the demo population with that binary, starts arbiter on it (-catalog the
# 1000-action bench catalog, -model, -consent-policy from REV's tree) and
# runs bench/ledger against it: SetConsent calls to HCP-000001, one at a
# time, in blocks, with a Decide closed loop for the other HCPs after each
# block, the CPU arbiter and Redis spend per change (/proc) and the bytes
# the append-only file grows by per change.
#
# Writes $BENCH_OUT/<sha>.md (default bench/out/ledger/, git-ignored; the
# report) and <sha>.json (bench/ledger's figures), and prints the report.
# Stops everything it started on exit, and deletes Redis's data.
#
# Knobs (environment): LEDGER_AOF_REWRITE (0: Redis's automatic AOF
# rewrite off, so the file's growth is exactly the bytes appended; 1:
# Redis's default, as in production), LEDGER_CANDIDATES (100: candidates
# per Decide), BENCH_TOOLS_REV (HEAD: the revision whose bench/requests
# writes the Decide requests), BENCH_OUT; ARB (a prebuilt binary instead
# of building REV; files still from REV's tree), SEED_ARGS (default
# "seed"), ARGS (extra server flags), MODEL, POLICY (files instead of the
# tree's).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

REV=HEAD
if [[ $# -gt 0 && $1 != -* ]]; then
	REV=$1
	shift
fi
LEDGER_AOF_REWRITE=${LEDGER_AOF_REWRITE:-0}
LEDGER_CANDIDATES=${LEDGER_CANDIDATES:-100}
BENCH_TOOLS_REV=${BENCH_TOOLS_REV:-HEAD}
BENCH_OUT=${BENCH_OUT:-bench/out/ledger}
PREFIX=bench
HCPS=10000 # the demo population `arbiter seed` writes by default

# lib.sh's per-side knobs are named after the side, L here.
for v in ARB SEED_ARGS ARGS MODEL POLICY; do
	[[ -n ${!v:-} ]] && printf -v "${v}_L" '%s' "${!v}"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/arbiter-ledger.XXXXXX")
. "$root/bench/lib.sh"
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

lib_require go git jq redis-server redis-cli

# The recipient bench/ledger changes, as its flags will say.
hcp=HCP-000001
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	-hcp | --hcp) hcp=${args[i + 1]:-$hcp} ;;
	-hcp=* | --hcp=*) hcp=${args[i]#*=} ;;
	esac
done

# ------------------------------------------------------------------ build

tools_tree=$(lib_tree "$BENCH_TOOLS_REV")
build_tool requests "$work/requests"
build_tool ledger "$work/ledger"
setup_side L "$REV"
side_catalog L 1000 "$work/catalog.json"
req=$work/decide-$LEDGER_CANDIDATES.bin
"$work/requests" -catalog "$work/catalog.json" -hcps "$HCPS" -n "$HCPS" -candidates "$LEDGER_CANDIDATES" \
	-limit 3 -keys uniform -o "$req"

# ------------------------------------------------------------------ servers

redis_conf=(--save '' --appendonly yes --appendfsync always)
[[ $LEDGER_AOF_REWRITE == 1 ]] || redis_conf+=(--auto-aof-rewrite-percentage 0)
conf_text=$(printf '%q ' "${redis_conf[@]}")
conf_text=${conf_text% }
start_redis redis "${redis_conf[@]}"
aof_dir=$work/redis/$(redis-cli -p "$redis_port" config get appenddirname | tail -1)
log "redis-server on 127.0.0.1:$redis_port ($conf_text), AOF in $aof_dir"
seed_side L "$redis_port" "$work/catalog.json"
start_side L arbiter "$redis_port" "$work/catalog.json"
log "arbiter on 127.0.0.1:$arbiter_port (pid $arbiter_pid)"

# info SECTION FIELD: a field of the redis-server's INFO.
info() { redis-cli -p "$redis_port" info "$1" | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
# write_bytes: bytes redis-server has caused to be written to storage
# (/proc/PID/io; "n/a" where the kernel does not account it).
write_bytes() { awk '$1 == "write_bytes:" { print $2; found = 1 } END { if (!found) print "n/a" }' "/proc/$redis_pid/io" 2>/dev/null || echo n/a; }
snapshot() {
	echo "$(info persistence aof_current_size) $(info persistence aof_rewrites) $(write_bytes) $(info memory used_memory)"
}

# ------------------------------------------------------------------ run

mkdir -p "$BENCH_OUT"
sha=$(side L sha)
label=$([[ $sha == . ]] && echo "checkout" || echo "${sha:0:12}")
json=$BENCH_OUT/$label.json
md=$BENCH_OUT/$label.md

read -r aof0 rw0 wb0 mem0 <<<"$(snapshot)"
t0=$(date +%s.%N)
if ! "$work/ledger" -addr "127.0.0.1:$arbiter_port" -requests "$req" -server-pid "$arbiter_pid" \
	-redis-pid "$redis_pid" -aof-dir "$aof_dir" -json "$json" "$@" >"$work/ledger.md"; then
	cat "$work/ledger.md"
	tail -20 "$work/arbiter.log" >&2
	die "bench/ledger failed (arbiter's log above)"
fi
t1=$(date +%s.%N)
read -r aof1 rw1 wb1 mem1 <<<"$(snapshot)"
changes=$(jq .config.changes "$json")

# growth_row NAME BEFORE AFTER: a table row with the growth per change.
growth_row() {
	if [[ $2 == n/a || $3 == n/a || -z $2 || -z $3 ]]; then
		echo "| $1 | ${2:-n/a} | ${3:-n/a} | n/a | n/a |"
	else
		awk -v n="$1" -v a="$2" -v b="$3" -v c="$changes" 'BEGIN { printf "| %s | %.0f | %.0f | %.0f | %.0f |\n", n, a, b, b - a, (b - a) / c }'
	fi
}

{
	echo "# Consent ledger growth: $REV"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- command: \`LEDGER_AOF_REWRITE=$LEDGER_AOF_REWRITE LEDGER_CANDIDATES=$LEDGER_CANDIDATES bench/ledger.sh $REV${*:+ $*}\`"
	echo "- code: $(rev_line L)$([[ -n $(side L args) ]] && echo "; extra flags: \`$(side L args)\`")"
	echo "  - binary: $([[ $(side L bin) == "$work"/* ]] && echo "built from $(side L tree)" || side L bin); model: $(side L model); policy: $(side L policy); seeded with \`$(side L seed)\` ($HCPS demo HCPs) in $(side L seed_seconds | awk '{ printf "%.1f", $1 }') s"
	machine_lines
	echo "- redis-server: \`$conf_text\` (data in a temporary directory, deleted afterwards)"
	echo "- arbiter: -catalog bench catalog (1000 actions), log level warn; Decide requests: first $LEDGER_CANDIDATES actions, limit 3, caller REP_TOOL, the other HCPs of HCP-000001..HCP-0$HCPS round-robin"
	echo "- all processes share the machine's CPUs; the run took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }') s"
	echo
	echo "## Blocks"
	echo
	cat "$work/ledger.md"
	echo
	echo "## Redis over the run"
	echo
	echo "From the redis-server's INFO and /proc/PID/io, before the first change and after the last, so the Decide windows are included (the blocks' AOF column covers the changes only; where the two agree, Decide wrote nothing)."
	echo
	echo "| figure | before | after | growth | per change |"
	echo "|---|--:|--:|--:|--:|"
	growth_row "AOF size, bytes (INFO persistence aof_current_size)" "$aof0" "$aof1"
	growth_row "bytes written to storage (/proc/PID/io write_bytes)" "$wb0" "$wb1"
	growth_row "used_memory, bytes" "$mem0" "$mem1"
	echo
	if [[ ${rw1:-0} != "${rw0:-0}" ]]; then
		echo "Redis rewrote the AOF $((rw1 - rw0)) times during the run (LEDGER_AOF_REWRITE=1): the AOF size then understates the bytes appended."
	else
		echo "No AOF rewrite during the run: the AOF growth is the bytes Redis appended (and, with appendfsync always, fsynced before acknowledging)."
	fi
	echo
	echo "Keys of $hcp after the run (format-agnostic: SCAN $PREFIX:*$hcp*):"
	echo
	echo "| key | type | MEMORY USAGE bytes |"
	echo "|---|---|--:|"
	redis-cli -p "$redis_port" --scan --pattern "$PREFIX:*$hcp*" | sort | while read -r key; do
		echo "| \`$key\` | $(redis-cli -p "$redis_port" type "$key") | $(redis-cli -p "$redis_port" memory usage "$key") |"
	done
} >"$md"

cat "$md"
log "report: $md; figures: $json"
