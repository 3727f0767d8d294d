#!/usr/bin/env bash
# The demo: a real target on loopback, then hitkit against it.
# Until the lab array group lands, the target is Debian's tgtd, started here.
set -euo pipefail
cd "$(dirname "$0")/.."
HITKIT=${HITKIT:-./bin/hitkit}
PORT=${PORT:-3261}
IQN=iqn.2026-11.org.hitkit.demo:vol1
DIR=$(mktemp -d /dev/shm/hitkit-demo.XXXXXX)
TGTD_PID=

cleanup() {
	[ -n "$TGTD_PID" ] && kill -9 "$TGTD_PID" 2>/dev/null && wait "$TGTD_PID" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting tgtd on 127.0.0.1:$PORT with a 256 MiB LUN"
truncate -s 256M "$DIR/lun1.img"
tgtd -f -C 77 --iscsi portal=127.0.0.1:$PORT >"$DIR/tgtd.log" 2>&1 &
TGTD_PID=$!
for _ in $(seq 50); do tgtadm -C 77 --mode sys --op show >/dev/null 2>&1 && break; sleep 0.1; done
tgtadm -C 77 --lld iscsi --op new --mode target --tid 1 -T "$IQN"
tgtadm -C 77 --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$DIR/lun1.img"
tgtadm -C 77 --lld iscsi --op bind --mode target --tid 1 -I ALL

step "hitkit discover --portal 127.0.0.1:$PORT"
$HITKIT discover --portal 127.0.0.1:$PORT

step "hitkit inquiry --portal 127.0.0.1:$PORT --target $IQN --lun 1"
$HITKIT inquiry --portal 127.0.0.1:$PORT --target "$IQN" --lun 1

step "hitkit bench: write a checksummed pattern over 64 MiB, read it back and verify"
$HITKIT bench --portal 127.0.0.1:$PORT --target "$IQN" --lun 1 --pattern verify --bs 128k --qd 16 --span 64M --allow-write

step "hitkit bench: 4 KiB random reads at queue depth 32 for 5 s"
$HITKIT bench --portal 127.0.0.1:$PORT --target "$IQN" --lun 1 --pattern randread --bs 4k --qd 32 --duration 5s

echo
echo "demo finished"
