// Package iscsi is the iSCSI wire format (RFC 7143) shared by hitkit's
// initiator and by the lab array's target: the PDU codec (basic header
// segment, additional header segments, padding, CRC32C digests), text keys
// and their negotiation rules, CHAP, and serial-number arithmetic.
//
// It has no sockets and no goroutines. A Framer reads and writes PDUs on any
// io.Reader and io.Writer; the initiator and the target own the connections.
package iscsi
