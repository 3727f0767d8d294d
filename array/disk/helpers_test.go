package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

var (
	nexusA = target.Nexus{InitiatorName: "iqn.2024-01.test:host-a", ISID: [6]byte{0x80, 0, 0, 0, 0, 1}, TargetName: "iqn.2024-01.test:vol", TPGT: 1}
	nexusB = target.Nexus{InitiatorName: "iqn.2024-01.test:host-b", ISID: [6]byte{0x80, 0, 0, 0, 0, 2}, TargetName: "iqn.2024-01.test:vol", TPGT: 2}
)

var testIdentity = Identity{Vendor: "HITKIT", Product: "LAB DISK", Revision: "0001", Serial: "SN-0001", OUI: 0x123456}

// testDisk is a disk over a sparse file, with no initial unit attention.
type testDisk struct {
	*Disk
	t  testing.TB
	fb *FileBackend
}

func newTestDisk(t testing.TB, size int64, opts Options) *testDisk {
	t.Helper()
	fb, err := CreateFile(filepath.Join(t.TempDir(), "disk.img"), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fb.Close() })
	opts.NoPowerOnAttention = true
	d, err := New(fb, testIdentity, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testDisk{Disk: d, t: t, fb: fb}
}

func (d *testDisk) run(n target.Nexus, cdb []byte, data []byte) target.Response {
	return d.Execute(context.Background(), &target.Request{Nexus: n, CDB: cdb, DataOut: data})
}

// good runs a command from nexusA that must succeed, and returns its data.
func (d *testDisk) good(cdb []byte, data []byte) []byte {
	d.t.Helper()
	r := d.run(nexusA, cdb, data)
	if r.Status != scsi.StatusGood {
		d.t.Fatalf("CDB % x: %v", cdb, scsi.NewError(r.Status, r.Sense))
	}
	return r.DataIn
}

// fails runs a command from nexusA that must end in CHECK CONDITION with
// the given sense.
func (d *testDisk) fails(cdb []byte, data []byte, key scsi.SenseKey, asc, ascq uint8) scsi.Sense {
	d.t.Helper()
	return expectSense(d.t, d.run(nexusA, cdb, data), key, asc, ascq)
}

func expectSense(t testing.TB, r target.Response, key scsi.SenseKey, asc, ascq uint8) scsi.Sense {
	t.Helper()
	if r.Status != scsi.StatusCheckCondition {
		t.Fatalf("status %s, want CHECK CONDITION %v %02x/%02x", scsi.StatusName(r.Status), key, asc, ascq)
	}
	s, err := scsi.ParseSense(r.Sense)
	if err != nil {
		t.Fatalf("sense % x: %v", r.Sense, err)
	}
	if s.Key != key || s.ASC != asc || s.ASCQ != ascq {
		t.Fatalf("sense %v, want %v %02x/%02x", s, key, asc, ascq)
	}
	return s
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// CDB builders for what the scsi package does not build.

func cdb10(op byte, flags byte, lba uint32, n uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], n)
	return c
}

func cdb12(op byte, flags byte, lba uint32, n uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint32(c[6:], n)
	return c
}

func cdb16(op byte, flags byte, lba uint64, n uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], n)
	return c
}

func cdb6(op byte, lba uint32, n uint8) []byte {
	return []byte{op, byte(lba>>16) & 0x1f, byte(lba >> 8), byte(lba), n, 0}
}

func inquiryCDB(evpd bool, page uint8, alloc uint16) []byte {
	c := scsi.Inquiry(evpd, page, alloc)
	return bytes.Clone(c.Bytes())
}

func bytesOf(c scsi.CDB) []byte { return bytes.Clone(c.Bytes()) }

func compareAndWriteCDB(lba uint64, n uint8, flags byte) []byte {
	c := make([]byte, 16)
	c[0], c[1] = opCompareAndWrite, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	c[13] = n
	return c
}

func modeSense6(dbd bool, pc, page, sub uint8, alloc uint8) []byte {
	c := []byte{scsi.OpModeSense6, 0, pc<<6 | page, sub, alloc, 0}
	if dbd {
		c[1] = 0x08
	}
	return c
}

func modeSelect6(paramLen uint8) []byte {
	return []byte{scsi.OpModeSelect6, 0x10, 0, 0, paramLen, 0}
}

func rsocCDB(rctd bool, options, op uint8, sa uint16, alloc uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1], c[2], c[3] = scsi.OpMaintenanceIn, scsi.SAReportSupportedOpcodes, options, op
	if rctd {
		c[2] |= 0x80
	}
	binary.BigEndian.PutUint16(c[4:], sa)
	binary.BigEndian.PutUint32(c[6:], alloc)
	return c
}

func getLBAStatusCDB(lba uint64, alloc uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = scsi.OpServiceActionIn16, scsi.SAGetLBAStatus
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], alloc)
	return c
}

func prInCDB(sa uint8, alloc uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = scsi.OpPersistentReserveIn, sa
	binary.BigEndian.PutUint16(c[7:], alloc)
	return c
}

func prOutCDB(sa, typ uint8) []byte {
	c := make([]byte, 10)
	c[0], c[1], c[2] = scsi.OpPersistentReserveOut, sa, typ
	binary.BigEndian.PutUint32(c[5:], 24)
	return c
}

func prOutData(key, saKey uint64) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, key)
	binary.BigEndian.PutUint64(b[8:], saKey)
	return b
}
