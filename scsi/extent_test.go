package scsi

import "testing"

func TestCDBExtent(t *testing.T) {
	write10, read16 := Write10(0x01020304, 0x0506, false), Read16(1<<40, 70000, false)
	for _, tc := range []struct {
		name        string
		cdb         []byte
		lba, blocks uint64
		ok          bool
	}{
		{"READ(6), 0 is 256", []byte{0x08, 0x1f, 0xff, 0xfe, 0, 0}, 0x1ffffe, 256, true},
		{"WRITE(10)", write10.Bytes(), 0x01020304, 0x0506, true},
		{"READ(12)", []byte{0xa8, 0, 0, 0, 0, 9, 0, 0, 1, 0, 0, 0}, 9, 256, true},
		{"READ(16)", read16.Bytes(), 1 << 40, 70000, true},
		{"short", []byte{0x28, 0, 0, 0}, 0, 0, false},
		{"empty", nil, 0, 0, false},
		{"vendor group", []byte{0xc0, 1, 2, 3, 4, 5}, 0, 0, false},
	} {
		lba, blocks, ok := CDBExtent(tc.cdb)
		if lba != tc.lba || blocks != tc.blocks || ok != tc.ok {
			t.Errorf("%s: got %d %d %v, want %d %d %v", tc.name, lba, blocks, ok, tc.lba, tc.blocks, tc.ok)
		}
	}
}
