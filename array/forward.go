package array

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

// forwarder is a volume as one member serves it. A command that touches
// pages the member does not hold is "forwarded inside the group": it
// costs the group's forwarding latency and is counted, once per command
// however many foreign pages it touches, as one forwarded I/O is one
// command that crossed the backplane. The data itself always goes to the
// volume's one disk.Disk, so that reservations, unit attentions and
// caches are shared by every port, as on a real array.
type forwarder struct {
	member  *Member
	vol     *servedVolume
	latency *atomic.Int64 // the group's forwarding latency, in nanoseconds
}

func (f *forwarder) Execute(ctx context.Context, r *target.Request) target.Response {
	if f.foreign(r) {
		f.member.forwarded.Add(1)
		f.vol.forwarded.Add(1)
		sleep(ctx, time.Duration(f.latency.Load()))
	}
	return f.vol.disk.Execute(ctx, r)
}

// foreign says whether a command touches a page the member does not hold.
func (f *forwarder) foreign(r *target.Request) bool {
	pm := f.vol.store.PageMap()
	bs := uint64(f.vol.disk.BlockSize())
	capacity := f.vol.disk.Blocks()
	member := f.member.Number()
	for _, e := range blockRanges(r, capacity) {
		// Out-of-range blocks are the disk's to refuse, not to forward;
		// clipping also keeps hostile LBAs from overflowing offsets.
		if e.lba >= capacity {
			continue
		}
		blocks := min(e.blocks, capacity-e.lba)
		if pm.Foreign(member, int64(e.lba*bs), int64(blocks*bs)) > 0 {
			return true
		}
	}
	return false
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// blockRange is a run of logical blocks a command touches.
type blockRange struct {
	lba    uint64
	blocks uint64
}

// SCSI operation codes of the medium-access commands that forwarding
// looks at; the scsi package names only those the initiator sends.
const (
	opRead6            = 0x08
	opWrite6           = 0x0a
	opRead10           = 0x28
	opWrite10          = 0x2a
	opWriteAndVerify10 = 0x2e
	opVerify10         = 0x2f
	opWriteSame10      = 0x41
	opUnmap            = 0x42
	opRead16           = 0x88
	opCompareAndWrite  = 0x89
	opWrite16          = 0x8a
	opWriteAndVerify16 = 0x8e
	opVerify16         = 0x8f
	opWriteSame16      = 0x93
	opRead12           = 0xa8
	opWrite12          = 0xaa
	opWriteAndVerify12 = 0xae
	opVerify12         = 0xaf
)

// blockRanges decodes the blocks a command touches. Other commands, and
// CDBs too short to decode, touch none: the disk will reject the latter,
// so they are not worth forwarding. capacity resolves WRITE SAME's
// "to the end of the medium" (a length of zero).
func blockRanges(r *target.Request, capacity uint64) []blockRange {
	cdb := r.CDB
	if len(cdb) == 0 {
		return nil
	}
	switch op := cdb[0]; op {
	case opRead6, opWrite6, opRead10, opWrite10, opWriteAndVerify10, opVerify10, opWriteSame10,
		opRead12, opWrite12, opWriteAndVerify12, opVerify12,
		opRead16, opWrite16, opWriteAndVerify16, opVerify16, opWriteSame16:
		if lba, n, ok := scsi.CDBExtent(cdb); ok {
			return one(op, lba, n, capacity)
		}
		return nil
	case opCompareAndWrite:
		if len(cdb) < 16 {
			return nil
		}
		return []blockRange{{binary.BigEndian.Uint64(cdb[2:]), uint64(cdb[13])}}
	case opUnmap:
		return unmapRanges(r.DataOut)
	}
	return nil
}

// one is a single range, where a zero-length WRITE SAME runs to the end.
func one(op byte, lba, n, capacity uint64) []blockRange {
	if n == 0 && (op == opWriteSame10 || op == opWriteSame16) && lba < capacity {
		n = capacity - lba
	}
	return []blockRange{{lba, n}}
}

// maxUnmapDescriptors bounds the work a hostile UNMAP parameter list can
// cause here; the disk enforces its own limit.
const maxUnmapDescriptors = 4096

// unmapRanges reads UNMAP's block descriptors (SBC-3 5.28.2): an 8-byte
// header whose bytes 2-3 give the descriptors' length, then 16 bytes
// each of LBA (8), block count (4) and reserved (4).
func unmapRanges(params []byte) []blockRange {
	if len(params) < 8 {
		return nil
	}
	end := min(8+int(binary.BigEndian.Uint16(params[2:])), len(params))
	var out []blockRange
	for off := 8; off+16 <= end && len(out) < maxUnmapDescriptors; off += 16 {
		out = append(out, blockRange{
			lba:    binary.BigEndian.Uint64(params[off:]),
			blocks: uint64(binary.BigEndian.Uint32(params[off+8:])),
		})
	}
	return out
}
