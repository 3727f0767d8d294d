package disk

import (
	"encoding/binary"
	"fmt"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

const (
	peripheralDisk = 0x00
	versionSPC4    = 0x06
)

// Version descriptors claimed in standard INQUIRY data.
var versionDescriptors = []uint16{
	0x00a0, // SAM-5
	0x0960, // iSCSI
	0x0460, // SPC-4
	0x04c0, // SBC-3
}

// supportedVPD lists the VPD pages, in ascending order as SPC requires.
var supportedVPD = []uint8{
	scsi.VPDSupportedPages,
	scsi.VPDUnitSerial,
	scsi.VPDDeviceIdentification,
	scsi.VPDBlockLimits,
	scsi.VPDBlockCharacteristics,
	scsi.VPDLogicalBlockProvision,
}

func (d *Disk) inquiry(c *call) ([]byte, error) {
	evpd, page := c.cdb[1]&0x01 != 0, c.cdb[2]
	alloc := int(binary.BigEndian.Uint16(c.cdb[3:]))
	if !evpd {
		if page != 0 {
			return nil, errInvalidField(2, -1)
		}
		return truncate(d.standardInquiry(), alloc), nil
	}
	b, err := d.vpdPage(page, c.nexus())
	if err != nil {
		return nil, err
	}
	return truncate(b, alloc), nil
}

func (d *Disk) standardInquiry() []byte {
	b := scsi.StandardInquiry{
		PeripheralType: peripheralDisk,
		Version:        versionSPC4,
		CmdQue:         true,
		Vendor:         d.id.Vendor,
		Product:        d.id.Product,
		Revision:       d.id.Revision,
	}.Bytes()
	b[3] |= 0x10 // HISUP: LUNs are hierarchical (SAM addressing)
	for i, v := range versionDescriptors {
		binary.BigEndian.PutUint16(b[58+2*i:], v)
	}
	return b
}

func (d *Disk) vpdPage(page uint8, n target.Nexus) ([]byte, error) {
	var body []byte
	switch page {
	case scsi.VPDSupportedPages:
		body = supportedVPD
	case scsi.VPDUnitSerial:
		body = []byte(d.id.Serial)
	case scsi.VPDDeviceIdentification:
		body = scsi.DeviceIdentificationBody(d.designators(n))
	case scsi.VPDBlockLimits:
		return d.blockLimits(), nil
	case scsi.VPDBlockCharacteristics:
		body = blockCharacteristics()
	case scsi.VPDLogicalBlockProvision:
		body = d.provisioning()
	default:
		return nil, errInvalidField(2, -1)
	}
	return scsi.VPDPage(peripheralDisk, page, body), nil
}

// designators are VPD page 0x83's: the unit's own (the same everywhere),
// then those of the port and target the nexus came through.
func (d *Disk) designators(n target.Nexus) []scsi.Designator {
	t10 := make([]byte, 8, 8+len(d.id.Product)+1+len(d.id.Serial))
	copy(t10, fmt.Sprintf("%-8s", d.id.Vendor))
	t10 = append(t10, d.id.Product+":"+d.id.Serial...)
	ds := []scsi.Designator{
		{CodeSet: scsi.CodeSetBinary, Association: scsi.AssocLU, Type: scsi.DesigNAA, Value: d.id.NAA[:]},
		{CodeSet: scsi.CodeSetASCII, Association: scsi.AssocLU, Type: scsi.DesigT10, Value: t10},
	}
	if d.id.Port != nil {
		p := d.id.Port(n)
		if p.RelativePort != 0 {
			ds = append(ds, scsi.Designator{CodeSet: scsi.CodeSetBinary, Association: scsi.AssocPort,
				Type: scsi.DesigRelativePort, Value: []byte{0, 0, byte(p.RelativePort >> 8), byte(p.RelativePort)}})
		}
		if p.Group != 0 {
			ds = append(ds, scsi.Designator{CodeSet: scsi.CodeSetBinary, Association: scsi.AssocPort,
				Type: scsi.DesigTargetPortGrp, Value: []byte{0, 0, byte(p.Group >> 8), byte(p.Group)}})
		}
	}
	if n.TargetName != "" {
		port := fmt.Sprintf("%s,t,0x%04x", n.TargetName, n.TPGT)
		ds = append(ds,
			scsi.Designator{CodeSet: scsi.CodeSetUTF8, Association: scsi.AssocPort, Type: scsi.DesigSCSIName, Value: scsiName(port)},
			scsi.Designator{CodeSet: scsi.CodeSetUTF8, Association: scsi.AssocTarget, Type: scsi.DesigSCSIName, Value: scsiName(n.TargetName)})
	}
	return ds
}

// scsiName is a SCSI name string designator: NUL-terminated, padded with
// NULs to a multiple of four bytes.
func scsiName(s string) []byte {
	b := append([]byte(s), 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// blockLimits is VPD page 0xb0. scsi.BlockLimits lays out the fields the
// initiator reads; the rest are patched in here.
func (d *Disk) blockLimits() []byte {
	l := scsi.BlockLimits{
		MaxTransferLength:     d.opts.MaxTransferLength,
		OptimalTransferLength: d.opts.OptimalTransferLength,
	}
	if d.opts.ThinProvisioning {
		l.MaxUnmapLBACount = 0xffffffff // unmapping is punching holes: no limit
		l.MaxUnmapDescriptors = maxUnmapDescriptors
		l.OptimalUnmapGranularity = uint32(max(1, holeGranularity/d.blockSize))
	}
	b := l.Bytes(peripheralDisk)
	b[5] = maxCompareAndWrite
	binary.BigEndian.PutUint16(b[6:], 1)                         // optimal transfer length granularity
	binary.BigEndian.PutUint32(b[16:], d.opts.MaxTransferLength) // maximum prefetch length
	if d.opts.ThinProvisioning {
		b[32] |= 0x80 // UGAVALID, unmap granularity alignment 0
	}
	binary.BigEndian.PutUint64(b[36:], uint64(d.opts.MaxWriteSameLength))
	return b
}

// blockCharacteristics is VPD page 0xb1: a non-rotating medium.
func blockCharacteristics() []byte {
	body := make([]byte, 0x3c)
	binary.BigEndian.PutUint16(body[0:], 0x0001) // MEDIUM ROTATION RATE: non-rotating
	return body
}

// provisioning is VPD page 0xb2.
func (d *Disk) provisioning() []byte {
	body := make([]byte, 4)
	if d.opts.ThinProvisioning {
		body[1] = 0x80 | 0x40 | 0x20 | 0x04 // LBPU, LBPWS, LBPWS10, LBPRZ
		body[2] = 0x02                      // thin provisioned
	}
	return body
}

// truncate cuts returned data to the allocation length.
func truncate(b []byte, alloc int) []byte {
	if len(b) > alloc {
		return b[:alloc]
	}
	return b
}
