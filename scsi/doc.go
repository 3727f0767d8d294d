// Package scsi holds SCSI command descriptor blocks, sense data and the
// layouts of INQUIRY, VPD and READ CAPACITY data (SPC-4, SBC-3), shared by
// hitkit's initiator, which builds CDBs and parses answers, and by the lab
// array's target, which does the reverse. It does no I/O.
package scsi
