#!/usr/bin/env bash
# Throughput of one volume of a lab group, in one run: through the
# multipathed block device (hitkit mpio connect + hitkit bench --volume)
# with 1 path (one source address, one session) and with 2 paths (two
# source addresses, one session each), and with libiscsi's iscsi-perf
# logged in to one member port of the same volume.
# Usage: scripts/bench-mpio.sh [SECONDS]
# Environment: HITKIT (default: built into the scratch directory),
# BASE_IP (default 127.0.10.0), SIZE (volume size, default 256MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
BASE_IP=${BASE_IP:-127.0.10.0}
SIZE=${SIZE:-256MiB}
TMP=$(mktemp -d /tmp/hitkit-bench-mpio.XXXXXX)
LAB=$TMP/lab RUN=$TMP/run STATE=$TMP/state
if [ -z "${HITKIT:-}" ]; then
	go build -o "$TMP/hitkit" .
	HITKIT=$TMP/hitkit
fi
DIRS=(--runtime-dir "$RUN" --state-dir "$STATE")
NAME=vol1

cleanup() {
	set +e
	"$HITKIT" mpio disconnect "${DIRS[@]}" "$NAME" >/dev/null 2>&1
	"$HITKIT" daemon --stop "${DIRS[@]}" >/dev/null 2>&1
	[ -d "$LAB" ] && "$HITKIT" lab down --dir "$LAB" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The base IP's third byte: member m port p is BASE+10*m+p.
prefix=${BASE_IP%.*}
"$HITKIT" lab up --dir "$LAB" --base-ip "$BASE_IP" --volume "$NAME:$SIZE" --no-power-on-attention --json >"$TMP/up.json"
field() { sed -nE "s/^ *\"$1\": \"([^\"]*)\".*/\1/p" "$TMP/up.json" | head -1; }
GROUP=$(field group_ip)
IQN=$(field iqn)
USER=$(field chap_user)
SECRET_FILE=$(field chap_secret_file)
PORT1=$prefix.11:3260

connect() { # SOURCES SESSIONS
	"$HITKIT" mpio connect "${DIRS[@]}" --name "$NAME" --portal "$GROUP" --target "$IQN" \
		--chap-user "$USER" --chap-secret-file "$SECRET_FILE" \
		--source "$1" --sessions-per-slice 1 --max-sessions "$2" >/dev/null
	local up
	up=$("$HITKIT" mpio status "${DIRS[@]}" --json "$NAME" | grep -c '"state": "active"' || true)
	echo "connected $NAME from $1: $up active session(s)" >&2
}
disconnect() { "$HITKIT" mpio disconnect "${DIRS[@]}" "$NAME" >/dev/null; }

# hitkit bench --json has "iops": N and "mbps": M; print "IOPS MB/s".
volbench() { # BS PATTERN
	"$HITKIT" bench --volume "$NAME" --runtime-dir "$RUN" --pattern "$2" \
		--bs "$1" --qd 32 --duration "${SECS}s" --json |
		awk -F'[:,]' '/"iops"/ {i=$2} /"mbps"/ {m=$2} END {printf "%d %d\n", i, m}'
}

# iscsi-perf prints "... iops average N (M MB/s)"; keep the last figures.
perf() { # BLOCKS(512 B) RANDOM?
	local args=(-m 32 -b "$1" -t "$SECS")
	[ "$2" = yes ] && args+=(-r)
	# libiscsi takes the CHAP secret from its environment: not on a command line.
	LIBISCSI_CHAP_USERNAME=$USER LIBISCSI_CHAP_PASSWORD=$(tr -d '\n' <"$SECRET_FILE") \
		iscsi-perf "${args[@]}" "iscsi://$PORT1/$IQN/0" 2>&1 | tr '\r' '\n' | grep 'average' | tail -1 |
		sed -E 's/.*average ([0-9]+) \(([0-9.]+) MB\/s\).*/\1 \2/'
}

WORKLOADS=("4k randread:8:yes:4k:randread" "128k seqread:256:no:128k:seqread")
declare -A R

SOURCES1=${SOURCES1:-127.0.0.2}
SOURCES2=${SOURCES2:-127.0.0.2,127.0.0.3}

# 1 path: one source, one session. Fill the volume first, so that the
# reads move written pages rather than holes.
connect "$SOURCES1" 1
"$HITKIT" bench --volume "$NAME" --runtime-dir "$RUN" --pattern verify --bs 1m --qd 8 --allow-write >/dev/null
for w in "${WORKLOADS[@]}"; do
	IFS=: read -r label blocks rnd bs pattern <<<"$w"
	R[$label,1]=$(volbench "$bs" "$pattern")
done
disconnect

# 2 paths: two sources, one session each.
connect "$SOURCES2" 2
for w in "${WORKLOADS[@]}"; do
	IFS=: read -r label blocks rnd bs pattern <<<"$w"
	R[$label,2]=$(volbench "$bs" "$pattern")
done
disconnect

# iscsi-perf: one session to member 1's first port.
for w in "${WORKLOADS[@]}"; do
	IFS=: read -r label blocks rnd bs pattern <<<"$w"
	R[$label,p]=$(perf "$blocks" "$rnd")
done

cell() { awk '{printf "%s IOPS %s MB/s", $1, $2}' <<<"${1:-- -}"; }
printf '%-18s | %-24s | %-24s | %-24s\n' workload "1 path" "2 paths" "iscsi-perf ($PORT1)"
for w in "${WORKLOADS[@]}"; do
	IFS=: read -r label _ <<<"$w"
	printf '%-18s | %-24s | %-24s | %-24s\n' "$label QD32" "$(cell "${R[$label,1]}")" "$(cell "${R[$label,2]}")" "$(cell "${R[$label,p]}")"
done
echo "(${SECS} s each; volume $NAME:$SIZE of a lab group at $GROUP)"
