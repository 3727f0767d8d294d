package disk

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hitkit/hitkit/array/target"
)

// Persistent reservations (SPC-4 5.12): registrations are per I_T nexus,
// the scope is always the logical unit, and nothing persists through a
// power loss (PTPL_C is zero). SPEC_I_PT and ALL_TG_PT are not offered.

// PERSISTENT RESERVE IN service actions.
const (
	prInReadKeys           = 0x00
	prInReadReservation    = 0x01
	prInReportCapabilities = 0x02
	prInReadFullStatus     = 0x03
)

// PERSISTENT RESERVE OUT service actions.
const (
	prOutRegister          = 0x00
	prOutReserve           = 0x01
	prOutRelease           = 0x02
	prOutClear             = 0x03
	prOutPreempt           = 0x04
	prOutPreemptAndAbort   = 0x05
	prOutRegisterAndIgnore = 0x06
)

// Reservation types.
const (
	prWriteExclusive                = 0x1
	prExclusiveAccess               = 0x3
	prWriteExclusiveRegistrants     = 0x5
	prExclusiveAccessRegistrants    = 0x6
	prWriteExclusiveAllRegistrants  = 0x7
	prExclusiveAccessAllRegistrants = 0x8
)

func validReservationType(t uint8) bool {
	switch t {
	case prWriteExclusive, prExclusiveAccess, prWriteExclusiveRegistrants,
		prExclusiveAccessRegistrants, prWriteExclusiveAllRegistrants, prExclusiveAccessAllRegistrants:
		return true
	}
	return false
}

// allRegistrants types make every registrant a reservation holder.
func allRegistrants(t uint8) bool {
	return t == prWriteExclusiveAllRegistrants || t == prExclusiveAccessAllRegistrants
}

// registrantsOnly types let registrants (holders or not) in.
func registrantsOnly(t uint8) bool {
	return t == prWriteExclusiveRegistrants || t == prExclusiveAccessRegistrants || allRegistrants(t)
}

type registration struct {
	nexus target.Nexus
	key   uint64
}

type reservations struct {
	mu         sync.Mutex
	reserved   atomic.Bool // mirrors typ != 0 for the lock-free check
	generation uint32
	regs       []registration // in registration order, as READ KEYS lists them
	typ        uint8          // 0: no reservation
	holder     target.Nexus   // with a type that is not all-registrants
}

// conflicts reports whether a command of access a from n runs into the
// reservation. Without one, the answer is a single atomic load.
func (p *reservations) conflicts(n target.Nexus, a access) bool {
	if a == accessAlways || !p.reserved.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.typ == 0 || p.isHolder(n) {
		return false
	}
	if registrantsOnly(p.typ) && p.find(n) >= 0 {
		return false
	}
	switch p.typ {
	case prExclusiveAccess, prExclusiveAccessRegistrants, prExclusiveAccessAllRegistrants:
		return true
	}
	return a == accessWrite
}

func (p *reservations) find(n target.Nexus) int {
	return slices.IndexFunc(p.regs, func(r registration) bool { return r.nexus == n })
}

func (p *reservations) isHolder(n target.Nexus) bool {
	if p.typ == 0 {
		return false
	}
	if allRegistrants(p.typ) {
		return p.find(n) >= 0
	}
	return p.holder == n
}

func (p *reservations) setReservation(t uint8, holder target.Nexus) {
	p.typ, p.holder = t, holder
	p.reserved.Store(t != 0)
}

// persistentReserveIn answers READ KEYS, READ RESERVATION, REPORT
// CAPABILITIES and READ FULL STATUS.
func (d *Disk) persistentReserveIn(c *call) ([]byte, error) {
	alloc := int(binary.BigEndian.Uint16(c.cdb[7:]))
	p := &d.pr
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	switch c.cdb[1] & 0x1f {
	case prInReadKeys:
		out = p.header(8 * len(p.regs))
		for _, r := range p.regs {
			out = binary.BigEndian.AppendUint64(out, r.key)
		}
	case prInReadReservation:
		if p.typ == 0 {
			out = p.header(0)
			break
		}
		out = p.header(16)
		out = binary.BigEndian.AppendUint64(out, p.reservationKey())
		out = append(out, 0, 0, 0, 0, 0, p.typ, 0, 0) // scope 0: LU_SCOPE
	case prInReportCapabilities:
		out = []byte{0, 8, 0, 0x80, // TMV: the type mask is valid
			0x80 | 0x40 | 0x20 | 0x08 | 0x02, 0x01, // all six types
			0, 0}
	case prInReadFullStatus:
		out = d.fullStatus()
	}
	return truncate(out, alloc), nil
}

