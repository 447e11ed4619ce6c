# Helpers shared by bench/run.sh, bench/cost.sh, bench/versus.sh and bench/ledger.sh;
# sourced, not run.
#
# The caller sets root (the checkout the scripts live in) and work (a
# temporary directory it owns) before sourcing, runs with set -euo
# pipefail, and installs lib_cleanup as its EXIT trap. Everything started
# through start() is stopped by lib_cleanup, also on failure or Ctrl-C.
#
# Builds of arbiter under test come from git worktrees (lib_tree), never
# from the checkout's own working tree unless the revision is "." (the
# checkout as it is, uncommitted changes included): someone may be editing
# the checkout while a benchmark runs, and a worktree of a commit cannot
# change under it.

# ghz is a tool binary, never a dependency of the module; the same pin as
# bench/run.sh.
GHZ_VERSION=v0.121.0
GHZ=$root/bench/.bin/ghz

# The servers are configured by flags only: an ARBITER_* variable from the
# caller's shell (a catalog, a model) must not change what is measured.
unset "${!ARBITER_@}"

pids=()

log() { printf '== %s\n' "$*" >&2; }
die() {
	printf '%s: %s\n' "$(basename "$0")" "$*" >&2
	exit 1
}

lib_require() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || die "$c is required"
	done
}

# lib_cleanup stops what start() started, newest first (arbiter before the
# redis-server it talks to), and removes $work.
lib_cleanup() {
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
	done
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		wait "${pids[i]}" 2>/dev/null || true
	done
	[[ -n ${work:-} ]] && rm -rf "$work"
}

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a loopback port nothing listens on. arbiter does not log the
# port it got with -listen 127.0.0.1:0 at log level warn, so the scripts
# choose one and retry elsewhere if it is taken before use.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		port_open "$p" || {
			echo "$p"
			return
		}
	done
}

# start NAME CMD...: start CMD in the background with {PORT} replaced by a
# free port, retrying on another port (3 tries) if nothing listens within
# 30 s (or on $START_PORT, once); sets NAME_port and NAME_pid. Output goes
# to $work/NAME.log.
start() {
	local name=$1 attempt port pid tries=3
	shift
	[[ -n ${START_PORT:-} ]] && tries=1
	for ((attempt = 1; attempt <= tries; attempt++)); do
		port=${START_PORT:-$(free_port)}
		"${@//\{PORT\}/$port}" >"$work/$name.log" 2>&1 &
		pid=$!
		for _ in $(seq 300); do
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
	die "$name did not start: ${*//\{PORT\}/<port>}"
}

# start_redis NAME ARGS...: a redis-server of our own on a free loopback
# port (never the machine's on 6379), data in $work/NAME; ARGS are its
# persistence settings.
start_redis() {
	local name=$1
	shift
	mkdir -p "$work/$name"
	start "$name" redis-server --bind 127.0.0.1 --port '{PORT}' --dir "$work/$name" --daemonize no "$@"
}

# cpu_seconds PID: user + system CPU time PID has used so far, all threads.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# busy_seconds: CPU time the whole machine has spent busy so far, all CPUs.
busy_seconds() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }

minus() { awk -v a="$1" -v b="$2" 'BEGIN { print a - b }'; }

# ensure_ghz: ghz $GHZ_VERSION in bench/.bin (git-ignored), as run.sh does.
ensure_ghz() {
	if [[ ! -x $GHZ ]] || ! go version -m "$GHZ" | grep -q "mod[[:space:]]*github.com/bojand/ghz[[:space:]]*$GHZ_VERSION"; then
		log "installing ghz $GHZ_VERSION into bench/.bin"
		GOBIN=$root/bench/.bin go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
	fi
}

# lib_sha REV: the full commit id of REV, or "." for the checkout as is.
lib_sha() {
	[[ $1 == . ]] && {
		echo .
		return
	}
	git -C "$root" rev-parse --verify --quiet "$1^{commit}" || die "not a revision: $1"
}

# lib_tree REV: prints the directory holding REV's files: the checkout
# itself for ".", else a detached worktree /tmp/arb-<12 hex> of the commit,
# added if missing and reused if present (builds are then incremental).
# git worktree add writes only the new directory and .git/worktrees/; the
# checkout's index and files are untouched.
lib_tree() {
	local sha dir
	sha=$(lib_sha "$1")
	if [[ $sha == . ]]; then
		echo "$root"
		return
	fi
	dir=/tmp/arb-${sha:0:12}
	if [[ -d $dir ]]; then
		[[ $(git -C "$dir" rev-parse HEAD 2>/dev/null) == "$sha" ]] ||
			die "$dir exists but is not a worktree of $sha; remove it (git -C $root worktree remove --force $dir)"
	else
		# --force: the path may still be registered from a worktree whose
		# directory was deleted (a /tmp cleanup).
		git -C "$root" worktree add --quiet --force --detach "$dir" "$sha" >&2 ||
			die "git worktree add $dir $sha failed"
	fi
	echo "$dir"
}

