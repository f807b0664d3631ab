#!/usr/bin/env bash
# Side by side against another FUSE passthrough (the peer: libfuse's
# example/passthrough_hp, built by you from libfuse's source; it is not part
# of this repository). Each round mounts every configuration in turn over
# its own directory of one tmpfs (/dev/shm), runs every job on it, unmounts;
# the order of the configurations alternates from round to round. Ratios
# snapfs / peer are taken within each round, then the median over rounds.
#
#   bench/peer.sh BUILD [PEER_BIN]
#
# Without PEER_BIN (or when it is not executable) the peer is skipped with a
# message and the snapfs configurations are compared with the first one.
# Environment: ROUNDS (3), SIZE (fio file, 256m), RUNTIME (fio seconds, 4),
# NFILES (tree files, 10000), META_N (create/stat/unlink files, 5000: the
# peer keeps a descriptor per inode it knows, and the usual hard limit is
# 20,000), SQL_N (transactions, 2000),
# CONFIGS (snapfs -o option sets, space-separated, "-" for none; default
# "nowriteback writeback"), JOBS (a subset of the job names, space-separated),
# BASE_BIN (another snapfs daemon, e.g. one built before a change: run as one
# more configuration, "base", with BASE_OPTS, default nowriteback).
# Prints one table of values per configuration and round, then the ratios.
set -euo pipefail
build=${1:?usage: bench/peer.sh BUILD [PEER_BIN]}
peer=${2:-}
snapfs=$(realpath "$build/src/fuse/snapfs")
bench=$(realpath "$build/bench")
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-256m}
RUNTIME=${RUNTIME:-4}
NFILES=${NFILES:-10000}
META_N=${META_N:-5000}
SQL_N=${SQL_N:-2000}
CONFIGS=${CONFIGS:-"nowriteback writeback"}
ALLJOBS="seqread randread seqwrite randwrite randwrite_fsync find_warm create stat unlink tar sqlite_wal sqlite_delete"
JOBS=${JOBS:-$ALLJOBS}
command -v fio >/dev/null || { echo "peer.sh: fio is not installed (make deps)" >&2; exit 1; }
for b in "$snapfs" "$bench/sqlbench" "$bench/metabench"; do
	[ -x "$b" ] || { echo "peer.sh: $b: not built (make build BUILD=$build)" >&2; exit 1; }
done
if [ -n "$peer" ] && [ -x "$peer" ]; then
	peer=$(realpath "$peer")
else
	[ -n "$peer" ] && echo "peer.sh: peer '$peer' is not an executable: skipped" >&2
	[ -z "$peer" ] && echo "peer.sh: no peer given (bench/peer.sh BUILD PEER_BIN): skipped" >&2
	peer=
fi

# passthrough_hp keeps a descriptor per inode it knows: allow it as many as
# may be (the soft limit up to the hard one).
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d /dev/shm/snapfs-peer-XXXXXX)
mnt=$work/mnt
pid=
unmount() {
	if grep -q " $mnt fuse" /proc/mounts; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
	if [ -n "$pid" ]; then
		wait "$pid" 2>/dev/null || true
		pid=
	fi
}
cleanup() {
	unmount
	rm -rf "$work"
}
trap cleanup EXIT

# Configurations: "snapfs:OPTS" and "peer".
configs=()
[ -n "${BASE_BIN:-}" ] && configs+=("base:${BASE_OPTS:-nowriteback}")
for c in $CONFIGS; do configs+=("snapfs:$c"); done
[ -n "$peer" ] && configs+=("peer")

# mount_cfg CONFIG: a fresh source directory, mounted on $mnt.
mount_cfg() {
	rm -rf "$work/src"
	mkdir -p "$work/src" "$mnt"
	case $1 in
	peer) "$peer" --foreground "$work/src" "$mnt" >/dev/null 2>&1 & ;;
	snapfs:-) "$snapfs" -f "$work/src" "$mnt" & ;;
	snapfs:*) "$snapfs" -f "$work/src" "$mnt" -o "${1#snapfs:}" & ;;
	base:*) "$BASE_BIN" -f "$work/src" "$mnt" -o "${1#base:}" & ;;
	esac
	pid=$!
	for _ in $(seq 200); do grep -q " $mnt fuse" /proc/mounts && return 0; sleep 0.05; done
	echo "peer.sh: mount of $1 failed" >&2
	exit 1
}

# fio_rate NAME RW BS EXTRA... -> KiB/s
fio_rate() {
	local name=$1 rw=$2 bs=$3
	shift 3
	fio --name="$name" --directory="$mnt" --filename=bench.dat --size="$SIZE" --rw="$rw" \
		--bs="$bs" --ioengine=psync --numjobs=1 --time_based --runtime="$RUNTIME" \
		--output-format=terse --terse-version=3 "$@" |
		awk -F';' '{ print ($7 > 0 ? $7 : $48) }'
}

