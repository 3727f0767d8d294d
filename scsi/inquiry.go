package scsi

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// VPD page codes.
const (
	VPDSupportedPages        = 0x00
	VPDUnitSerial            = 0x80
	VPDDeviceIdentification  = 0x83
	VPDBlockLimits           = 0xb0
	VPDBlockCharacteristics  = 0xb1
	VPDLogicalBlockProvision = 0xb2
)

// StandardInquiry is the standard INQUIRY data that hitkit reads.
type StandardInquiry struct {
	PeripheralType uint8
	Removable      bool
	Version        uint8
	TPGS           uint8 // asymmetric access support
	CmdQue         bool
	Vendor         string // 8 bytes, trimmed
	Product        string // 16 bytes, trimmed
	Revision       string // 4 bytes, trimmed
}

// ParseStandardInquiry reads standard INQUIRY data.
func ParseStandardInquiry(b []byte) (StandardInquiry, error) {
	if len(b) < 36 {
		return StandardInquiry{}, errShort("INQUIRY", len(b), 36)
	}
	return StandardInquiry{
		PeripheralType: b[0] & 0x1f,
		Removable:      b[1]&0x80 != 0,
		Version:        b[2],
		TPGS:           b[5] >> 4 & 0x3,
		CmdQue:         b[7]&0x02 != 0,
		Vendor:         trimASCII(b[8:16]),
		Product:        trimASCII(b[16:32]),
		Revision:       trimASCII(b[32:36]),
	}, nil
}

// Bytes builds standard INQUIRY data (96 bytes, SPC-4 version).
func (s StandardInquiry) Bytes() []byte {
	b := make([]byte, 96)
	b[0] = s.PeripheralType & 0x1f
	if s.Removable {
		b[1] = 0x80
	}
	b[2] = s.Version
	b[3] = 0x02 // response data format 2
	b[4] = byte(len(b) - 5)
	b[5] = (s.TPGS & 0x3) << 4
	if s.CmdQue {
		b[7] = 0x02
	}
	padASCII(b[8:16], s.Vendor)
	padASCII(b[16:32], s.Product)
	padASCII(b[32:36], s.Revision)
	return b
}

func trimASCII(b []byte) string {
	return strings.TrimRight(strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, string(b)), " ")
}

func padASCII(dst []byte, s string) {
	n := copy(dst, s)
	for i := n; i < len(dst); i++ {
		dst[i] = ' '
	}
}