# tree_file TREE PATH PATTERN: TREE/PATH if it exists, else the first file
# git tracks in TREE matching PATTERN (e.g. '*model*.json'), for a tree
# where the file has moved; dies if there is none.
tree_file() {
	local tree=$1 path=$2 pattern=$3 found
	if [[ -f $tree/$path ]]; then
		echo "$tree/$path"
		return
	fi
	found=$(git -C "$tree" ls-files "$pattern" | grep -v '^bench/' | head -1)
	[[ -n $found ]] || die "$tree: no $path and no tracked file matching $pattern"
	log "$tree: no $path; using $found"
	echo "$tree/$found"
}

# setup_side X REV: prepares side X (A, B, or any name) of a comparison:
# X_rev, X_sha, X_tree, X_bin (built ./cmd/arbiter, or $ARB_X when set),
# X_model, X_policy (MODEL_X, POLICY_X override), X_seed (the seed
# arguments, SEED_ARGS_X, default "seed") and X_args (ARGS_X: extra server
# flags, split on spaces).
setup_side() {
	local x=$1 rev=$2 sha tree bin v
	sha=$(lib_sha "$rev")
	tree=$(lib_tree "$rev")
	v=ARB_$x
	if [[ -n ${!v:-} ]]; then
		bin=$(realpath "${!v}")
		[[ -x $bin ]] || die "$v=$bin: not an executable"
		log "side $x: binary $bin ($v), files from $tree"
	else
		bin=$work/arbiter-$x
		log "side $x: building ./cmd/arbiter of $rev ($sha) in $tree"
		(cd "$tree" && go build -o "$bin" ./cmd/arbiter) || die "build of $rev failed"
	fi
	printf -v "${x}_rev" '%s' "$rev"
	printf -v "${x}_sha" '%s' "$sha"
	printf -v "${x}_tree" '%s' "$tree"
	printf -v "${x}_bin" '%s' "$bin"
	# Plain assignments, so that a failing tree_file stops the script.
	local model policy
	v=MODEL_$x
	model=${!v:-}
	[[ -n $model ]] || model=$(tree_file "$tree" scoring/demo_model.json '*model*.json')
	v=POLICY_$x
	policy=${!v:-}
	[[ -n $policy ]] || policy=$(tree_file "$tree" consent/policy.json '*policy*.json')
	[[ -f $model && -f $policy ]] || die "side $x: model $model or policy $policy is not a file"
	printf -v "${x}_model" '%s' "$(realpath "$model")"
	printf -v "${x}_policy" '%s' "$(realpath "$policy")"
	v=SEED_ARGS_$x
	printf -v "${x}_seed" '%s' "${!v:-seed}"
	v=ARGS_$x
	printf -v "${x}_args" '%s' "${!v:-}"
	v=TOKEN_$x
	printf -v "${x}_token" '%s' "${!v:-}"
}

# side X FIELD: the value of side X's FIELD (X_FIELD), e.g. side A bin.
side() {
	local v=${1}_$2
	echo "${!v}"
}

# rev_line X: "REV = sha, subject" of side X, for reports.
rev_line() {
	local rev sha tree
	rev=$(side "$1" rev) sha=$(side "$1" sha) tree=$(side "$1" tree)
	if [[ $sha == . ]]; then
		echo "\`.\`: the checkout $root as it is ($(git -C "$root" rev-parse --short HEAD) + $(git -C "$root" status --porcelain --untracked-files=no | wc -l) changed files)"
	else
		echo "\`$rev\` = $(git -C "$tree" log -1 --format='%h, %s' "$sha")"
	fi
}

