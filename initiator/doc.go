// Package initiator is hitkit's iSCSI initiator (RFC 7143).
//
// The layers, bottom up:
//   - conn: one TCP connection, its Framer, a reader goroutine that routes
//     incoming PDUs to tasks, and a keepalive that pings when the line is quiet;
//   - login: the login state machine run on a fresh conn (security and
//     operational negotiation, redirects);
//   - Session: the CmdSN window, the task table, and recovery: when its conn
//     is lost it logs in again with the same ISID and re-issues what was in
//     flight, within a replacement timeout;
//   - LogicalUnit: SCSI on top of a Session, with ReadAt and WriteAt.
//
// The session runs ErrorRecoveryLevel 0 with one connection, as the
// multipath layer above it expects: it gets its redundancy from several
// sessions, not from connections within one.
package initiator