// vpdPayload checks a VPD page header and returns the page body.
func vpdPayload(b []byte, page uint8) ([]byte, error) {
	if len(b) < 4 {
		return nil, errShort(fmt.Sprintf("VPD page 0x%02x", page), len(b), 4)
	}
	if b[1] != page {
		return nil, fmt.Errorf("scsi: asked for VPD page 0x%02x, got 0x%02x", page, b[1])
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if 4+n > len(b) {
		return nil, errShort(fmt.Sprintf("VPD page 0x%02x", page), len(b), 4+n)
	}
	return b[4 : 4+n], nil
}

// VPDPage builds a VPD page around body.
func VPDPage(peripheralType, page uint8, body []byte) []byte {
	b := make([]byte, 4, 4+len(body))
	b[0] = peripheralType & 0x1f
	b[1] = page
	binary.BigEndian.PutUint16(b[2:], uint16(len(body)))
	return append(b, body...)
}

// ParseSupportedPages reads VPD page 0x00.
func ParseSupportedPages(b []byte) ([]uint8, error) { return vpdPayload(b, VPDSupportedPages) }

// ParseUnitSerial reads VPD page 0x80.
func ParseUnitSerial(b []byte) (string, error) {
	p, err := vpdPayload(b, VPDUnitSerial)
	return strings.TrimSpace(trimASCII(p)), err
}

// Designator code sets, and the designator types hitkit handles.
const (
	CodeSetBinary = 1
	CodeSetASCII  = 2
	CodeSetUTF8   = 3

	DesigVendor        = 0x0
	DesigT10           = 0x1
	DesigEUI64         = 0x2
	DesigNAA           = 0x3
	DesigRelativePort  = 0x4
	DesigTargetPortGrp = 0x5
	DesigSCSIName      = 0x8
)

// Association of a designator: the logical unit, its port, or its target.
const (
	AssocLU     = 0
	AssocPort   = 1
	AssocTarget = 2
)

// Designator is one entry of VPD page 0x83.
type Designator struct {
	CodeSet     uint8
	Association uint8
	Type        uint8
	Value       []byte
}

// ParseDeviceIdentification reads VPD page 0x83.
func ParseDeviceIdentification(b []byte) ([]Designator, error) {
	p, err := vpdPayload(b, VPDDeviceIdentification)
	if err != nil {
		return nil, err
	}
	var ds []Designator
	for len(p) >= 4 {
		n := 4 + int(p[3])
		if n > len(p) {
			return ds, fmt.Errorf("scsi: VPD 0x83 designator of %d bytes overruns the page", n)
		}
		ds = append(ds, Designator{
			CodeSet: p[0] & 0x0f, Association: p[1] >> 4 & 0x3, Type: p[1] & 0x0f,
			Value: append([]byte(nil), p[4:n]...),
		})
		p = p[n:]
	}
	return ds, nil
}

// DeviceIdentificationBody builds the body of VPD page 0x83.
func DeviceIdentificationBody(ds []Designator) []byte {
	var b []byte
	for _, d := range ds {
		piv := byte(0)
		if d.Association != AssocLU {
			piv = 0x80 // protocol identifier valid: iSCSI
		}
		b = append(b, 0x50|d.CodeSet&0x0f, piv|(d.Association&3)<<4|d.Type&0x0f, 0, byte(len(d.Value)))
		b = append(b, d.Value...)
	}
	return b
}

// WWID picks the logical unit's world wide identifier from its designators
// in udev's scsi_id order, which multipath-tools uses: NAA (IEEE Registered
// Extended first), then EUI-64, then T10 vendor ID, and the SCSI name
// string last. Paths to one unit report the same WWID; that is how
// multipath recognises them.
func WWID(ds []Designator) string {
	best, rank := "", 0
	for _, d := range ds {
		if d.Association != AssocLU || len(d.Value) == 0 {
			continue
		}
		var r int
		var s string
		switch d.Type {
		case DesigNAA:
			r, s = 10+int(d.Value[0]>>4), "naa."+hex.EncodeToString(d.Value)
		case DesigEUI64:
			r, s = 8, "eui."+hex.EncodeToString(d.Value)
		case DesigT10:
			r, s = 7, "t10."+strings.Join(strings.Fields(trimASCII(d.Value)), "_")
		case DesigSCSIName:
			r, s = 6, strings.ToLower(trimASCII(d.Value))
		default:
			continue
		}
		if r > rank {
			best, rank = s, r
		}
	}
	return best
}

// BlockLimits is VPD page 0xb0, as far as hitkit uses it. Zero means "no
// limit reported".
type BlockLimits struct {
	MaxTransferLength       uint32 // blocks per READ/WRITE
	OptimalTransferLength   uint32
	MaxUnmapLBACount        uint32
	MaxUnmapDescriptors     uint32
	OptimalUnmapGranularity uint32
}

// ParseBlockLimits reads VPD page 0xb0.
func ParseBlockLimits(b []byte) (BlockLimits, error) {
	p, err := vpdPayload(b, VPDBlockLimits)
	if err != nil {
		return BlockLimits{}, err
	}
	var l BlockLimits
	u32 := func(off int) uint32 {
		if off-4+4 > len(p) {
			return 0
		}
		return binary.BigEndian.Uint32(p[off-4:])
	}
	l.MaxTransferLength = u32(8)
	l.OptimalTransferLength = u32(12)
	l.MaxUnmapLBACount = u32(20)
	l.MaxUnmapDescriptors = u32(24)
	l.OptimalUnmapGranularity = u32(28)
	return l, nil
}

// Bytes builds VPD page 0xb0.
func (l BlockLimits) Bytes(peripheralType uint8) []byte {
	body := make([]byte, 60)
	put := func(off int, v uint32) { binary.BigEndian.PutUint32(body[off-4:], v) }
	put(8, l.MaxTransferLength)
	put(12, l.OptimalTransferLength)
	put(20, l.MaxUnmapLBACount)
	put(24, l.MaxUnmapDescriptors)
	put(28, l.OptimalUnmapGranularity)
	return VPDPage(peripheralType, VPDBlockLimits, body)
}

// Capacity is READ CAPACITY data.
type Capacity struct {
	LastLBA     uint64
	BlockLength uint32
	// ThinProvisioned is LBPME: the unit supports UNMAP.
	ThinProvisioned bool
	// ZeroesUnmapped is LBPRZ: unmapped blocks read as zeroes.
	ZeroesUnmapped bool
}

// Blocks is the number of logical blocks.
func (c Capacity) Blocks() uint64 { return c.LastLBA + 1 }

// ParseReadCapacity10 reads READ CAPACITY (10) data.
func ParseReadCapacity10(b []byte) (Capacity, error) {
	if len(b) < 8 {
		return Capacity{}, errShort("READ CAPACITY (10)", len(b), 8)
	}
	return Capacity{LastLBA: uint64(binary.BigEndian.Uint32(b)), BlockLength: binary.BigEndian.Uint32(b[4:])}, nil
}

// ParseReadCapacity16 reads READ CAPACITY (16) data.
func ParseReadCapacity16(b []byte) (Capacity, error) {
	if len(b) < 16 {
		return Capacity{}, errShort("READ CAPACITY (16)", len(b), 16)
	}
	return Capacity{
		LastLBA: binary.BigEndian.Uint64(b), BlockLength: binary.BigEndian.Uint32(b[8:]),
		ThinProvisioned: b[14]&0x80 != 0, ZeroesUnmapped: b[14]&0x40 != 0,
	}, nil
}

// Bytes10 builds READ CAPACITY (10) data; a unit past 2 TiB reports
// 0xffffffff, telling the initiator to use the 16-byte form.
func (c Capacity) Bytes10() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, uint32(min(c.LastLBA, 0xffffffff)))
	binary.BigEndian.PutUint32(b[4:], c.BlockLength)
	return b
}

// Bytes16 builds READ CAPACITY (16) data.
func (c Capacity) Bytes16() []byte {
	b := make([]byte, 32)
	binary.BigEndian.PutUint64(b, c.LastLBA)
	binary.BigEndian.PutUint32(b[8:], c.BlockLength)
	if c.ThinProvisioned {
		b[14] |= 0x80
	}
	if c.ZeroesUnmapped {
		b[14] |= 0x40
	}
	return b
}