# expand_args STRING: STRING with {REDIS_ADDR}, {PREFIX}, {CATALOG},
# {MODEL} and {POLICY} replaced by $redis_addr, $PREFIX, $catalog, $model
# and $policy (the caller's locals).
expand_args() {
	local s=$1
	s=${s//\{REDIS_ADDR\}/$redis_addr}
	s=${s//\{PREFIX\}/$PREFIX}
	s=${s//\{CATALOG\}/$catalog}
	s=${s//\{MODEL\}/$model}
	s=${s//\{POLICY\}/$policy}
	echo "$s"
}

# seed_side X REDIS_PORT CATALOG: seeds the demo population into the
# redis-server on REDIS_PORT with side X's own binary, so that the data are
# in the format that binary writes. Runs "BIN $X_seed -redis-addr ...
# -redis-prefix $PREFIX -log-level warn"; if X_seed names {REDIS_ADDR}
# itself, it is run with the placeholders filled in and nothing appended
# (for a seed command whose flags differ). Sets X_seed_seconds.
seed_side() {
	local x=$1 redis_addr=127.0.0.1:$2 catalog=$3 bin model policy seed t0 t1 args
	bin=$(side "$x" bin) model=$(side "$x" model) policy=$(side "$x" policy) seed=$(side "$x" seed)
	if [[ $seed == *'{REDIS_ADDR}'* ]]; then
		read -r -a args <<<"$(expand_args "$seed")"
	else
		read -r -a args <<<"$seed"
		args+=(-redis-addr "$redis_addr" -redis-prefix "$PREFIX" -log-level warn)
	fi
	log "side $x: seeding: $(basename "$bin") ${args[*]}"
	t0=$(date +%s.%N)
	"$bin" "${args[@]}" >"$work/seed-$x.log" 2>&1 || {
		cat "$work/seed-$x.log" >&2
		die "side $x: seeding failed (SEED_ARGS_$x)"
	}
	t1=$(date +%s.%N)
	printf -v "${x}_seed_seconds" '%s' "$(minus "$t1" "$t0")"
}

# start_side X NAME REDIS_PORT CATALOG: side X's arbiter, as the production
# server must be started: explicit Redis, catalog, model and consent
# policy files, log level warn, a free loopback port; plus $X_args. Sets
# NAME_port and NAME_pid.
start_side() {
	local x=$1 name=$2 redis_addr=127.0.0.1:$3 catalog=$4 bin model policy extra=()
	bin=$(side "$x" bin) model=$(side "$x" model) policy=$(side "$x" policy)
	read -r -a extra <<<"$(expand_args "$(side "$x" args)")"
	start "$name" "$bin" -listen '127.0.0.1:{PORT}' -redis-addr "$redis_addr" -redis-prefix "$PREFIX" \
		-catalog "$catalog" -model "$model" -consent-policy "$policy" -log-level warn "${extra[@]}"
}

# machine_lines: Markdown list items naming the machine and the tools.
machine_lines() {
	echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
	echo "- $(go version | cut -d' ' -f3-), $(redis-server --version | cut -d' ' -f1-3)"
}

# build_tool NAME OUT: builds bench/NAME into OUT from $tools_tree (the
# caller's, from BENCH_TOOLS_REV) when that tree has it, else from the
# checkout (a tool newer than the tools revision).
build_tool() {
	local name=$1 out=$2 dir=${tools_tree:-$root}
	[[ -d $dir/bench/$name ]] || dir=$root
	(cd "$dir" && go build -o "$out" "./bench/$name") || die "build of bench/$name in $dir failed"
}

# side_catalog X N OUT: the N-action bench catalog written by side X's own
# bench/catalog (checked with that side's catalog parser before writing),
# or by the tools tree's when side X's tree has none. The generator is
# deterministic, so both sides get the same bytes unless the format moved;
# the caller compares them.
side_catalog() {
	local x=$1 n=$2 out=$3 tree
	tree=$(side "$x" tree)
	if [[ -d $tree/bench/catalog ]]; then
		(cd "$tree" && go build -o "$work/catalog-$x" ./bench/catalog) || die "build of bench/catalog in $tree failed"
	else
		build_tool catalog "$work/catalog-$x"
	fi
	"$work/catalog-$x" -n "$n" -o "$out" || die "side $x: bench/catalog -n $n failed"
}

# decide_buckets ADDR: the cumulative buckets of arbiter_decide_seconds on
# the arbiter whose /metrics is on ADDR (host:port), one "le count" line each.
decide_buckets() {
	curl -sSf "http://$1/metrics" | awk '/^arbiter_decide_seconds_bucket/ {
		match($0, /le="[^"]+"/); print substr($0, RSTART + 4, RLENGTH - 5), $NF }'
}

# server_quantiles BEFORE AFTER: {"p50_ms", "p99_ms", "decisions"} of the
# arbiter_decide_seconds observations between two decide_buckets scrapes,
# interpolated within a bucket as Prometheus's histogram_quantile does
# (buckets are 25% wide: the figures are good to about that).
server_quantiles() {
	awk 'FNR == NR { before[$1] = $2; next }
	{ k++; le[k] = $1; cum[k] = $2 - before[$1] }
	END {
		total = cum[k]
		if (total <= 0) { print "null"; exit }
		printf "{\"decisions\": %d", total
		for (j = 1; j <= 2; j++) {
			q = j == 1 ? 0.5 : 0.99
			rank = q * total
			for (i = 1; i < k && cum[i] < rank; i++) {}
			lo = i > 1 ? le[i - 1] : 0
			below = i > 1 ? cum[i - 1] : 0
			v = le[i] == "+Inf" ? lo : lo + (le[i] - lo) * (rank - below) / (cum[i] - below)
			printf ", \"%s\": %.4f", j == 1 ? "p50_ms" : "p99_ms", v * 1000
		}
		print "}"
	}' "$1" "$2"
}
