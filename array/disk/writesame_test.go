package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

func TestWriteSameFills(t *testing.T) {
	d := newTestDisk(t, 4*mib, Options{})
	blk := pattern(512, 7)
	d.good(cdb10(scsi.OpWriteSame10, 0, 10, 2500), blk) // more than one chunk
	if s := d.Stats(); s.WriteOps != 1 || s.WriteBytes != 2500*512 {
		t.Fatalf("stats %+v, want one write of 2500 blocks", s)
	}
	got := d.good(cdb16(scsi.OpRead16, 0, 9, 2502), nil)
	if !bytes.Equal(got[512:512+2500*512], bytes.Repeat(blk, 2500)) {
		t.Fatal("WRITE SAME did not fill")
	}
	if !allZero(got[:512]) || !allZero(got[len(got)-512:]) {
		t.Fatal("WRITE SAME wrote outside its range")
	}
}

func TestWriteSameZeroLengthMeansToTheEnd(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	n := d.Blocks()
	blk := pattern(512, 3)
	d.good(cdb16(scsi.OpWriteSame16, 0, n-5, 0), blk)
	got := d.good(cdb16(scsi.OpRead16, 0, n-5, 5), nil)
	if !bytes.Equal(got, bytes.Repeat(blk, 5)) {
		t.Fatal("WRITE SAME of length 0 did not reach the end")
	}
	d.fails(cdb10(scsi.OpWriteSame10, 0, uint32(n+1), 0), blk, scsi.KeyIllegalRequest, 0x21, 0)
	d.fails(cdb10(scsi.OpWriteSame10, 0, uint32(n-1), 2), blk, scsi.KeyIllegalRequest, 0x21, 0)

	limited := newTestDisk(t, mib, Options{MaxWriteSameLength: 16})
	limited.fails(cdb10(scsi.OpWriteSame10, 0, 0, 0), blk, scsi.KeyIllegalRequest, 0x24, 0)
	limited.fails(cdb10(scsi.OpWriteSame10, 0, 0, 17), blk, scsi.KeyIllegalRequest, 0x24, 0)
	limited.good(cdb10(scsi.OpWriteSame10, 0, uint32(n-16), 0), blk)
}

func TestWriteSameDataOutMustBeOneBlock(t *testing.T) {
	d := newTestDisk(t, mib, Options{ThinProvisioning: true})
	d.fails(cdb10(scsi.OpWriteSame10, bitUnmap, 0, 1), make([]byte, 256), scsi.KeyIllegalRequest, 0x0e, 0x03)
	d.fails(cdb10(scsi.OpWriteSame10, bitUnmap, 0, 1), make([]byte, 1024), scsi.KeyIllegalRequest, 0x0e, 0x03)
}

func TestWriteSameUnmapAndNDOB(t *testing.T) {
	d := newTestDisk(t, mib, Options{ThinProvisioning: true})
	d.good(cdb10(scsi.OpWrite10, 0, 0, 64), pattern(64*512, 1))
	d.good(cdb16(scsi.OpWriteSame16, bitUnmap, 0, 32), make([]byte, 512))
	d.good(cdb16(scsi.OpWriteSame16, bitUnmap|bitNDOB, 32, 16), nil)
	d.good(cdb16(scsi.OpWriteSame16, bitNDOB, 48, 8), nil) // zeroes without unmap
	got := d.good(cdb10(scsi.OpRead10, 0, 0, 64), nil)
	if !allZero(got[:56*512]) || allZero(got[56*512:]) {
		t.Fatal("unmapped blocks do not read back as zeroes, or too much went")
	}
	if s := d.Stats(); s.UnmapOps != 2 || s.UnmapBytes != 48*512 {
		t.Fatalf("stats %+v", s)
	}
	// UNMAP deallocates whatever the block sent, as libiscsi expects.
	d.good(cdb10(scsi.OpWrite10, 0, 0, 2), pattern(1024, 5))
	d.good(cdb10(scsi.OpWriteSame10, bitUnmap, 0, 2), pattern(512, 5))
	if got := d.good(cdb10(scsi.OpRead10, 0, 0, 2), nil); !allZero(got) {
		t.Fatal("WRITE SAME with UNMAP did not deallocate")
	}
	thick := newTestDisk(t, mib, Options{})
	thick.fails(cdb10(scsi.OpWriteSame10, bitUnmap, 0, 1), make([]byte, 512), scsi.KeyIllegalRequest, 0x24, 0)
}

func TestUnmapReadsBackZeroes(t *testing.T) {
	d := newTestDisk(t, 4*mib, Options{ThinProvisioning: true})
	d.good(cdb10(scsi.OpWrite10, 0, 0, 2048), pattern(2048*512, 1))
	params := scsi.UnmapParams([]scsi.Extent{{LBA: 0, Blocks: 1}, {LBA: 8, Blocks: 1000}, {LBA: 2000, Blocks: 0}})
	d.good(bytesOf(scsi.Unmap(uint16(len(params)))), params)
	got := d.good(cdb10(scsi.OpRead10, 0, 0, 2048), nil)
	if !allZero(got[:512]) || allZero(got[512:8*512]) || !allZero(got[8*512:1008*512]) || allZero(got[1008*512:]) {
		t.Fatal("UNMAP zeroed the wrong blocks")
	}
	if s := d.Stats(); s.UnmapOps != 2 {
		t.Fatalf("unmap ops %d, want 2 (zero-length descriptors are skipped)", s.UnmapOps)
	}
}

