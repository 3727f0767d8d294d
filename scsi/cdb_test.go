package scsi

import (
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"
)

func hx(parts ...string) string { return strings.ReplaceAll(strings.Join(parts, ""), " ", "") }

// CDB layouts from SBC-4 and SPC-5, byte by byte.
func TestCDBBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		cdb  CDB
		want string
	}{
		// READ(10): op, flags (FUA = bit 3), LBA[2..5], group, length[7..8], control.
		{"Read10", Read10(0x01020304, 0x0506, false), "28 00 01020304 00 0506 00"},
		{"Read10 FUA", Read10(0x01020304, 0x0506, true), "28 08 01020304 00 0506 00"},
		{"Read10 max", Read10(math.MaxUint32, math.MaxUint16, false), "28 00 ffffffff 00 ffff 00"},
		{"Write10", Write10(0, 1, false), "2a 00 00000000 00 0001 00"},
		{"Write10 FUA", Write10(0xfffffffe, 0x80, true), "2a 08 fffffffe 00 0080 00"},
		// READ(16): op, flags, LBA[2..9], length[10..13], group, control.
		{"Read16", Read16(0x0102030405060708, 0x090a0b0c, false), "88 00 0102030405060708 090a0b0c 00 00"},
		{"Read16 FUA", Read16(1<<32, 1, true), "88 08 0000000100000000 00000001 00 00"},
		{"Write16", Write16(math.MaxUint64, math.MaxUint32, false), "8a 00 ffffffffffffffff ffffffff 00 00"},
		{"Write16 FUA", Write16(0x10, 0x20, true), "8a 08 0000000000000010 00000020 00 00"},
		{"TestUnitReady", TestUnitReady(), "00 00 00 00 00 00"},
		// INQUIRY: op, EVPD bit 0, page code, allocation length[3..4], control.
		{"Inquiry standard", Inquiry(false, 0, 36), "12 00 00 0024 00"},
		{"Inquiry standard ignores page", Inquiry(false, 0x83, 96), "12 00 00 0060 00"},
		{"Inquiry VPD 0x83", Inquiry(true, 0x83, 0x1000), "12 01 83 1000 00"},
		{"Inquiry VPD 0x00", Inquiry(true, 0x00, 255), "12 01 00 00ff 00"},
		{"ReadCapacity10", ReadCapacity10(), "25 00 00000000 0000 00 00"},
		// SERVICE ACTION IN(16) / READ CAPACITY(16): as libiscsi sends it.
		{"ReadCapacity16", ReadCapacity16(32), "9e 10 0000000000000000 00000020 00 00"},
		{"ReadCapacity16 big", ReadCapacity16(0x01020304), "9e 10 0000000000000000 01020304 00 00"},
		// SYNCHRONIZE CACHE: IMMED is bit 1 of byte 1.
		{"SynchronizeCache10", SynchronizeCache10(0x11223344, 0x5566, false), "35 00 11223344 00 5566 00"},
		{"SynchronizeCache10 IMMED", SynchronizeCache10(0, 0, true), "35 02 00000000 00 0000 00"},
		{"SynchronizeCache16", SynchronizeCache16(1<<40, 7, false), "91 00 0000010000000000 00000007 00 00"},
		{"SynchronizeCache16 IMMED", SynchronizeCache16(0, 0, true), "91 02 0000000000000000 00000000 00 00"},
		// UNMAP: parameter list length[7..8].
		{"Unmap", Unmap(24), "42 00 00000000 00 0018 00"},
		{"Unmap max", Unmap(0xffff), "42 00 00000000 00 ffff 00"},
		// REPORT LUNS: select report[2], allocation length[6..9].
		{"ReportLuns", ReportLuns(0x1000), "a0 00 00 000000 00001000 00 00"},
	} {
		got := hex.EncodeToString(tc.cdb.Bytes())
		if want := hx(tc.want); got != want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
		if tc.cdb.Len() != len(tc.cdb.Bytes()) {
			t.Errorf("%s: Len %d", tc.name, tc.cdb.Len())
		}
	}
}

// ReadCDB and WriteCDB use the 10-byte form only when the whole range is
// addressable by it.
func TestReadWriteCDBChoice(t *testing.T) {
	for _, tc := range []struct {
		lba    uint64
		blocks uint32
		want   int // CDB length
	}{
		{0, 1, 10},
		{0, 0xffff, 10},
		{0, 0x10000, 16},
		{0xffffffff, 1, 10}, // the last block READ(10) can reach
		{0xfffffffe, 2, 10},
		{0xffffffff, 2, 16},
		{1 << 32, 1, 16},
		{0xffff0001, 0xffff, 10},
		{0xffff0002, 0xffff, 16},
		{1 << 40, 8, 16},
		{0, 1 << 20, 16},
		{5, 0, 10},
	} {
		for _, write := range []bool{false, true} {
			var c CDB
			if write {
				c = WriteCDB(tc.lba, tc.blocks, true)
			} else {
				c = ReadCDB(tc.lba, tc.blocks, true)
			}
			if c.Len() != tc.want {
				t.Errorf("write=%v lba %#x blocks %#x: %d-byte CDB, want %d", write, tc.lba, tc.blocks, c.Len(), tc.want)
				continue
			}
			var want CDB
			switch {
			case tc.want == 10 && write:
				want = Write10(uint32(tc.lba), uint16(tc.blocks), true)
			case tc.want == 10:
				want = Read10(uint32(tc.lba), uint16(tc.blocks), true)
			case write:
				want = Write16(tc.lba, tc.blocks, true)
			default:
				want = Read16(tc.lba, tc.blocks, true)
			}
			if c != want {
				t.Errorf("write=%v lba %#x blocks %#x: % x, want % x", write, tc.lba, tc.blocks, c.Bytes(), want.Bytes())
			}
		}
	}
}