# rate COUNT CMD...: COUNT / seconds the command took (its output discarded);
# fails (no value) when the command fails.
rate() {
	local n=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	"$@" >/dev/null || return 1
	t1=$(date +%s.%N)
	awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}

# A tree of NFILES files of 1 to 4 KiB in directories of 100.
make_tree() {
	local t=$mnt/tree d
	mkdir -p "$t"
	for ((d = 0; d < NFILES / 100; d++)); do
		mkdir "$t/d$d"
		(cd "$t/d$d" && head -c $((100 * 2048)) /dev/urandom |
			split -a 2 -b 2048 - f)
	done
}

run_job() {
	case $1 in
	seqread) fio_rate seqread read 1m --invalidate=1 ;;
	randread) fio_rate randread randread 4k --invalidate=1 ;;
	seqwrite) fio_rate seqwrite write 1m ;;
	randwrite) fio_rate randwrite randwrite 4k ;;
	randwrite_fsync) fio_rate randwrite_fsync randwrite 4k --fsync=1 ;;
	find_warm)
		find "$mnt/tree" >/dev/null || return 1
		rate "$NFILES" find "$mnt/tree" -printf '%s\n'
		;;
	create | stat | unlink) awk -v p="$1" '$1 == p { print $2 }' "$work/meta" ;;
	tar) rate "$NFILES" bash -c "set -o pipefail; tar -C '$mnt' -cf - tree | cat" ;;
	sqlite_wal) "$bench/sqlbench" "$mnt" "$SQL_N" wal | awk '{ print $2 }' ;;
	sqlite_delete) "$bench/sqlbench" "$mnt" "$SQL_N" delete | awk '{ print $2 }' ;;
	*) echo "peer.sh: unknown job '$1'" >&2 && exit 1 ;;
	esac
}

needs_tree=0
needs_file=0
for j in $JOBS; do
	case $j in find_warm | tar) needs_tree=1 ;; seq* | rand*) needs_file=1 ;; esac
done

# results[round,config,job]
declare -A res
for ((r = 1; r <= ROUNDS; r++)); do
	order=("${configs[@]}")
	if ((r % 2 == 0)); then # alternate the order from round to round
		order=()
		for ((i = ${#configs[@]} - 1; i >= 0; i--)); do order+=("${configs[i]}"); done
	fi
	for c in "${order[@]}"; do
		mount_cfg "$c"
		if ((needs_file)); then
			fio --name=prep --directory="$mnt" --filename=bench.dat --size="$SIZE" \
				--rw=write --bs=1m --ioengine=psync --output=/dev/null
		fi
		((needs_tree)) && make_tree
		case " $JOBS " in *" create "* | *" stat "* | *" unlink "*)
			mkdir "$mnt/meta"
			"$bench/metabench" "$mnt/meta" "$META_N" >"$work/meta" ||
				echo "peer.sh: metabench failed on $c (rates recorded as 0)" >&2
			;;
		esac
		for j in $JOBS; do
			res[$r,$c,$j]=$(run_job "$j") || true
			[ -n "${res[$r,$c,$j]}" ] || res[$r,$c,$j]=0
		done
		unmount
		echo "round $r $c: $(for j in $JOBS; do printf '%s=%s ' "$j" "${res[$r,$c,$j]}"; done)" >&2
	done
done

base=${configs[-1]} # the peer, else the first configuration
[ -n "$peer" ] || base=${configs[0]}
echo
echo "Rates (fio: KiB/s; find, tar: files/s; create/stat/unlink: ops/s; sqlite: transactions/s), median of $ROUNDS rounds:"
printf '| job |'
for c in "${configs[@]}"; do printf ' %s |' "$c"; done
echo
printf '|---|'
for _ in "${configs[@]}"; do printf -- '---|'; done
echo
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for j in $JOBS; do
	printf '| %s |' "$j"
	for c in "${configs[@]}"; do
		printf ' %s |' "$(for ((r = 1; r <= ROUNDS; r++)); do echo "${res[$r,$c,$j]}"; done | median)"
	done
	echo
done
echo
echo "Ratios to $base, paired within each round, median of $ROUNDS (per-round values in brackets):"
printf '| job |'
for c in "${configs[@]}"; do [ "$c" = "$base" ] || printf ' %s |' "$c"; done
echo
printf '|---|'
for c in "${configs[@]}"; do [ "$c" = "$base" ] || printf -- '---|'; done
echo
for j in $JOBS; do
	printf '| %s |' "$j"
	for c in "${configs[@]}"; do
		[ "$c" = "$base" ] && continue
		rs=()
		for ((r = 1; r <= ROUNDS; r++)); do
			rs+=("$(awk -v a="${res[$r,$c,$j]}" -v b="${res[$r,$base,$j]}" \
				'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')")
		done
		printf ' %s (%s) |' "$(printf '%s\n' "${rs[@]}" | median)" "${rs[*]}"
	done
	echo
done
