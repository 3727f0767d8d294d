# Sourced by demo.sh and bench.sh: runs Debian's tgtd on loopback with one
# target whose data is a tmpfs file on LUN 1, and stops it on exit.
# Needs: PORT, IQN, SIZE, CTL (tgtd control id, at most 32767).

TGTD_DIR=$(mktemp -d /dev/shm/hitkit-tgtd.XXXXXX)
TGTD_PID=

stop_tgtd() {
	# tgtd ignores SIGTERM while it has targets.
	if [ -n "$TGTD_PID" ]; then
		kill -9 "$TGTD_PID" 2>/dev/null || true
		wait "$TGTD_PID" 2>/dev/null || true
	fi
	rm -rf "$TGTD_DIR"
}
trap stop_tgtd EXIT

start_tgtd() {
	truncate -s "$SIZE" "$TGTD_DIR/lun1.img"
	tgtd -f -C "$CTL" --iscsi portal=127.0.0.1:"$PORT" >"$TGTD_DIR/tgtd.log" 2>&1 &
	TGTD_PID=$!
	for _ in $(seq 50); do tgtadm -C "$CTL" --mode sys --op show >/dev/null 2>&1 && break; sleep 0.1; done
	tgtadm -C "$CTL" --lld iscsi --op new --mode target --tid 1 -T "$IQN"
	tgtadm -C "$CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$TGTD_DIR/lun1.img"
	tgtadm -C "$CTL" --lld iscsi --op bind --mode target --tid 1 -I ALL
}
