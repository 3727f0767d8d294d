package scsi

import "encoding/binary"

// Operation codes.
const (
	OpTestUnitReady        = 0x00
	OpRequestSense         = 0x03
	OpInquiry              = 0x12
	OpModeSelect6          = 0x15
	OpModeSense6           = 0x1a
	OpReadCapacity10       = 0x25
	OpRead10               = 0x28
	OpWrite10              = 0x2a
	OpVerify10             = 0x2f
	OpSynchronizeCache10   = 0x35
	OpWriteSame10          = 0x41
	OpUnmap                = 0x42
	OpModeSense10          = 0x5a
	OpPersistentReserveIn  = 0x5e
	OpPersistentReserveOut = 0x5f
	OpRead16               = 0x88
	OpWrite16              = 0x8a
	OpVerify16             = 0x8f
	OpSynchronizeCache16   = 0x91
	OpWriteSame16          = 0x93
	OpServiceActionIn16    = 0x9e
	OpReportLuns           = 0xa0
	OpMaintenanceIn        = 0xa3
	OpRead12               = 0xa8
	OpWrite12              = 0xaa
)

// Service actions of SERVICE ACTION IN (16) and MAINTENANCE IN.
const (
	SAReadCapacity16         = 0x10
	SAGetLBAStatus           = 0x12
	SAReportSupportedOpcodes = 0x0c
)

// CDB is a command descriptor block of up to 16 bytes. It is a value, so
// building one on the I/O path allocates nothing.
type CDB struct {
	b [16]byte
	n uint8
}

// Bytes returns the CDB's bytes.
func (c *CDB) Bytes() []byte { return c.b[:c.n] }

// Len is the CDB length.
func (c *CDB) Len() int { return int(c.n) }

func newCDB(op byte, n int) CDB {
	c := CDB{n: uint8(n)}
	c.b[0] = op
	return c
}

const fuaBit = 0x08

// Read10 reads blocks starting at lba.
func Read10(lba uint32, blocks uint16, fua bool) CDB {
	c := newCDB(OpRead10, 10)
	binary.BigEndian.PutUint32(c.b[2:], lba)
	binary.BigEndian.PutUint16(c.b[7:], blocks)
	if fua {
		c.b[1] |= fuaBit
	}
	return c
}

// Write10 writes blocks starting at lba.
func Write10(lba uint32, blocks uint16, fua bool) CDB {
	c := Read10(lba, blocks, fua)
	c.b[0] = OpWrite10
	return c
}

// Read16 reads blocks starting at lba.
func Read16(lba uint64, blocks uint32, fua bool) CDB {
	c := newCDB(OpRead16, 16)
	binary.BigEndian.PutUint64(c.b[2:], lba)
	binary.BigEndian.PutUint32(c.b[10:], blocks)
	if fua {
		c.b[1] |= fuaBit
	}
	return c
}

// Write16 writes blocks starting at lba.
func Write16(lba uint64, blocks uint32, fua bool) CDB {
	c := Read16(lba, blocks, fua)
	c.b[0] = OpWrite16
	return c
}

// ReadCDB picks READ(10) when the range fits it, else READ(16), as Linux
// does: some targets handle only the short form.
func ReadCDB(lba uint64, blocks uint32, fua bool) CDB {
	if fitsShort(lba, blocks) {
		return Read10(uint32(lba), uint16(blocks), fua)
	}
	return Read16(lba, blocks, fua)
}

// WriteCDB is ReadCDB for writes.
func WriteCDB(lba uint64, blocks uint32, fua bool) CDB {
	if fitsShort(lba, blocks) {
		return Write10(uint32(lba), uint16(blocks), fua)
	}
	return Write16(lba, blocks, fua)
}

// fitsShort reports whether a range fits a 10-byte CDB. The LBA is checked
// on its own first, so that lba+blocks cannot wrap around.
func fitsShort(lba uint64, blocks uint32) bool {
	return lba < 1<<32 && blocks <= 0xffff && lba+uint64(blocks) <= 1<<32
}

// TestUnitReady checks that the unit is ready.
func TestUnitReady() CDB { return newCDB(OpTestUnitReady, 6) }

