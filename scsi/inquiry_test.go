package scsi

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

func TestParseStandardInquiryCaptured(t *testing.T) {
	for _, tc := range []struct {
		file string
		want StandardInquiry
	}{
		{"inquiry-disk.bin", StandardInquiry{PeripheralType: 0x00, Version: 5, CmdQue: true,
			Vendor: "IET", Product: "VIRTUAL-DISK", Revision: "0001"}},
		{"inquiry-controller.bin", StandardInquiry{PeripheralType: 0x0c, Version: 5, CmdQue: true,
			Vendor: "IET", Product: "Controller", Revision: "0001"}},
	} {
		got, err := ParseStandardInquiry(readCapture(t, tc.file))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v\nwant %+v", tc.file, got, err, tc.want)
		}
	}
}

func TestParseStandardInquiry(t *testing.T) {
	b := make([]byte, 36)
	b[0] = 0x3f // qualifier bits 0x20 are not the type
	b[1] = 0x80
	b[2] = 0x06
	b[5] = 0x30 // TPGS = 3
	b[7] = 0x02
	copy(b[8:], "  EQL\x00  ")
	copy(b[16:], "100E-00\x01\x7f       ")
	copy(b[32:], "7.1 ")
	got, err := ParseStandardInquiry(b)
	want := StandardInquiry{PeripheralType: 0x1f, Removable: true, Version: 6, TPGS: 3, CmdQue: true,
		Vendor: "  EQL", Product: "100E-00", Revision: "7.1"}
	if err != nil || got != want {
		t.Fatalf("%+v, %v\nwant %+v", got, err, want)
	}
	b[5] = 0x10
	if got, _ := ParseStandardInquiry(b); got.TPGS != 1 {
		t.Fatalf("TPGS = %d, want 1 (implicit ALUA)", got.TPGS)
	}
	for _, n := range []int{0, 8, 35} {
		if _, err := ParseStandardInquiry(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "need 36") {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

func TestStandardInquiryBytes(t *testing.T) {
	s := StandardInquiry{PeripheralType: 0, Removable: false, Version: 6, TPGS: 1, CmdQue: true,
		Vendor: "EQLOGIC", Product: "100E-00", Revision: "9.1"}
	b := s.Bytes()
	if len(b) != 96 || b[3] != 0x02 || b[4] != 91 || b[5] != 0x10 || b[7] != 0x02 {
		t.Fatalf("header bytes % x", b[:8])
	}
	if got := string(b[8:36]); got != "EQLOGIC 100E-00         9.1 " {
		t.Fatalf("identification %q", got)
	}
	back, err := ParseStandardInquiry(b)
	if err != nil || back != s {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	// Over-long fields are cut to their width.
	long := StandardInquiry{Vendor: "VENDORNAME", Product: "A-PRODUCT-NAME-LONGER-THAN-16", Revision: "12345"}
	back, _ = ParseStandardInquiry(long.Bytes())
	if back.Vendor != "VENDORNA" || back.Product != "A-PRODUCT-NAME-L" || back.Revision != "1234" {
		t.Fatalf("truncation: %+v", back)
	}
}

func TestVPDPage(t *testing.T) {
	got := VPDPage(0x20|0x05, VPDUnitSerial, []byte("SN1"))
	if hex.EncodeToString(got) != "05800003534e31" {
		t.Fatalf("VPDPage = %x", got)
	}
	body, err := vpdPayload(got, VPDUnitSerial)
	if err != nil || string(body) != "SN1" {
		t.Fatalf("%q, %v", body, err)
	}
}

func TestParseSupportedPages(t *testing.T) {
	pages, err := ParseSupportedPages(readCapture(t, "vpd-00.bin"))
	if err != nil || !bytes.Equal(pages, []byte{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}) {
		t.Fatalf("%x, %v", pages, err)
	}
	for _, tc := range []struct {
		in, msg string
	}{
		{"", "need 4"},
		{"00 00 00", "need 4"},
		{"00 80 00 00", "asked for VPD page 0x00, got 0x80"},
		{"00 00 00 06 00 80 83", "is 7 bytes, need 10"},
	} {
		if _, err := ParseSupportedPages(unhex(t, tc.in)); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.msg)
		}
	}
	// Bytes past the page length are not pages.
	pages, err = ParseSupportedPages(unhex(t, "00 00 00 02 00 80 ff ff"))
	if err != nil || !bytes.Equal(pages, []byte{0x00, 0x80}) {
		t.Fatalf("%x, %v", pages, err)
	}
}

func TestParseUnitSerial(t *testing.T) {
	sn, err := ParseUnitSerial(readCapture(t, "vpd-80.bin"))
	if err != nil || sn != "beaf11" {
		t.Fatalf("tgtd serial %q, %v", sn, err)
	}
	for in, want := range map[string]string{
		"SN-0001":          "SN-0001",
		"  padded  ":       "padded",
		"NUL\x00ended":     "NULended",
		"":                 "",
		"6090A028\x00\x00": "6090A028",
	} {
		got, err := ParseUnitSerial(VPDPage(0, VPDUnitSerial, []byte(in)))
		if err != nil || got != want {
			t.Errorf("serial %q: %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseUnitSerial(VPDPage(0, VPDDeviceIdentification, []byte("x"))); err == nil {
		t.Fatal("page 0x83 read as a serial number")
	}
}

func TestParseDeviceIdentificationCaptured(t *testing.T) {
	ds, err := ParseDeviceIdentification(readCapture(t, "vpd-83.bin"))
	if err != nil {
		t.Fatal(err)
	}
	t10 := append([]byte("IET     00010001"), make([]byte, 20)...)
	want := []Designator{
		{CodeSet: CodeSetASCII, Association: AssocLU, Type: DesigT10, Value: t10},
		{CodeSet: CodeSetBinary, Association: AssocLU, Type: DesigNAA, Value: unhex(t, "3000000100000001")},
		{CodeSet: CodeSetBinary, Association: AssocLU, Type: DesigNAA, Value: unhex(t, "60000000000000000e00000000010001")},
	}
	if !reflect.DeepEqual(ds, want) {
		t.Fatalf("designators\n got %+v\nwant %+v", ds, want)
	}
	if got := WWID(ds); got != "naa.60000000000000000e00000000010001" {
		t.Fatalf("WWID = %q", got)
	}
	if got := WWID(ds[:1]); got != "t10.IET_00010001" {
		t.Fatalf("T10 WWID = %q", got)
	}
}

func TestDeviceIdentificationRoundTrip(t *testing.T) {
	ds := []Designator{
		{CodeSet: CodeSetBinary, Association: AssocLU, Type: DesigNAA, Value: unhex(t, "6090a028d0a6a1c3b4c2d4e5f6a7b8c9")},
		{CodeSet: CodeSetBinary, Association: AssocLU, Type: DesigEUI64, Value: unhex(t, "0011223344556677")},
		{CodeSet: CodeSetASCII, Association: AssocLU, Type: DesigT10, Value: []byte("EQLOGIC 100E-00 6090A028")},
		{CodeSet: CodeSetUTF8, Association: AssocLU, Type: DesigSCSIName, Value: []byte("iqn.2001-05.com.equallogic:vol1\x00")},
		{CodeSet: CodeSetBinary, Association: AssocPort, Type: DesigRelativePort, Value: []byte{0, 0, 0, 1}},
		{CodeSet: CodeSetBinary, Association: AssocPort, Type: DesigTargetPortGrp, Value: []byte{0, 0, 0, 2}},
		{CodeSet: CodeSetUTF8, Association: AssocTarget, Type: DesigSCSIName, Value: []byte("iqn.2001-05.com.equallogic:group,t,0x0001")},
		{CodeSet: CodeSetBinary, Association: AssocLU, Type: DesigVendor, Value: bytes.Repeat([]byte{0xab}, 255)},
	}
	body := DeviceIdentificationBody(ds)
	// The first descriptor byte by byte: protocol iSCSI (5) | binary, LU NAA, length 16.
	if !bytes.Equal(body[:4], []byte{0x51, 0x03, 0x00, 0x10}) {
		t.Fatalf("NAA designator header % x", body[:4])
	}
	// A port designator sets PIV and association 1: 0x80 | 0x10 | type 4.
	off := 0
	for _, d := range ds[:4] {
		off += 4 + len(d.Value)
	}
	if !bytes.Equal(body[off:off+4], []byte{0x51, 0x94, 0x00, 0x04}) {
		t.Fatalf("relative port designator header % x", body[off:off+4])
	}
	got, err := ParseDeviceIdentification(VPDPage(0, VPDDeviceIdentification, body))
	if err != nil || !reflect.DeepEqual(got, ds) {
		t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, ds)
	}
}

func TestParseDeviceIdentificationErrors(t *testing.T) {
	// A designator whose length runs past the page: what came before it is kept.
	body := append(DeviceIdentificationBody([]Designator{{CodeSet: 1, Type: DesigNAA, Value: make([]byte, 8)}}),
		0x51, 0x02, 0x00, 0x08, 1, 2, 3)
	ds, err := ParseDeviceIdentification(VPDPage(0, VPDDeviceIdentification, body))
	if err == nil || !strings.Contains(err.Error(), "overruns the page") || len(ds) != 1 {
		t.Fatalf("%+v, %v", ds, err)
	}
	// Fewer than 4 trailing bytes are ignored.
	body = append(DeviceIdentificationBody([]Designator{{CodeSet: 1, Type: DesigEUI64, Value: make([]byte, 8)}}), 0, 0)
	if ds, err := ParseDeviceIdentification(VPDPage(0, VPDDeviceIdentification, body)); err != nil || len(ds) != 1 {
		t.Fatalf("%+v, %v", ds, err)
	}
	if ds, err := ParseDeviceIdentification(VPDPage(0, VPDDeviceIdentification, nil)); err != nil || len(ds) != 0 {
		t.Fatalf("empty page: %+v, %v", ds, err)
	}
	if _, err := ParseDeviceIdentification(VPDPage(0, VPDUnitSerial, nil)); err == nil {
		t.Fatal("page 0x80 read as 0x83")
	}
}

func TestWWIDPriority(t *testing.T) {
	naa6 := Designator{CodeSet: 1, Type: DesigNAA, Value: unhex(t, "6090a028d0a6a1c3b4c2d4e5f6a7b8c9")}
	naa5 := Designator{CodeSet: 1, Type: DesigNAA, Value: unhex(t, "5000c50012345678")}
	naa3 := Designator{CodeSet: 1, Type: DesigNAA, Value: unhex(t, "3000000100000001")}
	eui := Designator{CodeSet: 1, Type: DesigEUI64, Value: unhex(t, "0011223344556677")}
	t10 := Designator{CodeSet: 2, Type: DesigT10, Value: []byte("EQLOGIC  100E-00  6090A028\x00\x00")}
	name := Designator{CodeSet: 3, Type: DesigSCSIName, Value: []byte("IQN.2001-05.COM.EQUALLOGIC:VOL1\x00\x00\x00")}
	vendor := Designator{CodeSet: 1, Type: DesigVendor, Value: []byte{1, 2, 3}}
	port := func(d Designator) Designator { d.Association = AssocPort; return d }
	target := func(d Designator) Designator { d.Association = AssocTarget; return d }
	for _, tc := range []struct {
		name string
		ds   []Designator
		want string
	}{
		{"NAA over everything", []Designator{name, t10, eui, naa6}, "naa.6090a028d0a6a1c3b4c2d4e5f6a7b8c9"},
		{"NAA 6 over NAA 5 over NAA 3", []Designator{naa3, naa5, naa6}, "naa.6090a028d0a6a1c3b4c2d4e5f6a7b8c9"},
		{"NAA 5 over NAA 3", []Designator{naa3, naa5}, "naa.5000c50012345678"},
		{"EUI-64 over T10 and name", []Designator{t10, name, eui}, "eui.0011223344556677"},
		{"T10 alone", []Designator{t10}, "t10.EQLOGIC_100E-00_6090A028"},
		{"name alone", []Designator{name}, "iqn.2001-05.com.equallogic:vol1"},
		{"vendor specific is not an identifier", []Designator{vendor}, ""},
		{"port and target designators do not count", []Designator{port(naa6), target(naa5), port(eui), t10}, "t10.EQLOGIC_100E-00_6090A028"},
		{"empty values do not count", []Designator{{CodeSet: 1, Type: DesigNAA}, eui}, "eui.0011223344556677"},
		{"nothing", nil, ""},
	} {
		if got := WWID(tc.ds); got != tc.want {
			t.Errorf("%s: WWID = %q, want %q", tc.name, got, tc.want)
		}
	}
	// Like Linux's scsi_id (udev), a T10 vendor ID is preferred to a SCSI
	// name string; the name is the last resort.
	if got := WWID([]Designator{name, t10}); got != "t10.EQLOGIC_100E-00_6090A028" {
		t.Errorf("BUG: WWID(name string, T10) = %q, want the T10 designator (NAA > EUI-64 > T10 > name)", got)
	}
}

func TestBlockLimits(t *testing.T) {
	l := BlockLimits{MaxTransferLength: 0x800, OptimalTransferLength: 0x80, MaxUnmapLBACount: 0x400000,
		MaxUnmapDescriptors: 16, OptimalUnmapGranularity: 2048}
	b := l.Bytes(0)
	if len(b) != 64 || b[1] != 0xb0 || b[2] != 0 || b[3] != 60 {
		t.Fatalf("header % x, %d bytes", b[:4], len(b))
	}
	// SBC-4 table: bytes 8..11, 12..15, 20..23, 24..27, 28..31 of the page.
	want := hx("00b0003c 00000000 00000800 00000080 00000000 00400000 00000010 00000800")
	if got := hex.EncodeToString(b[:32]); got != want {
		t.Fatalf("page\n got %s\nwant %s", got, want)
	}
	back, err := ParseBlockLimits(b)
	if err != nil || back != l {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	captured, err := ParseBlockLimits(readCapture(t, "vpd-b0.bin"))
	if err != nil || captured != (BlockLimits{}) {
		t.Fatalf("tgtd block limits %+v, %v", captured, err)
	}
	// A short page reports what it has, zero for the rest.
	short := VPDPage(0, VPDBlockLimits, b[4:16])
	if got, err := ParseBlockLimits(short); err != nil || got != (BlockLimits{MaxTransferLength: 0x800, OptimalTransferLength: 0x80}) {
		t.Fatalf("short page %+v, %v", got, err)
	}
	if got, err := ParseBlockLimits(VPDPage(0, VPDBlockLimits, b[4:11])); err != nil || got != (BlockLimits{}) {
		t.Fatalf("very short page %+v, %v", got, err)
	}
	if _, err := ParseBlockLimits(readCapture(t, "vpd-b2.bin")); err == nil {
		t.Fatal("page 0xb2 read as 0xb0")
	}
}

func TestReadCapacity(t *testing.T) {
	c10, err := ParseReadCapacity10(readCapture(t, "readcap10.bin"))
	if err != nil || c10 != (Capacity{LastLBA: 0x1ffff, BlockLength: 512}) || c10.Blocks() != 131072 {
		t.Fatalf("tgtd READ CAPACITY(10) %+v, %v", c10, err)
	}
	c16, err := ParseReadCapacity16(readCapture(t, "readcap16.bin"))
	if err != nil || c16 != (Capacity{LastLBA: 0x1ffff, BlockLength: 512}) {
		t.Fatalf("tgtd READ CAPACITY(16) %+v, %v", c16, err)
	}
	for _, tc := range []struct {
		in   string
		want Capacity
	}{
		{"0000000000000fff 00001000 00 00 0000 0000000000000000", Capacity{LastLBA: 0xfff, BlockLength: 4096}},
		{"0000000000000fff 00000200 00 00 8000 0000000000000000", Capacity{LastLBA: 0xfff, BlockLength: 512, ThinProvisioned: true}},
		{"0000000000000fff 00000200 00 00 c000 0000000000000000", Capacity{LastLBA: 0xfff, BlockLength: 512, ThinProvisioned: true, ZeroesUnmapped: true}},
		{"0000000000000fff 00000200 00 00 4000 0000000000000000", Capacity{LastLBA: 0xfff, BlockLength: 512, ZeroesUnmapped: true}},
		// Protection (P_TYPE, PROT_EN), exponents and the lowest aligned LBA do
		// not disturb the provisioning bits.
		{"0000010000000000 00000200 0b 3f 3fff 0000000000000000", Capacity{LastLBA: 1 << 40, BlockLength: 512}},
		{"ffffffffffffffff 00000200 0b 3f ffff ffffffffffffffff", Capacity{LastLBA: 1<<64 - 1, BlockLength: 512, ThinProvisioned: true, ZeroesUnmapped: true}},
		{"0000000000000fff 00000200 00 00 8000", Capacity{LastLBA: 0xfff, BlockLength: 512, ThinProvisioned: true}}, // 16 bytes suffice
	} {
		got, err := ParseReadCapacity16(unhex(t, tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseReadCapacity16(make([]byte, 15)); err == nil || !strings.Contains(err.Error(), "READ CAPACITY (16) data is 15 bytes, need 16") {
		t.Errorf("short RC16: %v", err)
	}
	if _, err := ParseReadCapacity10(make([]byte, 7)); err == nil || !strings.Contains(err.Error(), "need 8") {
		t.Errorf("short RC10: %v", err)
	}
}

func TestCapacityBytes(t *testing.T) {
	c := Capacity{LastLBA: 0x1_0000_0000, BlockLength: 512, ThinProvisioned: true, ZeroesUnmapped: true}
	if got := hex.EncodeToString(c.Bytes10()); got != "ffffffff00000200" {
		t.Fatalf("Bytes10 past 2 TiB = %s", got)
	}
	b16 := c.Bytes16()
	if len(b16) != 32 || hex.EncodeToString(b16) != hx("0000000100000000 00000200 00 00 c000", strings.Repeat("00", 16)) {
		t.Fatalf("Bytes16 = %x", b16)
	}
	if back, err := ParseReadCapacity16(b16); err != nil || back != c {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	small := Capacity{LastLBA: 0xfffffffe, BlockLength: 4096}
	if back, err := ParseReadCapacity10(small.Bytes10()); err != nil || back != small {
		t.Fatalf("RC10 round trip %+v, %v", back, err)
	}
	if got := hex.EncodeToString(Capacity{LastLBA: 0xffffffff, BlockLength: 512}.Bytes10()); got != "ffffffff00000200" {
		t.Fatalf("Bytes10 at 0xffffffff = %s", got)
	}
}
