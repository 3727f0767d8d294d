#!/usr/bin/env bash
# The demo: a real target on loopback, then hitkit against it.
# Until the lab array group lands, the target is Debian's tgtd, started here.
set -euo pipefail
cd "$(dirname "$0")/.."
HITKIT=${HITKIT:-./bin/hitkit}
PORT=${PORT:-3261}
IQN=iqn.2026-11.org.hitkit.demo:vol1
SIZE=256M
CTL=77
. scripts/tgtd.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting tgtd on 127.0.0.1:$PORT with a 256 MiB LUN"
start_tgtd

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
