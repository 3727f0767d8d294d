package iscsi

// Sequence numbers (CmdSN, StatSN, DataSN, R2TSN) wrap at 2^32 and compare
// with RFC 1982 serial-number arithmetic, so a window that straddles the wrap
// still orders correctly.

// SerialLess reports whether a comes before b.
func SerialLess(a, b uint32) bool { return a != b && int32(a-b) < 0 }

// SerialLessEq reports whether a comes before b or equals it.
func SerialLessEq(a, b uint32) bool { return a == b || SerialLess(a, b) }

// SerialInWindow reports whether sn lies in the closed window [lo, hi].
// RFC 7143 section 3.2.2.1: a command may be sent while CmdSN is within
// [ExpCmdSN, MaxCmdSN]; an empty window is MaxCmdSN = ExpCmdSN - 1.
func SerialInWindow(sn, lo, hi uint32) bool {
	return SerialLessEq(lo, sn) && SerialLessEq(sn, hi)
}
