package scsi

import "encoding/binary"

// CDBLength is the length of a CDB, from the group code of its opcode;
// zero for the groups hitkit has no commands in (variable length, vendor).
func CDBLength(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 0
}

// CDBExtent decodes the LOGICAL BLOCK ADDRESS and the block count where the
// read, write, verify, pre-fetch, synchronize cache and write same CDBs of
// each length keep them (TRANSFER, VERIFICATION or PREFETCH LENGTH, NUMBER
// OF LOGICAL BLOCKS). READ (6) and WRITE (6) spell 256 blocks as 0. It
// says nothing about whether the opcode addresses blocks at all; ok is
// false only when cdb is shorter than its group's length.
func CDBExtent(cdb []byte) (lba, blocks uint64, ok bool) {
	if len(cdb) == 0 || len(cdb) < CDBLength(cdb[0]) {
		return 0, 0, false
	}
	switch CDBLength(cdb[0]) {
	case 6:
		n := uint64(cdb[4])
		if n == 0 {
			n = 256
		}
		return uint64(cdb[1]&0x1f)<<16 | uint64(binary.BigEndian.Uint16(cdb[2:])), n, true
	case 10:
		return uint64(binary.BigEndian.Uint32(cdb[2:])), uint64(binary.BigEndian.Uint16(cdb[7:])), true
	case 12:
		return uint64(binary.BigEndian.Uint32(cdb[2:])), uint64(binary.BigEndian.Uint32(cdb[6:])), true
	case 16:
		return binary.BigEndian.Uint64(cdb[2:]), uint64(binary.BigEndian.Uint32(cdb[10:])), true
	}
	return 0, 0, false
}