// An LBA that READ(10) cannot carry must never be truncated into one that it
// can: that would read, or write, the wrong blocks.
func TestReadWriteCDBNeverTruncatesLBA(t *testing.T) {
	for _, tc := range []struct {
		lba    uint64
		blocks uint32
	}{
		{1 << 32, 0},                      // a zero-length transfer past 2 TiB of 512-byte blocks
		{math.MaxUint64, 1},               // lba+blocks overflows to 0
		{math.MaxUint64 - 0xfffe, 0xffff}, // overflows to 0
	} {
		for _, c := range []CDB{ReadCDB(tc.lba, tc.blocks, false), WriteCDB(tc.lba, tc.blocks, false)} {
			if c.Len() != 16 {
				t.Errorf("BUG: ReadCDB/WriteCDB(lba %#x, blocks %d) = % x: a 10-byte CDB for LBA %#x",
					tc.lba, tc.blocks, c.Bytes(), uint32(tc.lba))
			}
		}
	}
}

func TestUnmapParamsLayout(t *testing.T) {
	got := UnmapParams([]Extent{{LBA: 0x1000, Blocks: 8}, {LBA: 1 << 40, Blocks: math.MaxUint32}})
	want := hx("0026 0020 00000000",
		"0000000000001000 00000008 00000000",
		"0000010000000000 ffffffff 00000000")
	if hex.EncodeToString(got) != want {
		t.Fatalf("UNMAP parameters\n got %x\nwant %s", got, want)
	}
	if got := hex.EncodeToString(UnmapParams(nil)); got != "0006000000000000" {
		t.Fatalf("empty list: %s", got)
	}
	// The CDB announces exactly the parameter list's length.
	p := UnmapParams(make([]Extent, 3))
	if c := Unmap(uint16(len(p))); c.Bytes()[7] != 0 || c.Bytes()[8] != 56 {
		t.Fatalf("Unmap(%d) = % x", len(p), c.Bytes())
	}
}

func TestLUNEncoding(t *testing.T) {
	for _, tc := range []struct {
		lun  uint16
		want uint64
	}{
		{0, 0},
		{1, 0x0001_0000_0000_0000},   // peripheral device addressing, bus 0
		{255, 0x00ff_0000_0000_0000}, // the last peripheral LUN
		{256, 0x4100_0000_0000_0000}, // flat space addressing from here
		{300, 0x412c_0000_0000_0000},
		{0x3fff, 0x7fff_0000_0000_0000}, // the last flat LUN
	} {
		if got := EncodeLUN(tc.lun); got != tc.want {
			t.Errorf("EncodeLUN(%d) = %#016x, want %#016x", tc.lun, got, tc.want)
		}
		if got := DecodeLUN(tc.want); got != tc.lun {
			t.Errorf("DecodeLUN(%#016x) = %d, want %d", tc.want, got, tc.lun)
		}
	}
	for lun := range uint16(0x4000) {
		if got := DecodeLUN(EncodeLUN(lun)); got != lun {
			t.Fatalf("DecodeLUN(EncodeLUN(%d)) = %d", lun, got)
		}
	}
	// The second level of a LUN is ignored: only single-level LUNs exist here.
	if got := DecodeLUN(0x0005_0000_0000_0001); got != 5 {
		t.Fatalf("DecodeLUN with lower levels = %d", got)
	}
}

// MaxLUN is the last LUN that survives a round trip.
func TestEncodeLUNMax(t *testing.T) {
	if back := DecodeLUN(EncodeLUN(MaxLUN)); back != MaxLUN {
		t.Fatalf("EncodeLUN(MaxLUN) decodes to %d", back)
	}
}

func TestParseReportLuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []uint16
	}{
		{"two LUNs", "00000010 00000000 0000000000000000 0001000000000000", []uint16{0, 1}},
		{"flat LUN", "00000010 00000000 0001000000000000 412c000000000000", []uint16{1, 300}},
		{"empty list", "00000000 00000000", nil},
		// An allocation length that cut the list: what arrived is returned.
		{"truncated by allocation length", "00000018 00000000 0000000000000000 0001000000000000", []uint16{0, 1}},
		{"partial entry ignored", "00000010 00000000 0000000000000000 000100", []uint16{0}},
		// More data than the list length: the extra is not LUNs.
		{"trailing bytes", "00000008 00000000 0002000000000000 0003000000000000", []uint16{2}},
		{"length not a multiple of 8", "0000000c 00000000 0007000000000000 00000000", []uint16{7}},
	} {
		b, _ := hex.DecodeString(hx(tc.in))
		got, err := ParseReportLuns(b)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	for _, n := range []int{0, 1, 7} {
		if _, err := ParseReportLuns(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "REPORT LUNS data is") {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}
