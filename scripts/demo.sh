#!/usr/bin/env bash
# The demo: a lab array group on loopback, and hitkit against it. It starts
# the group, discovers it, connects a multipathed volume over two "NICs"
# (127.0.0.2 and 127.0.0.3), puts a filesystem on it and writes to it,
# fails the port under a busy path while I/O runs, and shows the status of
# the paths and of the group, what the health check says, and a snapshot
# taken with the filesystem frozen.
set -euo pipefail
cd "$(dirname "$0")/.."
HITKIT=${HITKIT:-./bin/hitkit}
DIR=$(mktemp -d /tmp/hitkit-demo.XXXXXX)
GROUP=127.0.10.1
RUN=(--runtime-dir "$DIR/run" --state-dir "$DIR/state")

cleanup() {
	umount "$DIR/mnt" 2>/dev/null || true
	$HITKIT mpio disconnect "${RUN[@]}" vol1 >/dev/null 2>&1 || true
	$HITKIT daemon --stop --runtime-dir "$DIR/run" >/dev/null 2>&1 || true
	$HITKIT lab down --dir "$DIR/lab" >/dev/null 2>&1 || true
	sleep 0.5
	rm -rf "$DIR"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "hitkit lab up: 2 members with 2 ports each, a 1 GiB volume, group IP $GROUP"
$HITKIT lab up --dir "$DIR/lab"
IQN=$($HITKIT lab status --dir "$DIR/lab" --json | sed -nE 's/.*"iqn": "([^"]+)".*/\1/p' | head -1)
# The management API's certificate, read from its file: what the host pins.
FP=$(openssl x509 -noout -fingerprint -sha256 -in "$DIR/lab/mgmt/cert.pem" | cut -d= -f2)

step "hitkit discover --portal $GROUP"
$HITKIT discover --portal "$GROUP"

step "hitkit discover --uninitialized: the lab's third member waits for hitkit setup-array"
$HITKIT discover --uninitialized --no-mdns --timeout 2s

step "hitkit mpio connect: 4 sessions over two source addresses, each redirected to a member port"
$HITKIT mpio connect "${RUN[@]}" --portal "$GROUP" --target "$IQN" --name vol1 \
	--chap-user vol1 --chap-secret-file "$DIR/lab/secrets/vol1.chap" --source 127.0.0.2,127.0.0.3 \
	--group-admin-file "$DIR/lab/secrets/admin.password" --group-fingerprint "$FP"
DEV=$(readlink -f "$DIR/run/dev/vol1")

step "ext4 on $DEV, and 64 MiB of files with checksums"
mkfs.ext4 -q -F "$DEV"
mkdir -p "$DIR/mnt" && mount "$DEV" "$DIR/mnt"
for i in 1 2 3 4; do head -c 16M /dev/urandom >"$DIR/mnt/file$i"; done
(cd "$DIR/mnt" && sha256sum file* >"$DIR/sums")
sync

step "hitkit mpio status"
$HITKIT mpio status "${RUN[@]}"

step "a port goes down under a running write-and-verify load"
PORT=$($HITKIT mpio status "${RUN[@]}" --json | sed -nE 's/.*"remote": "([^"]+)".*/\1/p' | head -1)
(for i in 5 6 7 8; do head -c 16M /dev/urandom >"$DIR/mnt/file$i"; done; sync) &
LOAD=$!
sleep 0.5
$HITKIT lab fault port-down --dir "$DIR/lab" --port "$PORT"
wait $LOAD
(cd "$DIR/mnt" && sha256sum file5 file6 file7 file8 >>"$DIR/sums")
sleep 1
$HITKIT mpio status "${RUN[@]}"
$HITKIT lab status --dir "$DIR/lab"

step "hitkit health --nagios: the failed port is a WARNING (exit 1) until the path is back"
$HITKIT health "${RUN[@]}" --nagios || echo "(exit $?)"

step "hitkit snapshot create: ext4 frozen only around the array's snapshot"
$HITKIT snapshot create "${RUN[@]}" vol1
$HITKIT snapshot list "${RUN[@]}" vol1

step "unmount, drop the page cache, mount again, and check every file"
umount "$DIR/mnt"
echo 3 >/proc/sys/vm/drop_caches
mount "$DEV" "$DIR/mnt"
(cd "$DIR/mnt" && sha256sum -c --quiet "$DIR/sums") && echo "all 8 files match their checksums"
umount "$DIR/mnt"
$HITKIT lab fault clear --dir "$DIR/lab" >/dev/null
$HITKIT mpio disconnect "${RUN[@]}" vol1
$HITKIT daemon --stop --runtime-dir "$DIR/run"

echo
echo "demo finished: the volume kept working through the port failure"
