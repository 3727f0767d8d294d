#!/usr/bin/env bash
# The demo: a lab array group on loopback, and hitkit against it. It starts
# the group, discovers it, logs in to a volume through the group IP (which
# redirects to a member port), writes and verifies data, fails the port
# the session is on while I/O runs, and shows the group's status.
set -euo pipefail
cd "$(dirname "$0")/.."
HITKIT=${HITKIT:-./bin/hitkit}
DIR=$(mktemp -d /tmp/hitkit-demo.XXXXXX)
GROUP=127.0.10.1

cleanup() {
	$HITKIT lab down --dir "$DIR/lab" >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "hitkit lab up: 2 members with 2 ports each, a 1 GiB volume, group IP $GROUP"
$HITKIT lab up --dir "$DIR/lab"
IQN=$($HITKIT lab status --dir "$DIR/lab" --json | sed -nE 's/.*"iqn": "([^"]+)".*/\1/p' | head -1)
LOGIN=(--portal "$GROUP" --target "$IQN" --chap-user vol1 --chap-secret-file "$DIR/lab/secrets/vol1.chap")

step "hitkit discover --portal $GROUP"
$HITKIT discover --portal "$GROUP"

step "hitkit inquiry: the volume, through the group IP"
$HITKIT inquiry "${LOGIN[@]}"

step "hitkit bench --pattern verify: write a checksummed pattern over 64 MiB, read it back, check it"
$HITKIT bench "${LOGIN[@]}" --pattern verify --bs 128k --qd 16 --span 64M --allow-write

step "random reads for 8 s; after 3 s, the port carrying the session goes down"
$HITKIT --log-level info bench "${LOGIN[@]}" --pattern randread --bs 4k --qd 16 --duration 8s 2>"$DIR/bench.log" &
BENCH=$!
sleep 3
# The first member port with a session (the group IP's own entry comes
# first in the JSON, with none).
PORT=$($HITKIT lab status --dir "$DIR/lab" --json |
	awk -F'"' '/"address"/ {a=$4} /"sessions": [1-9]/ {print a; exit}')
$HITKIT lab fault port-down --dir "$DIR/lab" --port "$PORT"
sleep 1
step "hitkit lab status: $PORT is down, and the session has moved to another port"
$HITKIT lab status --dir "$DIR/lab"
wait $BENCH
echo "the initiator's log of the failover:"
grep -E 'connection lost|logged in' "$DIR/bench.log" | sed 's/^/  /'
$HITKIT lab fault clear --dir "$DIR/lab" >/dev/null

echo
echo "demo finished: the benchmark ran through the port failure without an I/O error"
