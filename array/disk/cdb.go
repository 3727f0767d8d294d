package disk

import "github.com/hitkit/hitkit/scsi"

// extent is the blocks a command addresses.
type extent struct {
	lba, blocks uint64
}

// ioExtent is the blocks a read, write, verify, pre-fetch, synchronize
// cache or write same CDB addresses. The CDB was checked against its
// opcode's length before any handler runs.
func ioExtent(cdb []byte) extent {
	lba, blocks, _ := scsi.CDBExtent(cdb)
	return extent{lba, blocks}
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
