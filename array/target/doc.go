// Package target is the lab array's iSCSI target engine: the server side
// of RFC 7143.
//
// A Server listens on portals (an address and a target portal group tag),
// logs initiators in (CHAP, operational negotiation, redirects), answers
// discovery, and runs the full feature phase: SCSI commands with immediate
// and solicited data, Data-In with phase collapse, task management, NOP
// pings, logout and asynchronous logout requests. Logical units plug in
// through the Unit interface; the engine itself answers REPORT LUNS and
// commands to LUNs that do not exist.
//
// The engine runs ErrorRecoveryLevel 0 with one connection per session, as
// the arrays it simulates do. Fault hooks (DropPortal, ResetPortal,
// Blackhole, Delay) let multipath tests break paths on purpose.
package target
