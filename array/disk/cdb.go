package disk

import "encoding/binary"

// cdbLength is the length of a CDB, from the group code of its opcode.
// Zero is a group this unit has no commands in (variable length, vendor).
func cdbLength(op byte) int {
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

// extent is the blocks a command addresses.
type extent struct {
	lba, blocks uint64
}

// ioExtent decodes the LBA and TRANSFER LENGTH (or VERIFICATION LENGTH,
// PREFETCH LENGTH, NUMBER OF LOGICAL BLOCKS) where the read, write,
// verify, pre-fetch, synchronize cache and write same CDBs keep them.
// READ (6) and WRITE (6) take a length of 0 to mean 256.
func ioExtent(cdb []byte) extent {
	switch len(cdb) {
	case 6:
		n := uint64(cdb[4])
		if n == 0 {
			n = 256
		}
		return extent{uint64(cdb[1]&0x1f)<<16 | uint64(binary.BigEndian.Uint16(cdb[2:])), n}
	case 10:
		return extent{uint64(binary.BigEndian.Uint32(cdb[2:])), uint64(binary.BigEndian.Uint16(cdb[7:]))}
	case 12:
		return extent{uint64(binary.BigEndian.Uint32(cdb[2:])), uint64(binary.BigEndian.Uint32(cdb[6:]))}
	default:
		return extent{binary.BigEndian.Uint64(cdb[2:]), uint64(binary.BigEndian.Uint32(cdb[10:]))}
	}
}

// checkExtent is LOGICAL BLOCK ADDRESS OUT OF RANGE for blocks past the
// capacity. A zero-length extent may start at the capacity, not past it.
func (d *Disk) checkExtent(e extent) error {
	n := d.blocks.Load()
	if e.lba > n || e.blocks > n-e.lba {
		return errLBAOutOfRange()
	}
	return nil
}

// bytes converts an extent to a byte offset and length in the backend.
func (d *Disk) bytes(e extent) (off, length int64) {
	return int64(e.lba) << d.blockShift, int64(e.blocks) << d.blockShift
}
