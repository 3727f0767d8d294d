package disk

import (
	"bytes"
	"context"
	"testing"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

const mib = 1 << 20

func TestWriteThenReadEveryCDBSize(t *testing.T) {
	d := newTestDisk(t, 4*mib, Options{})
	cases := []struct {
		name        string
		write, read []byte
		lba, blocks int
	}{
		{"6", cdb6(opWrite6, 5, 2), cdb6(opRead6, 5, 2), 5, 2},
		{"10", cdb10(scsi.OpWrite10, 0, 100, 3), cdb10(scsi.OpRead10, 0, 100, 3), 100, 3},
		{"12", cdb12(scsi.OpWrite12, 0, 200, 4), cdb12(scsi.OpRead12, 0, 200, 4), 200, 4},
		{"16", cdb16(scsi.OpWrite16, 0, 8191, 1), cdb16(scsi.OpRead16, 0, 8191, 1), 8191, 1},
		{"10 FUA DPO", cdb10(scsi.OpWrite10, bitFUA|bitDPO, 300, 2), cdb10(scsi.OpRead10, bitFUA|bitDPO, 300, 2), 300, 2},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := pattern(tc.blocks*512, byte(i))
			d.good(tc.write, data)
			if got := d.good(tc.read, nil); !bytes.Equal(got, data) {
				t.Fatalf("read back differs")
			}
			onDisk := make([]byte, len(data))
			d.fb.ReadAt(onDisk, int64(tc.lba)*512)
			if !bytes.Equal(onDisk, data) {
				t.Fatalf("backend holds other bytes at LBA %d", tc.lba)
			}
		})
	}
	s := d.Stats()
	if s.WriteOps != 5 || s.ReadOps != 5 || s.WriteBytes != 12*512 || s.ReadBytes != 12*512 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSixByteLengthZeroMeans256(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	if got := d.good(cdb6(opRead6, 0, 0), nil); len(got) != 256*512 {
		t.Fatalf("READ (6) of length 0 returned %d bytes, want 256 blocks", len(got))
	}
}

func TestZeroLengthTransfers(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	n := uint32(d.Blocks())
	for _, op := range []byte{scsi.OpRead10, scsi.OpWrite10, scsi.OpVerify10, opWriteAndVerify10, opPrefetch10} {
		if got := d.good(cdb10(op, 0, 0, 0), nil); len(got) != 0 {
			t.Fatalf("op %#x: %d bytes for 0 blocks", op, len(got))
		}
		d.good(cdb10(op, 0, n, 0), nil) // at the capacity: still in range
		d.fails(cdb10(op, 0, n+1, 0), nil, scsi.KeyIllegalRequest, 0x21, 0)
		d.fails(cdb10(op, 0, 0xffffffff, 0), nil, scsi.KeyIllegalRequest, 0x21, 0)
	}
	if s := d.Stats(); s.ReadOps+s.WriteOps != 0 {
		t.Fatalf("zero-length transfers counted as I/O: %+v", s)
	}
}

func TestOutOfRange(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	n := d.Blocks()
	d.fails(cdb10(scsi.OpRead10, 0, uint32(n-1), 2), nil, scsi.KeyIllegalRequest, 0x21, 0)
	d.fails(cdb16(scsi.OpRead16, 0, ^uint64(0), 1), nil, scsi.KeyIllegalRequest, 0x21, 0)
	d.fails(cdb16(scsi.OpWrite16, 0, n, 1), make([]byte, 512), scsi.KeyIllegalRequest, 0x21, 0)
	d.good(cdb16(scsi.OpRead16, 0, n-1, 1), nil)
}

func TestMaxTransferLength(t *testing.T) {
	d := newTestDisk(t, mib, Options{MaxTransferLength: 8})
	d.good(cdb10(scsi.OpRead10, 0, 0, 8), nil)
	s := d.fails(cdb10(scsi.OpRead10, 0, 0, 9), nil, scsi.KeyIllegalRequest, 0x24, 0)
	_ = s
}

