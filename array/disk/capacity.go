package disk

import (
	"encoding/binary"

	"github.com/hitkit/hitkit/scsi"
)

func (d *Disk) capacity() scsi.Capacity {
	return scsi.Capacity{
		LastLBA:         d.blocks.Load() - 1,
		BlockLength:     uint32(d.blockSize),
		ThinProvisioned: d.opts.ThinProvisioning,
		ZeroesUnmapped:  d.opts.ThinProvisioning,
	}
}

// readCapacity10: past 2^32 blocks the LBA reads 0xffffffff, telling the
// initiator to ask READ CAPACITY (16).
func (d *Disk) readCapacity10(c *call) ([]byte, error) {
	pmi := c.cdb[8]&0x01 != 0
	if !pmi && binary.BigEndian.Uint32(c.cdb[2:]) != 0 {
		return nil, errInvalidField(2, -1)
	}
	return d.capacity().Bytes10(), nil
}

func (d *Disk) readCapacity16(c *call) ([]byte, error) {
	pmi := c.cdb[14]&0x01 != 0
	if !pmi && binary.BigEndian.Uint64(c.cdb[2:]) != 0 {
		return nil, errInvalidField(2, -1)
	}
	alloc := binary.BigEndian.Uint32(c.cdb[10:])
	return truncate(d.capacity().Bytes16(), int(min(alloc, 1<<16))), nil
}

// Provisioning status in an LBA status descriptor.
const (
	lbaMapped      = 0
	lbaDeallocated = 1
)

// maxLBAStatusDescriptors bounds a GET LBA STATUS answer.
const maxLBAStatusDescriptors = 64

// getLBAStatus reports, from the starting LBA, runs of mapped and
// deallocated blocks as the backend knows them. A block partly holding
// data is mapped.
func (d *Disk) getLBAStatus(c *call) ([]byte, error) {
	lba := binary.BigEndian.Uint64(c.cdb[2:])
	alloc := int(binary.BigEndian.Uint32(c.cdb[10:]))
	nblocks := d.blocks.Load()
	if lba >= nblocks {
		return nil, errLBAOutOfRange()
	}
	want := min(max((alloc-8)/16, 1), maxLBAStatusDescriptors)
	out := make([]byte, 8, 8+16*want)
	for n := 0; n < want && lba < nblocks; n++ {
		count, status, err := d.lbaRun(lba, nblocks)
		if err != nil {
			return nil, errMedium(false, err)
		}
		out = binary.BigEndian.AppendUint64(out, lba)
		out = binary.BigEndian.AppendUint32(out, uint32(min(count, 0xffffffff)))
		out = append(out, status, 0, 0, 0)
		lba += min(count, 0xffffffff)
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return truncate(out, alloc), nil
}

// lbaRun is the length and state of the run of blocks starting at lba.
func (d *Disk) lbaRun(lba, nblocks uint64) (uint64, byte, error) {
	m, ok := d.backend.(AllocationMapper)
	if !ok {
		return nblocks - lba, lbaMapped, nil
	}
	var count uint64
	status := byte(lbaMapped)
	for lba+count < nblocks {
		off := int64(lba+count) << d.blockShift
		mapped, length, err := m.Allocation(off)
		if err != nil {
			return 0, 0, err
		}
		// A hole counts in whole blocks; a data extent rounds up.
		blocks := uint64(length >> d.blockShift)
		if mapped {
			blocks = uint64((length + d.blockSize - 1) >> d.blockShift)
		}
		s := byte(lbaMapped)
		if !mapped && blocks > 0 {
			s = lbaDeallocated
		} else if !mapped {
			blocks = 1 // a hole smaller than a block: the block is mapped
		}
		if count > 0 && s != status {
			break
		}
		status = s
		count += max(blocks, 1)
	}
	return min(count, nblocks-lba), status, nil
}
