package disk

import (
	"encoding/binary"
	"testing"

	"github.com/hitkit/hitkit/scsi"
)

type opDescriptor struct {
	op       byte
	sa       uint16
	servactv bool
	cdbLen   int
}

func parseAllOpcodes(t *testing.T, b []byte, rctd bool) []opDescriptor {
	t.Helper()
	n := int(binary.BigEndian.Uint32(b)) + 4
	if n != len(b) {
		t.Fatalf("command data length %d for %d bytes", n-4, len(b))
	}
	var out []opDescriptor
	for off := 4; off < n; {
		d := b[off:]
		out = append(out, opDescriptor{d[0], binary.BigEndian.Uint16(d[2:]), d[5]&0x01 != 0, int(binary.BigEndian.Uint16(d[6:]))})
		ctdp := d[5]&0x02 != 0
		if ctdp != rctd {
			t.Fatalf("CTDP %v with RCTD %v", ctdp, rctd)
		}
		off += 8
		if ctdp {
			if binary.BigEndian.Uint16(d[8:]) != 0x0a {
				t.Fatalf("timeouts descriptor length % x", d[8:10])
			}
			off += 12
		}
	}
	return out
}

// TestReportSupportedOpcodesListsEveryCommand checks the list against
// the table Execute dispatches on, and every command's one-command form.
func TestReportSupportedOpcodesListsEveryCommand(t *testing.T) {
	d := newTestDisk(t, mib, Options{ThinProvisioning: true})
	all := parseAllOpcodes(t, d.good(rsocCDB(false, rsocAll, 0, 0, 65535), nil), false)
	parseAllOpcodes(t, d.good(rsocCDB(true, rsocAll, 0, 0, 65535), nil), true)
	if len(all) != len(d.commands.list) {
		t.Fatalf("%d descriptors for %d commands", len(all), len(d.commands.list))
	}
	for i, desc := range all {
		cmd := d.commands.list[i]
		if desc.op != cmd.usage[0] || desc.servactv != cmd.hasSA || desc.cdbLen != len(cmd.usage) || !desc.servactv && desc.sa != 0 {
			t.Fatalf("descriptor %+v for %s", desc, cmd.name)
		}
		options := uint8(rsocOpcode)
		wrong := uint8(rsocServiceAction)
		if desc.servactv {
			options, wrong = wrong, options
		}
		one := d.good(rsocCDB(true, options, desc.op, desc.sa, 65535), nil)
		if one[1]&0x07 != 0x03 || one[1]&0x80 == 0 || int(binary.BigEndian.Uint16(one[2:])) != desc.cdbLen || one[4] != desc.op {
			t.Fatalf("%s: one-command data % x", cmd.name, one[:5])
		}
		if len(one) != 4+desc.cdbLen+12 {
			t.Fatalf("%s: %d bytes with RCTD", cmd.name, len(one))
		}
		d.fails(rsocCDB(false, wrong, desc.op, desc.sa, 65535), nil, scsi.KeyIllegalRequest, 0x24, 0)
		// Every listed command is dispatched: none answers INVALID COMMAND OPERATION CODE.
		cdb := make([]byte, desc.cdbLen)
		cdb[0], cdb[1] = desc.op, byte(desc.sa)
		if r := d.run(nexusA, cdb, nil); r.Status == scsi.StatusCheckCondition {
			if s, _ := scsi.ParseSense(r.Sense); s.ASC == 0x20 {
				t.Fatalf("%s listed but not dispatched", cmd.name)
			}
		}
	}
	for _, op := range []byte{scsi.OpRead10, scsi.OpWrite10, opCompareAndWrite} {
		one := d.good(rsocCDB(false, rsocOpcode, op, 0, 65535), nil)
		if one[5]&0x18 != 0x18 {
			t.Fatalf("opcode %#x: DPO/FUA not in usage data, but DPOFUA is set", op)
		}
	}
	// Not supported: SUPPORT 001b.
	if one := d.good(rsocCDB(false, rsocOpcode, 0xd7, 0, 65535), nil); one[1]&0x07 != 0x01 {
		t.Fatalf("unsupported opcode: % x", one)
	}
	d.fails(rsocCDB(false, 7, 0, 0, 65535), nil, scsi.KeyIllegalRequest, 0x24, 0)
	if got := d.good(rsocCDB(false, rsocAll, 0, 0, 16), nil); len(got) != 16 {
		t.Fatalf("allocation length: %d bytes", len(got))
	}
}

func TestThickDiskDoesNotListUnmap(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	for _, desc := range parseAllOpcodes(t, d.good(rsocCDB(false, rsocAll, 0, 0, 65535), nil), false) {
		if desc.op == scsi.OpUnmap {
			t.Fatal("UNMAP listed on a thick disk")
		}
	}
}

func TestReportSupportedTMFs(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	cdb := []byte{scsi.OpMaintenanceIn, saReportSupportedTMF, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0}
	if b := d.good(cdb, nil); len(b) != 4 || b[0]&0x08 == 0 {
		t.Fatalf("% x", b)
	}
	cdb[2] = 0x80
	if b := d.good(cdb, nil); len(b) != 16 || b[3] != 0x0c {
		t.Fatalf("REPD: % x", b)
	}
}

func TestStartStopUnit(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	d.good([]byte{opStartStopUnit, 0, 0, 0, 0x00, 0}, nil)
	d.good([]byte{opStartStopUnit, 1, 0, 0, 0x01, 0}, nil)
	d.good(bytesOf(scsi.TestUnitReady()), nil) // still ready for everyone
	d.fails([]byte{opStartStopUnit, 0, 0, 0, 0x40, 0}, nil, scsi.KeyIllegalRequest, 0x24, 0)
}