func TestFieldChecks(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	for i := 1; i < 8; i++ { // RDPROTECT: no protection information
		d.fails(cdb10(scsi.OpRead10, byte(i)<<5, 0, 1), nil, scsi.KeyIllegalRequest, 0x24, 0)
	}
	naca := cdb10(scsi.OpRead10, 0, 0, 1)
	naca[9] = 0x04
	r := d.run(nexusA, naca, nil)
	expectSense(t, r, scsi.KeyIllegalRequest, 0x24, 0)
	// The sense-key specific field points at byte 9, bit 2, of the CDB.
	if r.Sense[15] != 0x80|0x40|0x08|2 || r.Sense[17] != 9 {
		t.Fatalf("field pointer % x", r.Sense[15:18])
	}
	d.fails([]byte{0xd7, 0, 0, 0, 0, 0}, nil, scsi.KeyIllegalRequest, 0x20, 0)
	d.fails([]byte{scsi.OpServiceActionIn16, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, scsi.KeyIllegalRequest, 0x24, 0)
	d.fails([]byte{scsi.OpRead10, 0, 0}, nil, scsi.KeyIllegalRequest, 0x24, 0)
	d.fails(nil, nil, scsi.KeyIllegalRequest, 0x20, 0)
}

func TestShortDataOut(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	// A partial block: refused, nothing written.
	d.fails(cdb10(scsi.OpWrite10, 0, 0, 2), pattern(700, 1), scsi.KeyIllegalRequest, 0x0e, 0x03)
	if got := d.good(cdb10(scsi.OpRead10, 0, 0, 1), nil); !bytes.Equal(got, make([]byte, 512)) {
		t.Fatal("a refused write changed the medium")
	}
	// Whole blocks: the write is truncated to them.
	d.good(cdb10(scsi.OpWrite10, 0, 0, 3), pattern(512, 1))
	d.good(cdb10(opWriteAndVerify10, 0x02, 0, 3), nil)
	got := d.good(cdb10(scsi.OpRead10, 0, 0, 2), nil)
	if !bytes.Equal(got[:512], pattern(512, 1)) || !allZero(got[512:]) {
		t.Fatal("a short write did not write exactly the blocks sent")
	}
	// More Data-Out than the CDB asks for is an overflow: the CDB wins.
	d.good(cdb10(scsi.OpWrite10, 0, 0, 1), pattern(1024, 2))
	if got := d.good(cdb10(scsi.OpRead10, 0, 1, 1), nil); !bytes.Equal(got, make([]byte, 512)) {
		t.Fatal("an overflowing write went past its transfer length")
	}
}

func TestReadOnly(t *testing.T) {
	d := newTestDisk(t, mib, Options{ReadOnly: true, ThinProvisioning: true})
	blk := make([]byte, 512)
	for _, c := range []struct {
		cdb, data []byte
	}{
		{cdb10(scsi.OpWrite10, 0, 0, 1), blk},
		{cdb6(opWrite6, 0, 1), blk},
		{cdb16(scsi.OpWrite16, 0, 0, 1), blk},
		{cdb10(opWriteAndVerify10, 0, 0, 1), blk},
		{cdb10(scsi.OpWriteSame10, 0, 0, 1), blk},
		{cdb16(scsi.OpWriteSame16, bitUnmap, 0, 1), blk},
		{compareAndWriteCDB(0, 1, 0), make([]byte, 1024)},
		{bytesOf(scsi.Unmap(24)), scsi.UnmapParams([]scsi.Extent{{LBA: 0, Blocks: 1}})},
	} {
		d.fails(c.cdb, c.data, scsi.KeyDataProtect, 0x27, 0)
	}
	d.good(cdb10(scsi.OpRead10, 0, 0, 1), nil)
	ms := d.good(modeSense6(true, pcCurrent, pageAll, 0, 255), nil)
	if ms[2]&0x80 == 0 {
		t.Fatal("MODE SENSE does not report WP")
	}
}

func TestFUASyncs(t *testing.T) {
	b := &countingBackend{Backend: newTestDisk(t, mib, Options{}).fb}
	d, err := New(b, testIdentity, Options{WriteCache: true, NoPowerOnAttention: true})
	if err != nil {
		t.Fatal(err)
	}
	run := func(cdb []byte, data []byte) {
		t.Helper()
		if r := d.Execute(context.Background(), &target.Request{Nexus: nexusA, CDB: cdb, DataOut: data}); r.Status != 0 {
			t.Fatalf("% x: %v", cdb, scsi.NewError(r.Status, r.Sense))
		}
	}
	run(cdb10(scsi.OpWrite10, 0, 0, 1), make([]byte, 512))
	if b.syncs != 0 {
		t.Fatalf("write-back cache: a plain write synced")
	}
	run(cdb10(scsi.OpWrite10, bitFUA, 0, 1), make([]byte, 512))
	if b.syncs != 1 {
		t.Fatalf("FUA write: %d syncs, want 1", b.syncs)
	}
	run(bytesOf(scsi.SynchronizeCache10(0, 0, false)), nil)
	if b.syncs != 2 {
		t.Fatalf("SYNCHRONIZE CACHE: %d syncs, want 2", b.syncs)
	}
	// Turning the write cache off makes every write synchronous.
	ms := modeSenseCurrent(t, d, pageCaching)
	ms[2] &^= 0x04
	run(modeSelect6(uint8(4+len(ms))), append([]byte{0, 0, 0, 0}, ms...))
	run(cdb10(scsi.OpWrite10, 0, 0, 1), make([]byte, 512))
	if b.syncs != 3 {
		t.Fatalf("WCE=0 write: %d syncs, want 3", b.syncs)
	}
}

type countingBackend struct {
	Backend
	syncs int
}

func (b *countingBackend) Sync() error { b.syncs++; return b.Backend.Sync() }

func modeSenseCurrent(t *testing.T, d *Disk, page uint8) []byte {
	t.Helper()
	r := d.Execute(context.Background(), &target.Request{Nexus: nexusA, CDB: modeSense6(true, pcCurrent, page, 0, 255)})
	if r.Status != 0 {
		t.Fatal(scsi.NewError(r.Status, r.Sense))
	}
	return r.DataIn[4:]
}

func TestVerify(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	data := pattern(4*512, 9)
	d.good(cdb10(scsi.OpWrite10, 0, 10, 4), data)
	d.good(cdb10(scsi.OpVerify10, 0, 10, 4), nil)     // BYTCHK 0: medium only
	d.good(cdb10(scsi.OpVerify10, 0x02, 10, 4), data) // BYTCHK 1
	d.good(cdb16(scsi.OpVerify16, 0x02, 10, 4), data)
	d.good(cdb12(opVerify12, 0x02, 10, 4), data)

	bad := bytes.Clone(data)
	bad[3*512+27] ^= 0xff
	s := d.fails(cdb10(scsi.OpVerify10, 0x02, 10, 4), bad, scsi.KeyMiscompare, 0x1d, 0)
	if !s.HasInfo || s.Information != 3*512+27 {
		t.Fatalf("miscompare information %v %d, want offset %d", s.HasInfo, s.Information, 3*512+27)
	}
	d.fails(cdb10(scsi.OpVerify10, 0x04, 10, 4), data, scsi.KeyIllegalRequest, 0x24, 0) // BYTCHK 10b reserved

	// BYTCHK 11b: one block compared with each block of the range.
	blk := pattern(512, 3)
	d.good(cdb10(scsi.OpWrite10, 0, 20, 3), bytes.Repeat(blk, 3))
	d.good(cdb10(scsi.OpVerify10, 0x06, 20, 3), blk)
	d.fails(cdb10(scsi.OpVerify10, 0x06, 20, 4), blk, scsi.KeyMiscompare, 0x1d, 0)
}

func TestWriteAndVerify(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	data := pattern(2*512, 4)
	d.good(cdb10(opWriteAndVerify10, 0x02, 7, 2), data)
	d.good(cdb16(opWriteAndVerify16, 0, 9, 2), data)
	if got := d.good(cdb10(scsi.OpRead10, 0, 7, 4), nil); !bytes.Equal(got, append(bytes.Clone(data), data...)) {
		t.Fatal("WRITE AND VERIFY did not write")
	}
}

func TestSynchronizeCacheAndPrefetchRanges(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	n := d.Blocks()
	d.good(bytesOf(scsi.SynchronizeCache16(0, 0, true)), nil)
	d.good(bytesOf(scsi.SynchronizeCache16(n-1, 1, false)), nil)
	d.fails(bytesOf(scsi.SynchronizeCache16(n-1, 2, false)), nil, scsi.KeyIllegalRequest, 0x21, 0)
	d.good(cdb16(opPrefetch16, 0x02, 0, 8), nil)
	d.fails(cdb16(opPrefetch16, 0, n, 1), nil, scsi.KeyIllegalRequest, 0x21, 0)
}

func TestCancelledContextDoesNoIO(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := d.Execute(ctx, &target.Request{Nexus: nexusA, CDB: cdb10(scsi.OpWrite10, 0, 0, 1), DataOut: pattern(512, 1)})
	if r.Status != scsi.StatusTaskAborted {
		t.Fatalf("status %s, want TASK ABORTED", scsi.StatusName(r.Status))
	}
	if got := d.good(cdb10(scsi.OpRead10, 0, 0, 1), nil); !bytes.Equal(got, make([]byte, 512)) {
		t.Fatal("a cancelled write reached the backend")
	}
}

func TestBlockSize4096(t *testing.T) {
	d := newTestDisk(t, mib, Options{BlockSize: 4096})
	if d.Blocks() != 256 {
		t.Fatalf("blocks %d", d.Blocks())
	}
	data := pattern(4096, 5)
	d.good(cdb10(scsi.OpWrite10, 0, 255, 1), data)
	if got := d.good(cdb10(scsi.OpRead10, 0, 255, 1), nil); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	c, err := scsi.ParseReadCapacity16(d.good(bytesOf(scsi.ReadCapacity16(32)), nil))
	if err != nil || c.BlockLength != 4096 || c.Blocks() != 256 {
		t.Fatalf("capacity %+v %v", c, err)
	}
	if _, err := New(d.fb, testIdentity, Options{BlockSize: 1024}); err == nil {
		t.Fatal("block size 1024 accepted")
	}
}
