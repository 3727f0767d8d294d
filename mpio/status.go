package mpio

import (
	"time"
)

// Status is a device and its paths, one element of the `volumes` list in
// `hitkit mpio status --json`.
type Status struct {
	Target string       `json:"target"`
	LUN    int          `json:"lun"`
	WWID   string       `json:"wwid"`
	Policy Policy       `json:"policy"`
	Size   int64        `json:"size"`
	Paths  []PathStatus `json:"paths"`
}

// PathStatus is one path.
type PathStatus struct {
	ID     int    `json:"id"`
	Source string `json:"source,omitempty"` // the local address the path binds
	NIC    string `json:"nic,omitempty"`
	// Local is the connection's local address and port, while connected.
	Local string `json:"local,omitempty"`
	// Remote is the member port the session is logged in to, after the
	// group's redirect.
	Remote        string    `json:"remote,omitempty"`
	State         State     `json:"state"`
	Outstanding   int64     `json:"outstanding"`
	Completed     uint64    `json:"completed"`
	IOPS          float64   `json:"iops"`
	Errors        uint64    `json:"errors"`
	LastFailure   string    `json:"last_failure,omitempty"`
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
}

// Status reports the device and every path.
func (d *Device) Status() Status {
	st := Status{
		Target: d.cfg.Session.TargetName, LUN: d.cfg.LUN, WWID: d.wwid, Policy: d.cfg.Policy,
	}
	if d.lu != nil {
		st.Size = d.lu.Size()
	}
	// Under the failover policy, the path the selector would pick now is
	// the active one, and the other healthy paths wait on standby.
	var inUse *path
	if d.cfg.Policy == PolicyFailover {
		inUse = firstUsable(d.paths, false)
	}
	for _, p := range d.paths {
		st.Paths = append(st.Paths, p.status(inUse))
	}
	return st
}

func (p *path) status(inUse *path) PathStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := PathStatus{
		ID: p.id, Source: p.spec.SourceAddr, NIC: p.spec.Device, Remote: p.remote,
		State:       p.publicState(inUse),
		Outstanding: p.outstanding.Load(), Completed: p.completed.Load(),
		IOPS: p.iops, Errors: p.errors.Load(),
		LastFailure: p.lastReason, LastFailureAt: p.lastFailure,
	}
	if s := p.sess.Load(); s != nil {
		ps.Local = s.LocalAddr()
	}
	if ps.State == StateFailed || ps.State == StateReinstating {
		ps.Remote, ps.Local = "", ""
	}
	return ps
}

func (p *path) publicState(inUse *path) State {
	switch p.loadState() {
	case stateDraining:
		return StateDraining
	case stateFailed:
		return StateFailed
	case stateReinstating:
		return StateReinstating
	}
	if inUse != nil && inUse != p {
		return StateStandby
	}
	return StateActive
}
