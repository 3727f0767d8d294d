package disk

import (
	"context"
	"testing"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

func TestPowerOnAttentionOncePerNexus(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	d.ua.powerOn = true // as a disk made without NoPowerOnAttention
	tur := bytesOf(scsi.TestUnitReady())
	// INQUIRY passes a pending attention without clearing it.
	d.good(inquiryCDB(false, 0, 96), nil)
	expectSense(t, d.run(nexusA, tur, nil), scsi.KeyUnitAttention, 0x29, 0)
	d.good(tur, nil)
	expectSense(t, d.run(nexusB, tur, nil), scsi.KeyUnitAttention, 0x29, 0)
	if r := d.run(nexusB, tur, nil); r.Status != scsi.StatusGood {
		t.Fatal("second TUR from B failed")
	}
}

func TestNoPowerOnAttentionOption(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	d.good(bytesOf(scsi.TestUnitReady()), nil)
}

func TestAttentionBeforeInvalidOpcode(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	d.ua.powerOn = true
	d.fails([]byte{0xd7, 0, 0, 0, 0, 0}, nil, scsi.KeyUnitAttention, 0x29, 0)
	d.fails([]byte{0xd7, 0, 0, 0, 0, 0}, nil, scsi.KeyIllegalRequest, 0x20, 0)
}

func TestResizeRaisesCapacityChangedForEveryNexus(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	tur := bytesOf(scsi.TestUnitReady())
	d.good(tur, nil)
	d.run(nexusB, tur, nil)
	if err := d.Resize(2 * mib); err != nil {
		t.Fatal(err)
	}
	for _, n := range []target.Nexus{nexusA, nexusB} {
		expectSense(t, d.run(n, bytesOf(scsi.ReadCapacity16(32)), nil), scsi.KeyUnitAttention, 0x2a, 0x09)
		c, err := scsi.ParseReadCapacity16(d.run(n, bytesOf(scsi.ReadCapacity16(32)), nil).DataIn)
		if err != nil || c.Blocks() != 4096 {
			t.Fatalf("after resize: %+v %v", c, err)
		}
	}
	if d.fb.Size() != 2*mib {
		t.Fatalf("backend size %d", d.fb.Size())
	}
	d.good(cdb16(scsi.OpWrite16, 0, 4095, 1), make([]byte, 512))
	if err := d.Resize(100); err == nil {
		t.Fatal("resize below one block accepted")
	}
}

func TestResetReplacesPendingAttentions(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	tur := bytesOf(scsi.TestUnitReady())
	d.good(tur, nil)
	d.Resize(2 * mib)
	d.Reset()
	d.fails(tur, nil, scsi.KeyUnitAttention, 0x29, 0)
	d.good(tur, nil)
}

func TestRequestSenseReportsAttention(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	rs := []byte{scsi.OpRequestSense, 0, 0, 0, 252, 0}
	b := d.good(rs, nil)
	if s, err := scsi.ParseSense(b); err != nil || s.Key != scsi.KeyNoSense {
		t.Fatalf("%v %v", s, err)
	}
	d.Reset()
	s, err := scsi.ParseSense(d.good(rs, nil))
	if err != nil || s.Key != scsi.KeyUnitAttention || s.ASC != 0x29 {
		t.Fatalf("%v %v", s, err)
	}
	d.good(bytesOf(scsi.TestUnitReady()), nil)                                                  // cleared by REQUEST SENSE
	d.fails([]byte{scsi.OpRequestSense, 1, 0, 0, 252, 0}, nil, scsi.KeyIllegalRequest, 0x24, 0) // DESC
}

func TestModeSelectTellsOtherNexuses(t *testing.T) {
	d := newTestDisk(t, mib, Options{WriteCache: true})
	tur := bytesOf(scsi.TestUnitReady())
	d.good(tur, nil)
	d.run(nexusB, tur, nil)
	page := modeSenseCurrent(t, d.Disk, pageCaching)
	page[2] &^= 0x04
	d.good(modeSelect6(uint8(4+len(page))), append([]byte{0, 0, 0, 0}, page...))
	d.good(tur, nil)
	expectSense(t, d.run(nexusB, tur, nil), scsi.KeyUnitAttention, 0x2a, 0x01)
}

var _ = context.Background

// A nexus whose session ended leaves nothing behind, and a later login on
// it starts with the power-on attention again.
func TestNexusLostForgets(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	d.ua.powerOn = true
	n := nexusA
	d.ua.take(n)
	d.ua.raise(n, uaCapacityChanged)
	d.NexusLost(n)
	count := 0
	d.ua.nexuses.Range(func(any, any) bool { count++; return true })
	if count != 0 {
		t.Fatalf("%d nexuses remembered after NexusLost", count)
	}
	if c, ok := d.ua.take(n); !ok || c != uaPowerOn {
		t.Fatalf("first attention after NexusLost = %v %v, want power-on", c, ok)
	}
}