// header is the PRGENERATION and ADDITIONAL LENGTH of PR IN data.
func (p *reservations) header(length int) []byte {
	b := make([]byte, 8, 8+length)
	binary.BigEndian.PutUint32(b, p.generation)
	binary.BigEndian.PutUint32(b[4:], uint32(length))
	return b
}

// reservationKey is the holder's key; zero for all-registrants types.
func (p *reservations) reservationKey() uint64 {
	if allRegistrants(p.typ) {
		return 0
	}
	if i := p.find(p.holder); i >= 0 {
		return p.regs[i].key
	}
	return 0
}

// fullStatus is READ FULL STATUS: a descriptor per registration, with the
// initiator's iSCSI TransportID. The caller holds d.pr.mu.
func (d *Disk) fullStatus() []byte {
	p := &d.pr
	var descs []byte
	for _, r := range p.regs {
		desc := binary.BigEndian.AppendUint64(nil, r.key)
		desc = append(desc, 0, 0, 0, 0, 0, 0)
		if p.isHolder(r.nexus) {
			desc[12], desc[13] = 0x01, p.typ // R_HOLDER, scope 0 and type
		}
		desc = append(desc, 0, 0, 0, 0) // reserved
		var rel uint16
		if d.id.Port != nil {
			rel = d.id.Port(r.nexus).RelativePort
		}
		desc = binary.BigEndian.AppendUint16(desc, rel)
		tid := transportID(r.nexus)
		desc = binary.BigEndian.AppendUint32(desc, uint32(len(tid)))
		descs = append(desc, tid...)
	}
	return append(p.header(len(descs)), descs...)
}

// transportID is the iSCSI initiator port TransportID (format 01b):
// "name,i,0xISID", NUL-terminated and padded to a multiple of four.
func transportID(n target.Nexus) []byte {
	name := scsiName(fmt.Sprintf("%s,i,0x%x", n.InitiatorName, n.ISID[:]))
	b := []byte{0x40 | 0x05, 0, 0, 0} // format 01b, protocol iSCSI
	binary.BigEndian.PutUint16(b[2:], uint16(len(name)))
	return append(b, name...)
}

// prOutParams is the 24-byte PERSISTENT RESERVE OUT parameter list.
type prOutParams struct {
	key, saKey          uint64
	specIPT, allTgPt    bool
	aptpl               bool
	scope, reservedType uint8
}

const (
	bitSpecIPT = 0x08
	bitAllTgPt = 0x04
	bitAPTPL   = 0x01
)

func (d *Disk) persistentReserveOut(c *call) ([]byte, error) {
	sa := c.cdb[1] & 0x1f
	if binary.BigEndian.Uint32(c.cdb[5:]) != 24 || len(c.req.DataOut) < 24 {
		return nil, errParamListLength() // 24 bytes, as without SPEC_I_PT
	}
	pl := c.req.DataOut
	prm := prOutParams{
		key: binary.BigEndian.Uint64(pl), saKey: binary.BigEndian.Uint64(pl[8:]),
		specIPT: pl[20]&bitSpecIPT != 0, allTgPt: pl[20]&bitAllTgPt != 0, aptpl: pl[20]&bitAPTPL != 0,
		scope: c.cdb[2] >> 4, reservedType: c.cdb[2] & 0x0f,
	}
	switch sa {
	case prOutReserve, prOutRelease, prOutPreempt, prOutPreemptAndAbort:
		if prm.scope != 0 {
			return nil, errInvalidField(2, 7)
		}
		if !validReservationType(prm.reservedType) {
			return nil, errInvalidField(2, 3)
		}
	case prOutRegister, prOutRegisterAndIgnore:
		switch {
		case prm.specIPT:
			return nil, errInvalidParam(20, 3)
		case prm.allTgPt:
			return nil, errInvalidParam(20, 2)
		case prm.aptpl:
			return nil, errInvalidParam(20, 0)
		}
	}
	p := &d.pr
	p.mu.Lock()
	defer p.mu.Unlock()
	n := c.nexus()
	switch sa {
	case prOutRegister, prOutRegisterAndIgnore:
		return nil, d.prRegister(n, prm, sa == prOutRegisterAndIgnore)
	}
	// Every other service action needs n registered under the key given.
	if i := p.find(n); i < 0 || p.regs[i].key != prm.key {
		return nil, errReservationConflict()
	}
	switch sa {
	case prOutReserve:
		return nil, p.reserve(n, prm.reservedType)
	case prOutRelease:
		return nil, d.prRelease(n, prm.reservedType)
	case prOutClear:
		d.prClear(n)
		return nil, nil
	default: // PREEMPT, PREEMPT AND ABORT: tasks are the target's to abort
		return nil, d.prPreempt(n, prm)
	}
}

