// Package peer starts real iSCSI targets that hitkit did not write, Debian's
// tgtd and istgt, on loopback for interop tests, and wraps libiscsi's
// command-line tools. Only tests import it.
//
// Known quirks of the peers:
//   - tgtd ignores SIGTERM while it has targets, and refuses to delete
//     itself then; the fixtures stop it with SIGKILL and wait for it.
//   - tgtd's LUN 0 is its controller; the data is on LUN 1. istgt's data
//     is on LUN 0.
//   - iscsi-ls -s spins at 100 % CPU against istgt's discovery; do not
//     point it at istgt.
//   - The peers' own CLIs take CHAP secrets on argv or in config files.
//     Only throwaway test secrets go there.
package peer
