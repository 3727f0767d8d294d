package disk

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

// FuzzExecute feeds arbitrary CDBs and Data-Out to a small thin disk from
// two nexuses. Nothing may panic, and every response must be well formed:
// a known status, parseable sense exactly with CHECK CONDITION, and data
// only with GOOD.
func FuzzExecute(f *testing.F) {
	seeds := [][]byte{
		cdb10(scsi.OpRead10, 0, 0, 1), cdb10(scsi.OpWrite10, 0, 1, 1), cdb16(scsi.OpWriteSame16, 0x09, 0, 0),
		cdb10(scsi.OpVerify10, 0x06, 0, 4), compareAndWriteCDB(0, 1, 0), bytesOf(scsi.Unmap(24)),
		inquiryCDB(true, 0x83, 255), modeSense6(false, 0, pageAll, 0, 255), modeSelect6(24),
		rsocCDB(true, 0, 0, 0, 4096), getLBAStatusCDB(0, 64), prOutCDB(prOutRegister, 0), prInCDB(3, 100),
		prOutCDB(prOutReserve, prExclusiveAccess), []byte{scsi.OpModeSense10, 0x10, 0x3f, 0xff, 0, 0, 0, 1, 0, 0},
	}
	for i, s := range seeds {
		f.Add(s, pattern(1024, byte(i)), byte(i))
	}
	f.Add(bytesOf(scsi.Unmap(24)), scsi.UnmapParams([]scsi.Extent{{LBA: 3, Blocks: 2}}), byte(0))
	f.Add(prOutCDB(prOutRegister, 0), prOutData(0, 5), byte(1))

	fb, err := CreateFile(f.TempDir()+"/fuzz.img", 64<<10)
	if err != nil {
		f.Fatal(err)
	}
	d, err := New(fb, testIdentity, Options{ThinProvisioning: true, WriteCache: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cdb, data []byte, who byte) {
		n := nexusA
		if who&1 != 0 {
			n = nexusB
		}
		if len(cdb) > 32 {
			cdb = cdb[:32]
		}
		r := d.Execute(context.Background(), &target.Request{Nexus: n, CDB: cdb, DataOut: data, ExpectedDataIn: 1 << 16})
		checkWellFormed(t, cdb, r)
	})
}

func checkWellFormed(t *testing.T, cdb []byte, r target.Response) {
	t.Helper()
	switch r.Status {
	case scsi.StatusGood:
		if r.Sense != nil {
			t.Fatalf("CDB % x: GOOD with sense", cdb)
		}
		if len(r.DataIn) > defaultMaxTransferBytes {
			t.Fatalf("CDB % x: %d bytes of data", cdb, len(r.DataIn))
		}
		checkAllocationLength(t, cdb, r.DataIn)
	case scsi.StatusCheckCondition:
		if _, err := scsi.ParseSense(r.Sense); err != nil {
			t.Fatalf("CDB % x: sense % x: %v", cdb, r.Sense, err)
		}
		fallthrough
	case scsi.StatusReservationConflict, scsi.StatusTaskAborted:
		if r.DataIn != nil {
			t.Fatalf("CDB % x: status %s with data", cdb, scsi.StatusName(r.Status))
		}
	default:
		t.Fatalf("CDB % x: status %#x", cdb, r.Status)
	}
}

// checkAllocationLength: commands that take an allocation length never
// return more.
func checkAllocationLength(t *testing.T, cdb []byte, data []byte) {
	t.Helper()
	alloc := -1
	switch cdb[0] {
	case scsi.OpInquiry:
		alloc = int(binary.BigEndian.Uint16(cdb[3:]))
	case scsi.OpModeSense6, scsi.OpRequestSense:
		alloc = int(cdb[4])
	case scsi.OpModeSense10, scsi.OpPersistentReserveIn:
		alloc = int(binary.BigEndian.Uint16(cdb[7:]))
	case scsi.OpMaintenanceIn:
		alloc = int(binary.BigEndian.Uint32(cdb[6:]))
	case scsi.OpServiceActionIn16:
		alloc = int(binary.BigEndian.Uint32(cdb[10:]))
	}
	if alloc >= 0 && len(data) > alloc {
		t.Fatalf("CDB % x: %d bytes for allocation length %d", cdb, len(data), alloc)
	}
}
