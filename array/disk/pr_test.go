package disk

import (
	"encoding/binary"
	"testing"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

// prDisk is a test disk with helpers for the two nexuses.
type prDisk struct{ *testDisk }

func newPRDisk(t *testing.T) prDisk {
	return prDisk{newTestDisk(t, mib, Options{})}
}

func (d prDisk) out(n target.Nexus, sa, typ uint8, key, saKey uint64) target.Response {
	return d.run(n, prOutCDB(sa, typ), prOutData(key, saKey))
}

func (d prDisk) mustOut(n target.Nexus, sa, typ uint8, key, saKey uint64) {
	d.t.Helper()
	if r := d.out(n, sa, typ, key, saKey); r.Status != scsi.StatusGood {
		d.t.Fatalf("PR OUT sa %d type %d: %v", sa, typ, scsi.NewError(r.Status, r.Sense))
	}
}

func (d prDisk) conflictOut(n target.Nexus, sa, typ uint8, key, saKey uint64) {
	d.t.Helper()
	if r := d.out(n, sa, typ, key, saKey); r.Status != scsi.StatusReservationConflict {
		d.t.Fatalf("PR OUT sa %d: status %s, want RESERVATION CONFLICT", sa, scsi.StatusName(r.Status))
	}
}

// prIn asks through a third nexus, so as not to consume the unit
// attentions the tests look for on A and B.
func (d prDisk) prIn(sa uint8) []byte {
	d.t.Helper()
	r := d.run(nexusC, prInCDB(sa, 8192), nil)
	if r.Status != scsi.StatusGood {
		d.t.Fatalf("PR IN: %v", scsi.NewError(r.Status, r.Sense))
	}
	return r.DataIn
}

var nexusC = target.Nexus{InitiatorName: "iqn.2024-01.test:observer", TargetName: "iqn.2024-01.test:vol", TPGT: 1}

func (d prDisk) keys() (uint32, []uint64) {
	b := d.prIn(prInReadKeys)
	var keys []uint64
	for off := 8; off < 8+int(binary.BigEndian.Uint32(b[4:])); off += 8 {
		keys = append(keys, binary.BigEndian.Uint64(b[off:]))
	}
	return binary.BigEndian.Uint32(b), keys
}

// reservation returns the key and type READ RESERVATION reports.
func (d prDisk) reservation() (uint64, uint8, bool) {
	b := d.prIn(prInReadReservation)
	if binary.BigEndian.Uint32(b[4:]) == 0 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), b[21] & 0x0f, true
}

func TestPRRegister(t *testing.T) {
	d := newPRDisk(t)
	d.mustOut(nexusA, prOutRegister, 0, 0, 0xa1)
	d.conflictOut(nexusA, prOutRegister, 0, 0, 0xa2) // wrong current key
	d.mustOut(nexusA, prOutRegister, 0, 0xa1, 0xa2)  // re-key
	d.mustOut(nexusB, prOutRegisterAndIgnore, 0, 0x77, 0xb1)
	gen, keys := d.keys()
	if gen != 3 || len(keys) != 2 || keys[0] != 0xa2 || keys[1] != 0xb1 {
		t.Fatalf("generation %d keys %x", gen, keys)
	}
	d.mustOut(nexusA, prOutRegister, 0, 0xa2, 0) // unregister
	if _, keys := d.keys(); len(keys) != 1 {
		t.Fatalf("keys %x", keys)
	}
	d.conflictOut(nexusA, prOutReserve, prWriteExclusive, 0xa2, 0) // not registered
	// APTPL, ALL_TG_PT, SPEC_I_PT are not offered; the list is 24 bytes.
	for _, bit := range []byte{bitAPTPL, bitAllTgPt, bitSpecIPT} {
		p := prOutData(0, 1)
		p[20] = bit
		expectSense(t, d.run(nexusA, prOutCDB(prOutRegister, 0), p), scsi.KeyIllegalRequest, 0x26, 0)
	}
	short := prOutCDB(prOutRegister, 0)
	binary.BigEndian.PutUint32(short[5:], 16)
	expectSense(t, d.run(nexusA, short, prOutData(0, 1)[:16]), scsi.KeyIllegalRequest, 0x1a, 0)
}

