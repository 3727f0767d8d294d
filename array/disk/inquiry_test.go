package disk

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

func TestStandardInquiry(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	b := d.good(inquiryCDB(false, 0, 255), nil)
	inq, err := scsi.ParseStandardInquiry(b)
	if err != nil {
		t.Fatal(err)
	}
	want := scsi.StandardInquiry{Version: 6, CmdQue: true, Vendor: "HITKIT", Product: "LAB DISK", Revision: "0001"}
	if inq != want {
		t.Fatalf("got %+v, want %+v", inq, want)
	}
	if b[3] != 0x12 { // HISUP, response data format 2
		t.Fatalf("byte 3 %#x", b[3])
	}
	if int(b[4])+5 != len(b) {
		t.Fatalf("additional length %d for %d bytes", b[4], len(b))
	}
	if binary.BigEndian.Uint16(b[62:]) != 0x0460 || binary.BigEndian.Uint16(b[64:]) != 0x04c0 {
		t.Fatalf("version descriptors % x", b[58:74])
	}
	// Allocation length truncates, down to nothing.
	for _, n := range []uint16{0, 5, 36, 95} {
		if got := d.good(inquiryCDB(false, 0, n), nil); !bytes.Equal(got, b[:n]) {
			t.Fatalf("allocation length %d: %d bytes", n, len(got))
		}
	}
	pageNoEVPD := inquiryCDB(false, 0, 255)
	pageNoEVPD[2] = 0x80
	d.fails(pageNoEVPD, nil, scsi.KeyIllegalRequest, 0x24, 0)
	d.fails(inquiryCDB(true, 0x42, 255), nil, scsi.KeyIllegalRequest, 0x24, 0)
	cmddt := inquiryCDB(false, 0, 255)
	cmddt[1] = 0x02
	d.fails(cmddt, nil, scsi.KeyIllegalRequest, 0x24, 0)
}

