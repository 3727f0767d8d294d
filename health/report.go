package health

import (
	"slices"
	"time"
)

// Checks, the kinds of finding.
const (
	CheckDaemon    = "daemon"
	CheckVolume    = "volume"
	CheckPath      = "path"
	CheckNIC       = "nic"
	CheckMember    = "member"
	CheckLatency   = "latency"
	CheckArray     = "array"
	CheckReserve   = "snapshot-reserve"
	CheckSnapshots = "snapshots"
)

// Finding is one verdict about one subject, such as a path of a volume.
type Finding struct {
	State   State  `json:"state"`
	Check   string `json:"check"`
	Subject string `json:"subject"`
	Message string `json:"message"`
}

// Report is the outcome of one run.
type Report struct {
	Time     time.Time      `json:"time"`
	State    State          `json:"state"` // the worst finding's
	Daemon   DaemonReport   `json:"daemon"`
	Volumes  []VolumeReport `json:"volumes"`
	NICs     []NICReport    `json:"nics"`
	Groups   []GroupReport  `json:"groups"`
	Findings []Finding      `json:"findings"`
}

// DaemonReport says whether hitkitd answered.
type DaemonReport struct {
	Running bool `json:"running"`
	PID     int  `json:"pid,omitempty"`
}

// VolumeReport holds a volume's figures, for perfdata and metrics.
type VolumeReport struct {
	Name       string       `json:"name"`
	Target     string       `json:"target"`
	WWID       string       `json:"wwid"`
	PathsTotal int          `json:"paths_total"`
	PathsUp    int          `json:"paths_up"`
	ErrorsNew  uint64       `json:"errors_since_last_run"`
	Paths      []PathReport `json:"paths"`
	Array      *VolumeArray `json:"array,omitempty"` // nil when the group was not asked
	GroupAPI   string       `json:"group_api,omitempty"`
}

// PathReport is one path of a volume.
type PathReport struct {
	ID             int     `json:"id"`
	Source         string  `json:"source,omitempty"`
	NIC            string  `json:"nic,omitempty"`
	Remote         string  `json:"remote,omitempty"`
	Member         int     `json:"member,omitempty"`
	State          string  `json:"state"`
	Up             bool    `json:"up"`
	Errors         uint64  `json:"errors"`
	ErrorsNew      uint64  `json:"errors_since_last_run"`
	Reinstated     uint64  `json:"reinstated"`
	ReinstatedNew  uint64  `json:"reinstated_since_last_run"`
	LatencyAvgUs   float64 `json:"latency_avg_us"`
	LatencySamples uint64  `json:"latency_samples"`
	LatencyMaxUs   float64 `json:"latency_max_us"`
}

// VolumeArray is what the group says about a volume.
type VolumeArray struct {
	Name            string  `json:"name"`
	ReservePercent  int     `json:"reserve_percent"`
	ReserveUsed     int64   `json:"reserve_used"`
	ReserveUsedPct  float64 `json:"reserve_used_percent"` // of the reserve; -1 when not known
	Snapshots       int     `json:"snapshots"`
	SnapshotsOnline int     `json:"snapshots_online"`
}

// NICReport is a NIC that carries paths.
type NICReport struct {
	Name     string `json:"name"`
	Up       bool   `json:"up"`
	MTU      int    `json:"mtu"`
	SpeedMbs int    `json:"speed_mbs,omitempty"`
	Paths    int    `json:"paths"`
}

// GroupReport is one group's management API as this run saw it.
type GroupReport struct {
	API       string `json:"api"`
	Name      string `json:"name,omitempty"`
	Reachable bool   `json:"reachable"`
	Members   int    `json:"members"`
	MembersOK int    `json:"members_online"`
	PortsDown int    `json:"ports_down"`
}

func (r *Report) add(state State, check, subject, message string) {
	r.Findings = append(r.Findings, Finding{State: state, Check: check, Subject: subject, Message: message})
}

// finish sets the overall state and puts the worst findings first.
func (r *Report) finish() {
	r.State = OK
	for _, f := range r.Findings {
		r.State = Worse(r.State, f.State)
	}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		return b.State.severity() - a.State.severity()
	})
}

// Problems are the findings that are not OK.
func (r *Report) Problems() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.State != OK {
			out = append(out, f)
		}
	}
	return out
}
