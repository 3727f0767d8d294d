package disk

import (
	"bytes"
	"testing"

	"github.com/hitkit/hitkit/scsi"
)

func TestCompareAndWrite(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	old := pattern(2*512, 1)
	d.good(cdb10(scsi.OpWrite10, 0, 50, 2), old)
	next := pattern(2*512, 2)
	d.good(compareAndWriteCDB(50, 2, bitFUA), append(bytes.Clone(old), next...))
	if got := d.good(cdb10(scsi.OpRead10, 0, 50, 2), nil); !bytes.Equal(got, next) {
		t.Fatal("COMPARE AND WRITE did not write")
	}
}

func TestCompareAndWriteMiscompareLeavesData(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	old := pattern(3*512, 1)
	d.good(cdb10(scsi.OpWrite10, 0, 50, 3), old)
	verify := bytes.Clone(old)
	verify[3*512-27] ^= 0x55
	s := d.fails(compareAndWriteCDB(50, 3, 0), append(verify, pattern(3*512, 9)...), scsi.KeyMiscompare, 0x1d, 0)
	if !s.HasInfo || s.Information != 3*512-27 {
		t.Fatalf("information %v %d", s.HasInfo, s.Information)
	}
	if got := d.good(cdb10(scsi.OpRead10, 0, 50, 3), nil); !bytes.Equal(got, old) {
		t.Fatal("a miscompare changed the medium")
	}
}

func TestCompareAndWriteChecks(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	n := d.Blocks()
	d.good(compareAndWriteCDB(0, 0, 0), nil) // zero blocks: nothing to do
	d.fails(compareAndWriteCDB(n, 1, 0), make([]byte, 1024), scsi.KeyIllegalRequest, 0x21, 0)
	d.fails(compareAndWriteCDB(0, 1, 0), make([]byte, 4*512), scsi.KeyIllegalRequest, 0x24, 0)
	d.fails(compareAndWriteCDB(0, 3, 0), make([]byte, 4*512), scsi.KeyIllegalRequest, 0x24, 0)
	d.fails(compareAndWriteCDB(0, 0, 0), make([]byte, 256*1024), scsi.KeyIllegalRequest, 0x24, 0)
	small := newTestDisk(t, mib, Options{MaxTransferLength: 4})
	small.fails(compareAndWriteCDB(0, 5, 0), make([]byte, 10*512), scsi.KeyIllegalRequest, 0x24, 0)
}