func TestUnmapParameterErrors(t *testing.T) {
	d := newTestDisk(t, mib, Options{ThinProvisioning: true})
	d.good(cdb10(scsi.OpWrite10, 0, 0, 4), pattern(4*512, 1))
	n := d.Blocks()
	unmap := func(paramLen uint16) []byte { return bytesOf(scsi.Unmap(paramLen)) }
	d.good(unmap(0), nil)
	d.fails(unmap(7), make([]byte, 7), scsi.KeyIllegalRequest, 0x1a, 0)
	d.fails(unmap(24), make([]byte, 7), scsi.KeyIllegalRequest, 0x1a, 0)

	// One bad descriptor fails the command before anything is unmapped.
	bad := scsi.UnmapParams([]scsi.Extent{{LBA: 0, Blocks: 4}, {LBA: n - 1, Blocks: 2}})
	d.fails(unmap(uint16(len(bad))), bad, scsi.KeyIllegalRequest, 0x21, 0)
	if allZero(d.good(cdb10(scsi.OpRead10, 0, 0, 4), nil)) {
		t.Fatal("a refused UNMAP unmapped")
	}
	// A partial last descriptor is ignored.
	part := scsi.UnmapParams([]scsi.Extent{{LBA: 0, Blocks: 1}})
	part = append(part, 1, 2, 3)
	binary.BigEndian.PutUint16(part[2:], 16+3)
	d.good(unmap(uint16(len(part))), part)
	// Too many blocks in total, on a disk big enough to hold them.
	big, err := New(nullBackend{size: 1 << 42}, testIdentity, Options{ThinProvisioning: true, NoPowerOnAttention: true})
	if err != nil {
		t.Fatal(err)
	}
	huge := scsi.UnmapParams([]scsi.Extent{{LBA: 0, Blocks: 0xffffffff}, {LBA: 0, Blocks: 1}})
	expectSense(t, big.Execute(context.Background(), &target.Request{CDB: unmap(uint16(len(huge))), DataOut: huge}),
		scsi.KeyIllegalRequest, 0x26, 0)
	anchor := unmap(24)
	anchor[1] = 0x01
	d.fails(anchor, scsi.UnmapParams([]scsi.Extent{{LBA: 0, Blocks: 1}}), scsi.KeyIllegalRequest, 0x24, 0)

	thick := newTestDisk(t, mib, Options{})
	thick.fails(unmap(24), scsi.UnmapParams([]scsi.Extent{{LBA: 0, Blocks: 1}}), scsi.KeyIllegalRequest, 0x20, 0)
}

func TestGetLBAStatus(t *testing.T) {
	d := newTestDisk(t, 4*mib, Options{ThinProvisioning: true})
	n := d.Blocks()
	d.good(cdb10(scsi.OpWrite10, 0, 0, 64), pattern(64*512, 1)) // 32 KiB of data
	params := scsi.UnmapParams([]scsi.Extent{{LBA: 16, Blocks: 16}})
	d.good(bytesOf(scsi.Unmap(uint16(len(params)))), params)

	b := d.good(getLBAStatusCDB(0, 1024), nil)
	descs := parseLBAStatus(t, b)
	want := []lbaStatus{{0, 16, lbaMapped}, {16, 16, lbaDeallocated}, {32, 32, lbaMapped}, {64, n - 64, lbaDeallocated}}
	if len(descs) != len(want) {
		t.Fatalf("descriptors %+v, want %+v", descs, want)
	}
	for i := range want {
		if descs[i] != want[i] {
			t.Fatalf("descriptor %d: %+v, want %+v", i, descs[i], want[i])
		}
	}
	// Allocation length 24 returns the first descriptor, starting at the LBA asked for.
	if d := parseLBAStatus(t, d.good(getLBAStatusCDB(40, 24), nil)); len(d) != 1 || d[0] != (lbaStatus{40, 24, lbaMapped}) {
		t.Fatalf("%+v", d)
	}
	d.fails(getLBAStatusCDB(n, 24), nil, scsi.KeyIllegalRequest, 0x21, 0)
	d.fails(getLBAStatusCDB(^uint64(0), 24), nil, scsi.KeyIllegalRequest, 0x21, 0)
}

type lbaStatus struct {
	lba, blocks uint64
	status      byte
}

func parseLBAStatus(t *testing.T, b []byte) []lbaStatus {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("GET LBA STATUS data of %d bytes", len(b))
	}
	n := int(binary.BigEndian.Uint32(b)) + 4
	var out []lbaStatus
	for off := 8; off+16 <= min(n, len(b)); off += 16 {
		out = append(out, lbaStatus{binary.BigEndian.Uint64(b[off:]), uint64(binary.BigEndian.Uint32(b[off+8:])), b[off+12] & 0x0f})
	}
	return out
}

// nullBackend is a huge backend that stores nothing, for limits that
// need more blocks than a test should write.
type nullBackend struct{ size int64 }

func (b nullBackend) ReadAt(p []byte, off int64) (int, error)  { clear(p); return len(p), nil }
func (b nullBackend) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }
func (b nullBackend) Size() int64                              { return b.size }
func (b nullBackend) Sync() error                              { return nil }
func (b nullBackend) Unmap(off, length int64) error            { return nil }
