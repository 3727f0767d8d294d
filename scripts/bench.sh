#!/usr/bin/env bash
# Compares hitkit's initiator with libiscsi's iscsi-perf on the same target:
# Debian's tgtd on loopback, with a tmpfs LUN so that the disk is not the
# bottleneck. The two alternate, ROUNDS times per workload, and the median
# of each is shown, since a 2-core machine's figures wander between runs.
# Usage: scripts/bench.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
HITKIT=${HITKIT:-./bin/hitkit}
SECS=${1:-10}
ROUNDS=${2:-3}
PORT=${PORT:-3262}
IQN=iqn.2026-11.org.hitkit.bench:vol1
SIZE=1G
CTL=78
. scripts/tgtd.sh
start_tgtd
URL="iscsi://127.0.0.1:$PORT/$IQN/1"

# Fill the LUN so that reads move real data.
$HITKIT bench --portal 127.0.0.1:$PORT --target "$IQN" --lun 1 --pattern verify \
	--bs 1m --qd 8 --allow-write >/dev/null

# iscsi_perf prints "... iops average N (M MB/s)"; keep the last figures.
perf() { # BLOCKS(512 B) RANDOM?
	local args=(-m 32 -b "$1" -t "$SECS")
	[ "$2" = yes ] && args+=(-r)
	iscsi-perf "${args[@]}" "$URL" 2>&1 | tr '\r' '\n' | grep 'average' | tail -1 |
		sed -E 's/.*average ([0-9]+) \(([0-9.]+) MB\/s\).*/\1 \2/'
}
hitkit() { # BS PATTERN
	$HITKIT bench --portal 127.0.0.1:$PORT --target "$IQN" --lun 1 --pattern "$2" \
		--bs "$1" --qd 32 --duration "${SECS}s" --json |
		awk -F'[:,]' '/"iops"/ {i=$2} /"mbps"/ {m=$2} END {printf "%d %d\n", i, m}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-20s %-12s %10s %10s\n' workload initiator IOPS MB/s
for w in "4k randread:8:yes:4k:randread" "128k seqread:256:no:128k:seqread"; do
	IFS=: read -r name blocks rnd bs pattern <<<"$w"
	: >"$TGTD_DIR/perf" && : >"$TGTD_DIR/hitkit"
	for _ in $(seq "$ROUNDS"); do
		perf "$blocks" "$rnd" >>"$TGTD_DIR/perf"
		hitkit "$bs" "$pattern" >>"$TGTD_DIR/hitkit"
	done
	for who in perf hitkit; do
		iops=$(cut -d' ' -f1 "$TGTD_DIR/$who" | median)
		mbs=$(cut -d' ' -f2 "$TGTD_DIR/$who" | median)
		label=$([ $who = perf ] && echo iscsi-perf || echo hitkit)
		printf '%-20s %-12s %10s %10s\n' "$name QD32" "$label" "$iops" "$mbs"
	done
done