func TestPRReserveEachType(t *testing.T) {
	d := newPRDisk(t)
	d.mustOut(nexusA, prOutRegister, 0, 0, 0xa1)
	for _, typ := range []uint8{prWriteExclusive, prExclusiveAccess, prWriteExclusiveRegistrants,
		prExclusiveAccessRegistrants, prWriteExclusiveAllRegistrants, prExclusiveAccessAllRegistrants} {
		d.mustOut(nexusA, prOutReserve, typ, 0xa1, 0)
		d.mustOut(nexusA, prOutReserve, typ, 0xa1, 0) // again: no-op
		key, got, ok := d.reservation()
		wantKey := uint64(0xa1)
		if allRegistrants(typ) {
			wantKey = 0
		}
		if !ok || got != typ || key != wantKey {
			t.Fatalf("type %d: reservation %x %d %v", typ, key, got, ok)
		}
		if typ != prExclusiveAccess {
			expectSense(t, d.out(nexusA, prOutRelease, prExclusiveAccess, 0xa1, 0), scsi.KeyIllegalRequest, 0x26, 0x04)
		}
		d.mustOut(nexusA, prOutRelease, typ, 0xa1, 0)
		if _, _, ok := d.reservation(); ok {
			t.Fatalf("type %d still reserved after RELEASE", typ)
		}
	}
	expectSense(t, d.out(nexusA, prOutReserve, 2, 0xa1, 0), scsi.KeyIllegalRequest, 0x24, 0)
	expectSense(t, d.out(nexusA, prOutReserve, 0x10|prWriteExclusive, 0xa1, 0), scsi.KeyIllegalRequest, 0x24, 0)
}

// TestPRAccess checks, for each type, what a registered and then an
// unregistered second nexus may do, as libiscsi's ProutReserve.Access*.
func TestPRAccess(t *testing.T) {
	cases := []struct {
		typ                                uint8
		regRead, regWrite, unRead, unWrite bool
	}{
		{prExclusiveAccess, false, false, false, false},
		{prWriteExclusive, true, false, true, false},
		{prExclusiveAccessRegistrants, true, true, false, false},
		{prWriteExclusiveRegistrants, true, true, true, false},
		{prExclusiveAccessAllRegistrants, true, true, false, false},
		{prWriteExclusiveAllRegistrants, true, true, true, false},
	}
	for _, tc := range cases {
		d := newPRDisk(t)
		d.mustOut(nexusA, prOutRegisterAndIgnore, 0, 0, 0xa1)
		d.mustOut(nexusB, prOutRegisterAndIgnore, 0, 0, 0xb1)
		d.mustOut(nexusA, prOutReserve, tc.typ, 0xa1, 0)
		d.good(cdb10(scsi.OpRead10, 0, 1, 1), nil)
		d.good(cdb10(scsi.OpWrite10, 0, 1, 1), make([]byte, 512))
		check := func(what string, cdb, data []byte, allowed bool) {
			t.Helper()
			r := d.run(nexusB, cdb, data)
			if allowed != (r.Status == scsi.StatusGood) || !allowed && r.Status != scsi.StatusReservationConflict {
				t.Fatalf("type %d, %s: status %s, allowed %v", tc.typ, what, scsi.StatusName(r.Status), allowed)
			}
		}
		check("registered read", cdb10(scsi.OpRead10, 0, 1, 1), nil, tc.regRead)
		check("registered write", cdb10(scsi.OpWrite10, 0, 1, 1), make([]byte, 512), tc.regWrite)
		d.mustOut(nexusB, prOutRegister, 0, 0xb1, 0)
		check("unregistered read", cdb10(scsi.OpRead10, 0, 1, 1), nil, tc.unRead)
		check("unregistered write", cdb10(scsi.OpWrite10, 0, 1, 1), make([]byte, 512), tc.unWrite)
		check("INQUIRY", inquiryCDB(false, 0, 96), nil, true)
		check("READ CAPACITY", bytesOf(scsi.ReadCapacity16(32)), nil, true)
		d.conflictOut(nexusB, prOutReserve, tc.typ, 0xb1, 0)
		d.mustOut(nexusA, prOutRelease, tc.typ, 0xa1, 0)
		check("write after release", cdb10(scsi.OpWrite10, 0, 1, 1), make([]byte, 512), true)
	}
}

