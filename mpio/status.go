package mpio

import (
	"slices"
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
	// Members are the group members that hold the volume's pages, by the
	// page map; empty without one.
	Members []int `json:"members,omitempty"`
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
	// Reinstated counts the times the path failed and logged in again
	// (not the renewals the target asks for): a flapping path counts up.
	Reinstated uint64 `json:"reinstated"`
	// Member is the group member of Remote, by the page map; 0 if unknown.
	Member int `json:"member,omitempty"`
	// LatencyAvgUs is a moving average of the path's command latency (0
	// when it has completed nothing for a while) over LatencySamples
	// commands, LatencyMaxUs the slowest command of the last 10 seconds.
	LatencyAvgUs   float64 `json:"latency_avg_us"`
	LatencySamples uint64  `json:"latency_samples"`
	LatencyMaxUs   float64 `json:"latency_max_us"`
}

// Status reports the device and every path.
func (d *Device) Status() Status {
	st := Status{
		Target: d.cfg.Session.TargetName, LUN: d.cfg.LUN, WWID: d.wwid, Policy: d.cfg.Policy,
	}
	if d.lu != nil {
		st.Size = d.lu.Size()
	}
	if d.cfg.PageMap != nil {
		st.Members = distinctMembers(d.cfg.PageMap.Members)
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
	ps.Reinstated, ps.Member = p.reinstated.Load(), int(p.member.Load())
	avg, samples, slowest := p.latency.report()
	ps.LatencyAvgUs, ps.LatencySamples, ps.LatencyMaxUs = microseconds(avg), samples, microseconds(slowest)
	if ps.State == StateFailed || ps.State == StateReinstating {
		ps.Remote, ps.Local, ps.Member = "", "", 0
	}
	return ps
}

func microseconds(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// distinctMembers lists each member of a page map once, in order.
func distinctMembers(members []int) []int {
	var out []int
	for _, m := range members {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
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
