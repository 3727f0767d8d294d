package disk

import (
	"sync"
	"sync/atomic"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

// uaCode is a unit attention's ASC and ASCQ.
type uaCode struct{ asc, ascq uint8 }

var (
	uaPowerOn                = uaCode{0x29, 0x00}
	uaModeChanged            = uaCode{0x2a, 0x01}
	uaReservationsPreempted  = uaCode{0x2a, 0x03}
	uaReservationsReleased   = uaCode{0x2a, 0x04}
	uaRegistrationsPreempted = uaCode{0x2a, 0x05}
	uaCapacityChanged        = uaCode{0x2a, 0x09}
)

// unitAttentions keeps the unit attentions pending for each I_T nexus,
// reported one per command, oldest first, and cleared as reported.
//
// Execute checks them on every command, so the common case, nothing
// pending, is a lock-free map load and an atomic read.
type unitAttentions struct {
	powerOn bool     // a new nexus starts with a power-on attention
	nexuses sync.Map // target.Nexus -> *nexusAttentions
}

type nexusAttentions struct {
	count   atomic.Int32
	mu      sync.Mutex
	pending []uaCode
}

func (u *unitAttentions) of(n target.Nexus) *nexusAttentions {
	if v, ok := u.nexuses.Load(n); ok {
		return v.(*nexusAttentions)
	}
	fresh := &nexusAttentions{}
	if u.powerOn {
		fresh.add(uaPowerOn)
	}
	v, _ := u.nexuses.LoadOrStore(n, fresh)
	return v.(*nexusAttentions)
}

// take pops the oldest pending attention of n.
func (u *unitAttentions) take(n target.Nexus) (uaCode, bool) {
	a := u.of(n)
	if a.count.Load() == 0 {
		return uaCode{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) == 0 {
		return uaCode{}, false
	}
	c := a.pending[0]
	a.pending = a.pending[1:]
	a.count.Add(-1)
	return c, true
}

// forget drops what is pending for n.
func (u *unitAttentions) forget(n target.Nexus) { u.nexuses.Delete(n) }

// raise queues c for nexus n.
func (u *unitAttentions) raise(n target.Nexus, c uaCode) { u.of(n).add(c) }

// raiseAll queues c for every nexus seen so far, but the one in except.
// A nexus not seen yet has nothing to be told.
func (u *unitAttentions) raiseAll(c uaCode, except *target.Nexus) {
	u.nexuses.Range(func(k, v any) bool {
		if except == nil || k.(target.Nexus) != *except {
			v.(*nexusAttentions).add(c)
		}
		return true
	})
}

// reset leaves every nexus with only the reset attention: SPC lets it
// replace whatever else was pending.
func (u *unitAttentions) reset() {
	u.nexuses.Range(func(_, v any) bool {
		a := v.(*nexusAttentions)
		a.mu.Lock()
		a.pending = append(a.pending[:0], uaPowerOn)
		a.count.Store(1)
		a.mu.Unlock()
		return true
	})
}

// add queues c unless it is already pending: the initiator needs to hear
// about a change once, not once per change.
func (a *nexusAttentions) add(c uaCode) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pending {
		if p == c {
			return
		}
	}
	a.pending = append(a.pending, c)
	a.count.Add(1)
}

// reportsPastAttention lists the commands that run despite a pending unit
// attention (SPC-4 5.14): INQUIRY, REPORT LUNS, and REQUEST SENSE, which
// reports the attention as its data instead.
func reportsPastAttention(op byte) bool {
	switch op {
	case scsi.OpInquiry, scsi.OpReportLuns, scsi.OpRequestSense:
		return true
	}
	return false
}

// requestSense returns the oldest pending unit attention as sense data,
// clearing it, or NO SENSE. Sense of a failed command is returned with
// its status (autosense), so there is nothing else to report. Only fixed
// format is offered: DESC is refused by the CDB check.
func (d *Disk) requestSense(c *call) ([]byte, error) {
	b := scsi.FixedSense(scsi.KeyNoSense, 0, 0)
	if code, ok := d.ua.take(c.nexus()); ok {
		b = scsi.FixedSense(scsi.KeyUnitAttention, code.asc, code.ascq)
	}
	return truncate(b, int(c.cdb[4])), nil
}