// Inquiry asks for standard INQUIRY data, or with evpd the VPD page.
func Inquiry(evpd bool, page uint8, allocLen uint16) CDB {
	c := newCDB(OpInquiry, 6)
	if evpd {
		c.b[1] = 0x01
		c.b[2] = page
	}
	binary.BigEndian.PutUint16(c.b[3:], allocLen)
	return c
}

// ReadCapacity10 asks for the last LBA and block length.
func ReadCapacity10() CDB { return newCDB(OpReadCapacity10, 10) }

// ReadCapacity16 asks for the long capacity data.
func ReadCapacity16(allocLen uint32) CDB {
	c := newCDB(OpServiceActionIn16, 16)
	c.b[1] = SAReadCapacity16
	binary.BigEndian.PutUint32(c.b[10:], allocLen)
	return c
}

// SynchronizeCache16 flushes the range (all of the unit when blocks is 0).
func SynchronizeCache16(lba uint64, blocks uint32, immed bool) CDB {
	c := newCDB(OpSynchronizeCache16, 16)
	if immed {
		c.b[1] = 0x02
	}
	binary.BigEndian.PutUint64(c.b[2:], lba)
	binary.BigEndian.PutUint32(c.b[10:], blocks)
	return c
}

// SynchronizeCache10 flushes the range (all of the unit when blocks is 0).
func SynchronizeCache10(lba uint32, blocks uint16, immed bool) CDB {
	c := newCDB(OpSynchronizeCache10, 10)
	if immed {
		c.b[1] = 0x02
	}
	binary.BigEndian.PutUint32(c.b[2:], lba)
	binary.BigEndian.PutUint16(c.b[7:], blocks)
	return c
}

// Unmap announces an UNMAP parameter list of paramLen bytes.
func Unmap(paramLen uint16) CDB {
	c := newCDB(OpUnmap, 10)
	binary.BigEndian.PutUint16(c.b[7:], paramLen)
	return c
}

// ReportLuns asks for the logical unit inventory.
func ReportLuns(allocLen uint32) CDB {
	c := newCDB(OpReportLuns, 12)
	binary.BigEndian.PutUint32(c.b[6:], allocLen)
	return c
}

// Extent is a range of blocks.
type Extent struct {
	LBA    uint64
	Blocks uint32
}

// UnmapParams builds an UNMAP parameter list (SBC-3 5.28.2).
func UnmapParams(extents []Extent) []byte {
	b := make([]byte, 8+16*len(extents))
	binary.BigEndian.PutUint16(b[0:], uint16(len(b)-2))
	binary.BigEndian.PutUint16(b[2:], uint16(16*len(extents)))
	for i, e := range extents {
		d := b[8+16*i:]
		binary.BigEndian.PutUint64(d, e.LBA)
		binary.BigEndian.PutUint32(d[8:], e.Blocks)
	}
	return b
}

// MaxLUN is the highest LUN that EncodeLUN can address.
const MaxLUN = 0x3fff

// EncodeLUN puts a LUN in the 8-byte SAM form that iSCSI carries: peripheral
// addressing below 256, flat space addressing up to MaxLUN. Callers check
// the range: a larger LUN would alias another.
func EncodeLUN(lun uint16) uint64 {
	if lun < 256 {
		return uint64(lun) << 48
	}
	return uint64(0x4000|lun&0x3fff) << 48
}

// DecodeLUN reverses EncodeLUN for single-level LUNs.
func DecodeLUN(v uint64) uint16 { return uint16(v>>48) & 0x3fff }

// ParseReportLuns reads REPORT LUNS data.
func ParseReportLuns(b []byte) ([]uint16, error) {
	if len(b) < 8 {
		return nil, errShort("REPORT LUNS", len(b), 8)
	}
	n := int(binary.BigEndian.Uint32(b)) / 8
	var luns []uint16
	for i := 0; i < n && 8+8*i+8 <= len(b); i++ {
		luns = append(luns, DecodeLUN(binary.BigEndian.Uint64(b[8+8*i:])))
	}
	return luns, nil
}