func TestVPDPages(t *testing.T) {
	d := newTestDisk(t, mib, Options{ThinProvisioning: true})
	pages, err := scsi.ParseSupportedPages(d.good(inquiryCDB(true, 0, 255), nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pages, []uint8{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}) {
		t.Fatalf("pages % x", pages)
	}
	for _, p := range pages {
		b := d.good(inquiryCDB(true, p, 255), nil)
		if b[1] != p || int(binary.BigEndian.Uint16(b[2:]))+4 != len(b) {
			t.Fatalf("page %#x header % x for %d bytes", p, b[:4], len(b))
		}
	}
	serial, err := scsi.ParseUnitSerial(d.good(inquiryCDB(true, 0x80, 255), nil))
	if err != nil || serial != "SN-0001" {
		t.Fatalf("serial %q %v", serial, err)
	}
	b1 := d.good(inquiryCDB(true, 0xb1, 255), nil)
	if binary.BigEndian.Uint16(b1[4:]) != 1 {
		t.Fatal("B1: not non-rotating")
	}
	b2 := d.good(inquiryCDB(true, 0xb2, 255), nil)
	if b2[5] != 0xe4 {
		t.Fatalf("B2 byte 5 %#x, want LBPU|LBPWS|LBPWS10|LBPRZ", b2[5])
	}
}

func TestDeviceIdentificationIsStablePerUnit(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	d.id.Port = func(n target.Nexus) PortIdentity { return PortIdentity{RelativePort: n.TPGT, Group: 1} }
	a := d.good(inquiryCDB(true, 0x83, 255), nil)
	b := d.run(nexusB, inquiryCDB(true, 0x83, 255), nil).DataIn
	da, err := scsi.ParseDeviceIdentification(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := scsi.ParseDeviceIdentification(b)
	if err != nil {
		t.Fatal(err)
	}
	wwid := scsi.WWID(da)
	if wwid == "" || wwid != scsi.WWID(db) || !strings.HasPrefix(wwid, "naa.6123456") {
		t.Fatalf("WWIDs %q and %q", wwid, scsi.WWID(db))
	}
	// The same identity on another disk object (a restart) gives the same WWID.
	d2 := newTestDisk(t, mib, Options{})
	if w, _ := scsi.ParseDeviceIdentification(d2.good(inquiryCDB(true, 0x83, 255), nil)); scsi.WWID(w) != wwid {
		t.Fatal("WWID not stable across instances")
	}
	var sawPort, sawGroup, sawName bool
	for _, ds := range da {
		switch {
		case ds.Type == scsi.DesigRelativePort:
			sawPort = ds.Association == scsi.AssocPort && binary.BigEndian.Uint16(ds.Value[2:]) == 1
		case ds.Type == scsi.DesigTargetPortGrp:
			sawGroup = true
		case ds.Type == scsi.DesigSCSIName && ds.Association == scsi.AssocPort:
			sawName = strings.HasPrefix(string(ds.Value), "iqn.2024-01.test:vol,t,0x0001\x00") && len(ds.Value)%4 == 0
		}
	}
	if !sawPort || !sawGroup || !sawName {
		t.Fatalf("port designators missing: %v %v %v", sawPort, sawGroup, sawName)
	}
}

func TestBlockLimits(t *testing.T) {
	thin := newTestDisk(t, mib, Options{ThinProvisioning: true, OptimalTransferLength: 128})
	l, err := scsi.ParseBlockLimits(thin.good(inquiryCDB(true, 0xb0, 255), nil))
	if err != nil {
		t.Fatal(err)
	}
	want := scsi.BlockLimits{MaxTransferLength: 65536, OptimalTransferLength: 128, MaxUnmapLBACount: 0xffffffff,
		MaxUnmapDescriptors: maxUnmapDescriptors, OptimalUnmapGranularity: 8}
	if l != want {
		t.Fatalf("got %+v, want %+v", l, want)
	}
	b := thin.good(inquiryCDB(true, 0xb0, 255), nil)
	if b[3] != 0x3c || b[5] != 255 || binary.BigEndian.Uint64(b[36:]) != defaultMaxWriteSame {
		t.Fatalf("page length %#x, max compare %d, max write same %d", b[3], b[5], binary.BigEndian.Uint64(b[36:]))
	}
	thick := newTestDisk(t, mib, Options{})
	l, _ = scsi.ParseBlockLimits(thick.good(inquiryCDB(true, 0xb0, 255), nil))
	if l.MaxUnmapLBACount != 0 || l.MaxUnmapDescriptors != 0 {
		t.Fatalf("thick disk reports unmap limits %+v", l)
	}
}

func TestReadCapacity(t *testing.T) {
	d := newTestDisk(t, 3*mib, Options{ThinProvisioning: true})
	c10, err := scsi.ParseReadCapacity10(d.good(bytesOf(scsi.ReadCapacity10()), nil))
	if err != nil || c10.LastLBA != 6143 || c10.BlockLength != 512 {
		t.Fatalf("%+v %v", c10, err)
	}
	c16, err := scsi.ParseReadCapacity16(d.good(bytesOf(scsi.ReadCapacity16(32)), nil))
	want := scsi.Capacity{LastLBA: 6143, BlockLength: 512, ThinProvisioned: true, ZeroesUnmapped: true}
	if err != nil || c16 != want {
		t.Fatalf("%+v %v", c16, err)
	}
	if got := d.good(bytesOf(scsi.ReadCapacity16(12)), nil); len(got) != 12 {
		t.Fatalf("allocation length 12: %d bytes", len(got))
	}
	badLBA := bytesOf(scsi.ReadCapacity10())
	badLBA[5] = 1 // LBA without PMI
	d.fails(badLBA, nil, scsi.KeyIllegalRequest, 0x24, 0)
}

func TestReadCapacity10PastTwoTerabytes(t *testing.T) {
	c := scsi.Capacity{LastLBA: 1 << 33, BlockLength: 512}
	if b := c.Bytes10(); binary.BigEndian.Uint32(b) != 0xffffffff {
		t.Fatalf("% x", b)
	}
}

func TestIdentityValidation(t *testing.T) {
	for _, id := range []Identity{
		{Vendor: "TOOLONGVENDOR", Serial: "x"},
		{Vendor: "V", Serial: ""},
		{Vendor: "V\x01", Serial: "x"},
		{Vendor: "V", Serial: "x", NAA: [16]byte{0x50}},
	} {
		if _, err := id.normalized(); err == nil {
			t.Errorf("%+v accepted", id)
		}
	}
	naa := NAAFromSerial(0xabcdef, "s")
	if naa[0] != 0x6a || naa[1] != 0xbc || naa[2] != 0xde || naa[3]>>4 != 0xf {
		t.Fatalf("NAA % x", naa)
	}
}