func TestPRPreemptAndClear(t *testing.T) {
	d := newPRDisk(t)
	tur := bytesOf(scsi.TestUnitReady())
	d.mustOut(nexusA, prOutRegisterAndIgnore, 0, 0, 0xa1)
	d.mustOut(nexusB, prOutRegisterAndIgnore, 0, 0, 0xb1)
	gen, _ := d.keys()

	// Without a reservation, PREEMPT only removes the registration.
	d.mustOut(nexusB, prOutPreempt, prExclusiveAccess, 0xb1, 0xa1)
	g, keys := d.keys()
	if g != gen+1 || len(keys) != 1 || keys[0] != 0xb1 {
		t.Fatalf("generation %d keys %x", g, keys)
	}
	if _, _, ok := d.reservation(); ok {
		t.Fatal("PREEMPT without a reservation made one")
	}
	expectSense(t, d.run(nexusA, tur, nil), scsi.KeyUnitAttention, 0x2a, 0x05)
	d.conflictOut(nexusB, prOutPreempt, prExclusiveAccess, 0xb1, 0x99) // no such key

	// Preempting the holder takes the reservation over, with the new type.
	d.mustOut(nexusA, prOutRegisterAndIgnore, 0, 0, 0xa1)
	d.mustOut(nexusA, prOutReserve, prWriteExclusive, 0xa1, 0)
	d.mustOut(nexusB, prOutPreemptAndAbort, prExclusiveAccess, 0xb1, 0xa1)
	key, typ, ok := d.reservation()
	if !ok || key != 0xb1 || typ != prExclusiveAccess {
		t.Fatalf("after preempt: %x %d %v", key, typ, ok)
	}
	if r := d.run(nexusA, cdb10(scsi.OpRead10, 0, 0, 1), nil); r.Status != scsi.StatusCheckCondition {
		t.Fatalf("preempted nexus: status %s, want its unit attention first", scsi.StatusName(r.Status))
	}
	if r := d.run(nexusA, cdb10(scsi.OpRead10, 0, 0, 1), nil); r.Status != scsi.StatusReservationConflict {
		t.Fatalf("preempted nexus reads: %s", scsi.StatusName(r.Status))
	}

	// PREEMPT with key 0 is for all-registrants reservations only.
	expectSense(t, d.run(nexusB, prOutCDB(prOutPreempt, prExclusiveAccess), prOutData(0xb1, 0)), scsi.KeyIllegalRequest, 0x26, 0)

	// CLEAR drops everything and bumps the generation once.
	d.mustOut(nexusA, prOutRegisterAndIgnore, 0, 0, 0xa1)
	gen, _ = d.keys()
	d.mustOut(nexusB, prOutClear, 0, 0xb1, 0)
	g, keys = d.keys()
	if g != gen+1 || len(keys) != 0 {
		t.Fatalf("after CLEAR: generation %d keys %x", g, keys)
	}
	if _, _, ok := d.reservation(); ok {
		t.Fatal("reserved after CLEAR")
	}
	expectSense(t, d.run(nexusA, tur, nil), scsi.KeyUnitAttention, 0x2a, 0x03)
}

func TestPRAllRegistrantsPreemptWithZeroKey(t *testing.T) {
	d := newPRDisk(t)
	d.mustOut(nexusA, prOutRegisterAndIgnore, 0, 0, 0xa1)
	d.mustOut(nexusB, prOutRegisterAndIgnore, 0, 0, 0xb1)
	d.mustOut(nexusA, prOutReserve, prWriteExclusiveAllRegistrants, 0xa1, 0)
	d.mustOut(nexusA, prOutPreempt, prWriteExclusive, 0xa1, 0)
	key, typ, ok := d.reservation()
	if _, keys := d.keys(); !ok || key != 0xa1 || typ != prWriteExclusive || len(keys) != 1 {
		t.Fatalf("reservation %x %d %v, keys %x", key, typ, ok, keys)
	}
}

func TestPRUnregisterReleases(t *testing.T) {
	d := newPRDisk(t)
	d.mustOut(nexusA, prOutRegisterAndIgnore, 0, 0, 0xa1)
	d.mustOut(nexusA, prOutReserve, prExclusiveAccess, 0xa1, 0)
	d.mustOut(nexusA, prOutRegister, 0, 0xa1, 0)
	if _, _, ok := d.reservation(); ok {
		t.Fatal("the holder unregistered but the reservation stayed")
	}
	d.run(nexusB, cdb10(scsi.OpWrite10, 0, 0, 1), make([]byte, 512))
}

func TestPRIn(t *testing.T) {
	d := newPRDisk(t)
	caps := d.good(prInCDB(prInReportCapabilities, 8192), nil)
	if binary.BigEndian.Uint16(caps) != 8 || caps[3]&0x80 == 0 || caps[4] != 0xea || caps[5] != 0x01 {
		t.Fatalf("REPORT CAPABILITIES % x", caps)
	}
	d.mustOut(nexusA, prOutRegisterAndIgnore, 0, 0, 0xa1)
	d.mustOut(nexusA, prOutReserve, prWriteExclusive, 0xa1, 0)
	fs := d.good(prInCDB(prInReadFullStatus, 8192), nil)
	if binary.BigEndian.Uint64(fs[8:]) != 0xa1 || fs[20]&0x01 == 0 || fs[21] != prWriteExclusive {
		t.Fatalf("READ FULL STATUS % x", fs)
	}
	tidLen := int(binary.BigEndian.Uint32(fs[28:]))
	tid := fs[32 : 32+tidLen]
	if tid[0] != 0x45 || string(tid[4:4+len(nexusA.InitiatorName)+5]) != nexusA.InitiatorName+",i,0x" || tidLen%4 != 0 {
		t.Fatalf("TransportID % x", tid)
	}
	if got := d.good(prInCDB(prInReadKeys, 4), nil); len(got) != 4 {
		t.Fatalf("allocation length: %d bytes", len(got))
	}
	for sa := byte(4); sa < 0x20; sa++ {
		d.fails(prInCDB(sa, 8192), nil, scsi.KeyIllegalRequest, 0x24, 0)
	}
}
