package scsi

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseSense: sense data that parses re-encodes (fixed format) to sense
// that parses to the same key, codes and 32-bit information.
func FuzzParseSense(f *testing.F) {
	f.Add(readCapture(f, "sense-unit-attention.bin"))
	f.Add(readCapture(f, "sense-illegal-request.bin"))
	f.Add(Sense{Key: KeyMediumError, ASC: 0x11, Information: 0x1234, HasInfo: true}.Bytes())
	f.Add(unhex(f, "72 03 11 00 000000 0c  00 0a 80 00 0102030405060708"))
	f.Add(unhex(f, "73 05 24 00 000000 14  02 06 00 00 c0 0001 00  00 0a 80 00 00000000000000ff"))
	f.Add([]byte{0x72, 0, 0, 0, 0, 0, 0, 0xff, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSense(b)
		if err != nil {
			if s != (Sense{}) {
				t.Fatalf("%+v with error %v", s, err)
			}
			return
		}
		if s.Key > 0xf {
			t.Fatalf("key %d", s.Key)
		}
		if s.String() == "" || NewError(StatusCheckCondition, b).Error() == "" {
			t.Fatal("empty text")
		}
		back, err := ParseSense(s.Bytes())
		want := s
		want.Deferred = false // Bytes builds current sense
		want.Information &= 0xffffffff
		if err != nil || back != want {
			t.Fatalf("ParseSense(%+v.Bytes()) = %+v, %v", s, back, err)
		}
	})
}

// FuzzParseDeviceIdentification: designators that parse rebuild into a page
// that parses to the same designators; WWID never panics and always names
// an identifier of the logical unit.
func FuzzParseDeviceIdentification(f *testing.F) {
	f.Add(readCapture(f, "vpd-83.bin"))
	f.Add(VPDPage(0, VPDDeviceIdentification, DeviceIdentificationBody([]Designator{
		{CodeSet: CodeSetBinary, Type: DesigEUI64, Value: []byte{0, 1, 2, 3, 4, 5, 6, 7}},
		{CodeSet: CodeSetUTF8, Type: DesigSCSIName, Value: []byte("iqn.2001-05.com.equallogic:vol1\x00")},
		{CodeSet: CodeSetBinary, Association: AssocPort, Type: DesigRelativePort, Value: []byte{0, 0, 0, 1}},
	})))
	f.Add([]byte{0, 0x83, 0, 4, 0x51, 0x03, 0, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := ParseDeviceIdentification(b)
		id := WWID(ds)
		if id != "" && !strings.HasPrefix(id, "naa.") && !strings.HasPrefix(id, "eui.") && !strings.HasPrefix(id, "t10.") {
			found := false
			for _, d := range ds {
				found = found || d.Type == DesigSCSIName && d.Association == AssocLU
			}
			if !found {
				t.Fatalf("WWID %q from %+v", id, ds)
			}
		}
		if err != nil {
			return
		}
		again, err := ParseDeviceIdentification(VPDPage(b[0], VPDDeviceIdentification, DeviceIdentificationBody(ds)))
		if err != nil || len(again) != len(ds) {
			t.Fatalf("rebuilt page: %+v, %v; want %+v", again, err, ds)
		}
		for i := range ds {
			if again[i].CodeSet != ds[i].CodeSet || again[i].Association != ds[i].Association ||
				again[i].Type != ds[i].Type || !bytes.Equal(again[i].Value, ds[i].Value) {
				t.Fatalf("designator %d: %+v, want %+v", i, again[i], ds[i])
			}
		}
	})
}

// FuzzParseStandardInquiry: the identification strings are printable ASCII
// without trailing spaces, and the data rebuilds to itself.
func FuzzParseStandardInquiry(f *testing.F) {
	f.Add(readCapture(f, "inquiry-disk.bin"))
	f.Add(readCapture(f, "inquiry-controller.bin"))
	f.Add(StandardInquiry{PeripheralType: 0, TPGS: 1, CmdQue: true, Vendor: "EQLOGIC", Product: "100E-00", Revision: "9.1"}.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStandardInquiry(b)
		if err != nil {
			return
		}
		for _, field := range []string{s.Vendor, s.Product, s.Revision} {
			if strings.HasSuffix(field, " ") {
				t.Fatalf("trailing space in %q", field)
			}
			for _, c := range []byte(field) {
				if c < 0x20 || c > 0x7e {
					t.Fatalf("unprintable byte %#x in %q", c, field)
				}
			}
		}
		if len(s.Vendor) > 8 || len(s.Product) > 16 || len(s.Revision) > 4 || s.PeripheralType > 0x1f || s.TPGS > 3 {
			t.Fatalf("%+v", s)
		}
		back, err := ParseStandardInquiry(s.Bytes())
		if err != nil || back != s {
			t.Fatalf("round trip %+v, %v; want %+v", back, err, s)
		}
	})
}

// FuzzParseReportLuns: never more LUNs than the list length or the data
// allow, each a single-level LUN that encodes back to its own number.
func FuzzParseReportLuns(f *testing.F) {
	f.Add(unhex(f, "00000010 00000000 0000000000000000 0001000000000000"))
	f.Add(unhex(f, "00000010 00000000 0001000000000000 412c000000000000"))
	f.Add(unhex(f, "ffffffff 00000000 0001000000000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		luns, err := ParseReportLuns(b)
		if err != nil {
			if len(b) >= 8 {
				t.Fatalf("%d bytes: %v", len(b), err)
			}
			return
		}
		listLen := int(binary.BigEndian.Uint32(b))
		if len(luns) > listLen/8 || len(luns) > (len(b)-8)/8 {
			t.Fatalf("%d LUNs from a list of %d bytes in %d bytes", len(luns), listLen, len(b))
		}
		for i, l := range luns {
			if l > 0x3fff || DecodeLUN(EncodeLUN(l)) != l {
				t.Fatalf("LUN %d: %d", i, l)
			}
			if l != DecodeLUN(binary.BigEndian.Uint64(b[8+8*i:])) {
				t.Fatalf("LUN %d out of order", i)
			}
		}
	})
}

// FuzzParseBlockLimits: what parses rebuilds to the same limits.
func FuzzParseBlockLimits(f *testing.F) {
	f.Add(readCapture(f, "vpd-b0.bin"))
	f.Add(BlockLimits{MaxTransferLength: 0x800, OptimalTransferLength: 0x80, MaxUnmapLBACount: 0x400000,
		MaxUnmapDescriptors: 16, OptimalUnmapGranularity: 2048}.Bytes(0))
	f.Add([]byte{0, 0xb0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseBlockLimits(b)
		if err != nil {
			if l != (BlockLimits{}) {
				t.Fatalf("%+v with error %v", l, err)
			}
			return
		}
		back, err := ParseBlockLimits(l.Bytes(b[0]))
		if err != nil || !reflect.DeepEqual(back, l) {
			t.Fatalf("round trip %+v, %v; want %+v", back, err, l)
		}
	})
}