// prRegister registers, re-keys or (with a zero key) unregisters n.
func (d *Disk) prRegister(n target.Nexus, prm prOutParams, ignoreKey bool) error {
	p := &d.pr
	i := p.find(n)
	switch {
	case i < 0 && !ignoreKey && prm.key != 0:
		return errReservationConflict()
	case i >= 0 && !ignoreKey && p.regs[i].key != prm.key:
		return errReservationConflict()
	case i < 0 && prm.saKey == 0:
		return nil // unregistering what is not registered
	case i < 0:
		p.regs = append(p.regs, registration{n, prm.saKey})
	case prm.saKey != 0:
		p.regs[i].key = prm.saKey
	default:
		d.unregister(i)
	}
	p.generation++
	return nil
}

// unregister removes registration i, and with it the reservation that
// hangs on it: the holder's, or an all-registrants one when it was the
// last registrant. The caller holds d.pr.mu.
func (d *Disk) unregister(i int) {
	p := &d.pr
	n := p.regs[i].nexus
	holder := p.isHolder(n)
	p.regs = slices.Delete(p.regs, i, i+1)
	if !holder || allRegistrants(p.typ) && len(p.regs) > 0 {
		return
	}
	t := p.typ
	p.setReservation(0, target.Nexus{})
	if registrantsOnly(t) {
		d.raiseForRegistrants(uaReservationsReleased, nil)
	}
}

func (p *reservations) reserve(n target.Nexus, t uint8) error {
	if p.typ == 0 {
		p.setReservation(t, n)
		return nil
	}
	if !p.isHolder(n) || p.typ != t {
		return errReservationConflict()
	}
	return nil // already held, same type
}

func (d *Disk) prRelease(n target.Nexus, t uint8) error {
	p := &d.pr
	if !p.isHolder(n) {
		return nil
	}
	if p.typ != t {
		return errInvalidRelease()
	}
	p.setReservation(0, target.Nexus{})
	if registrantsOnly(t) {
		d.raiseForRegistrants(uaReservationsReleased, &n)
	}
	return nil
}

// prClear drops every registration and the reservation.
func (d *Disk) prClear(n target.Nexus) {
	p := &d.pr
	d.raiseForRegistrants(uaReservationsPreempted, &n)
	p.regs = nil
	p.setReservation(0, target.Nexus{})
	p.generation++
}

// prPreempt removes the registrations under the service action key and,
// when they held the reservation, takes it over with the type given.
func (d *Disk) prPreempt(n target.Nexus, prm prOutParams) error {
	p := &d.pr
	if prm.saKey == 0 {
		// Only an all-registrants reservation can be preempted by key 0:
		// every other registrant goes, and n holds the new reservation.
		if !allRegistrants(p.typ) {
			return errInvalidParam(8, -1)
		}
		d.removeRegistrations(n, func(r registration) bool { return r.nexus != n })
		p.setReservation(prm.reservedType, n)
		p.generation++
		return nil
	}
	takeOver := p.typ != 0 && !allRegistrants(p.typ) && p.reservationKey() == prm.saKey
	removed := d.removeRegistrations(n, func(r registration) bool { return r.key == prm.saKey })
	if removed == 0 {
		return errReservationConflict()
	}
	if takeOver {
		p.setReservation(prm.reservedType, n)
	}
	p.generation++
	return nil
}

// removeRegistrations drops those matching, telling each preempted nexus
// but n. It returns how many went.
func (d *Disk) removeRegistrations(n target.Nexus, match func(registration) bool) int {
	p := &d.pr
	before := len(p.regs)
	p.regs = slices.DeleteFunc(p.regs, func(r registration) bool {
		if !match(r) {
			return false
		}
		if r.nexus != n {
			d.ua.raise(r.nexus, uaRegistrationsPreempted)
		}
		return true
	})
	return before - len(p.regs)
}

// raiseForRegistrants tells every registrant but except.
func (d *Disk) raiseForRegistrants(c uaCode, except *target.Nexus) {
	for _, r := range d.pr.regs {
		if except == nil || r.nexus != *except {
			d.ua.raise(r.nexus, c)
		}
	}
}
