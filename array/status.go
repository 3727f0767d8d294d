package array

import (
	"os"
	"slices"
	"time"

	"github.com/hitkit/hitkit/array/target"
)

// Status is a snapshot of a running group, as `hitkit lab status` shows
// it. It holds no secrets: only where they are.
type Status struct {
	Name              string    `json:"name"`
	Dir               string    `json:"dir"`
	PID               int       `json:"pid"`
	Since             time.Time `json:"since"`
	GroupAddr         string    `json:"group_ip"`
	ManagementAddr    string    `json:"management_api"`
	AdminPasswordFile string    `json:"admin_password_file"`
	// MembershipPasswordFile lets a member join the group (setup-array --join).
	MembershipPasswordFile string          `json:"membership_password_file,omitempty"`
	PageSize               int64           `json:"page_size"`
	ForwardLatency         Duration        `json:"forward_latency"`
	GroupPort              PortStatus      `json:"group_port"`
	Members                []MemberStatus  `json:"members"`
	Volumes                []VolumeStatus  `json:"volumes"`
	Sessions               []SessionStatus `json:"sessions"`
	Faults                 []Fault         `json:"faults"`
}

// MemberStatus is one member.
type MemberStatus struct {
	Number   int         `json:"number"`
	Name     string      `json:"name,omitempty"`
	Serial   string      `json:"serial"`
	State    MemberState `json:"state"`
	Capacity int64       `json:"capacity"` // usable bytes, after RAID
	RAID     string      `json:"raid,omitempty"`
	Used     int64       `json:"used"` // bytes its volume files take
	// SetupEndpoint and SetupFingerprint are where an uninitialised
	// member's setup endpoint answers, and its certificate's SHA-256.
	SetupEndpoint    string       `json:"setup_endpoint,omitempty"`
	SetupFingerprint string       `json:"setup_fingerprint,omitempty"`
	Forwarded        uint64       `json:"forwarded_ios"`
	Ports            []PortStatus `json:"ports"`
}

// PortStatus is one port. State is "up", "down" or "blackholed".
type PortStatus struct {
	Addr     string   `json:"address"`
	TPGT     uint16   `json:"tpgt"`
	State    string   `json:"state"`
	Latency  Duration `json:"latency,omitempty"`
	Sessions int      `json:"sessions"`
}

// VolumeStatus is one volume.
type VolumeStatus struct {
	Name           string        `json:"name"`
	IQN            string        `json:"iqn"`
	Serial         string        `json:"serial"`
	Size           int64         `json:"size"`
	Thin           bool          `json:"thin"`
	Allocated      int64         `json:"allocated"`
	PagesPerMember map[int]int64 `json:"pages_per_member"`
	Forwarded      uint64        `json:"forwarded_ios"`
	Sessions       int           `json:"sessions"`
	CHAPUser       string        `json:"chap_user,omitempty"`
	CHAPSecretFile string        `json:"chap_secret_file"`
	Access         []string      `json:"access"`
	// Snapshots counts the volume's snapshots; SnapshotReserveUsed is the
	// bytes of snapshot reserve they hold.
	Snapshots           int   `json:"snapshots"`
	SnapshotReserveUsed int64 `json:"snapshot_reserve_used"`
}

// SessionStatus is one logged-in session.
type SessionStatus struct {
	TSIH      uint16    `json:"tsih"`
	Type      string    `json:"type"`
	Initiator string    `json:"initiator"`
	ISID      string    `json:"isid"`
	Volume    string    `json:"volume,omitempty"`
	Portal    string    `json:"portal"`
	Member    int       `json:"member"` // 0: the group IP
	Remote    string    `json:"remote"`
	CHAPUser  string    `json:"chap_user,omitempty"`
	Since     time.Time `json:"since"`
	Commands  uint64    `json:"commands"`
}

// Status reports the group's members, ports, volumes, sessions and faults.
func (g *Group) Status() Status {
	sessions := g.srv.Sessions()
	faults := g.Faults()
	stores := g.storeStatuses()
	g.mu.Lock()
	defer g.mu.Unlock()
	perPort := map[string]int{}
	for _, s := range sessions {
		perPort[s.Portal.Addr]++
	}
	st := Status{
		Name: g.cfg.Name, Dir: g.dir, PID: os.Getpid(), Since: g.started,
		GroupAddr: g.cfg.GroupAddr(), ManagementAddr: g.cfg.ManagementAddr(),
		AdminPasswordFile: AdminPasswordFile(g.dir), PageSize: g.cfg.PageSize,
		ForwardLatency: Duration(g.forwardLatency.Load()),
		GroupPort:      g.groupPort.status(perPort),
		Sessions:       make([]SessionStatus, 0, len(sessions)),
		Faults:         faults,
	}
	if g.cfg.Formed() {
		st.MembershipPasswordFile = MembershipPasswordFile(g.dir)
	}
	used := map[int]int64{}
	for _, v := range g.volumes {
		ss, ok := stores[v]
		if !ok {
			continue // added since storeStatuses looked
		}
		st.Volumes = append(st.Volumes, g.volumeStatusLocked(v, ss, sessions))
		for m, n := range ss.allocated {
			used[m] += n
		}
	}
	for _, m := range g.members {
		ms := m.status(perPort, used[m.Number()])
		if m.state == MemberUninitialized && g.setupInfo != nil {
			ms.SetupEndpoint, ms.SetupFingerprint, _ = g.setupInfo(m.Number())
		}
		st.Members = append(st.Members, ms)
	}
	for _, s := range sessions {
		st.Sessions = append(st.Sessions, g.sessionStatusLocked(s))
	}
	return st
}

func (p *Port) status(sessions map[string]int) PortStatus {
	state := "up"
	switch {
	case p.down:
		state = "down"
	case p.blackholed:
		state = "blackholed"
	}
	return PortStatus{Addr: p.Addr, TPGT: p.TPGT, State: state, Latency: Duration(p.latency), Sessions: sessions[p.Addr]}
}

func (m *Member) status(sessions map[string]int, used int64) MemberStatus {
	ms := MemberStatus{
		Number: m.cfg.Number, Name: m.cfg.Name, Serial: m.cfg.Serial, State: m.state,
		Capacity: m.cfg.UsableCapacity(), RAID: m.cfg.RAID, Used: used, Forwarded: m.forwarded.Load(), Ports: []PortStatus{},
	}
	for _, p := range m.ports {
		ps := p.status(sessions)
		if m.state == MemberFailingOver && ps.State == "up" {
			ps.State = "down"
		}
		ms.Ports = append(ms.Ports, ps)
	}
	return ms
}

// storeStatus is what Status reports of a volume's storage. It is read
// before the group's mutex is taken: a rebalance holds a volume's lock
// while it waits for the group's mutex, so the two are never taken in the
// other order.
type storeStatus struct {
	allocated           map[int]int64
	size                int64
	pages               PageMap
	snapshots           int
	snapshotReserveUsed int64
}

func (g *Group) storeStatuses() map[*servedVolume]storeStatus {
	g.mu.Lock()
	vols := slices.Clone(g.volumes)
	g.mu.Unlock()
	out := make(map[*servedVolume]storeStatus, len(vols))
	for _, v := range vols {
		ss := storeStatus{allocated: v.store.AllocatedBytes(), size: v.store.Size(), pages: v.store.PageMap()}
		ss.snapshots, ss.snapshotReserveUsed = v.snapshotStatus()
		out[v] = ss
	}
	return out
}

func (g *Group) volumeStatusLocked(v *servedVolume, ss storeStatus, sessions []target.SessionInfo) VolumeStatus {
	n := 0
	for _, s := range sessions {
		if s.TargetName == v.cfg.IQN {
			n++
		}
	}
	var allocated int64
	for _, b := range ss.allocated {
		allocated += b
	}
	vs := VolumeStatus{
		Name: v.cfg.Name, IQN: v.cfg.IQN, Serial: v.cfg.Serial, Size: ss.size, Thin: v.cfg.Thin,
		Allocated: allocated, PagesPerMember: ss.pages.PagesPerMember(),
		Forwarded: v.forwarded.Load(), Sessions: n, CHAPUser: v.cfg.CHAPUser,
		CHAPSecretFile: CHAPSecretFile(g.dir, v.cfg.Name), Access: []string{},
	}
	for _, r := range v.cfg.Access {
		vs.Access = append(vs.Access, r.String())
	}
	vs.Snapshots, vs.SnapshotReserveUsed = ss.snapshots, ss.snapshotReserveUsed
	return vs
}

func (g *Group) sessionStatusLocked(s target.SessionInfo) SessionStatus {
	ss := SessionStatus{
		TSIH: s.TSIH, Type: s.Type, Initiator: s.InitiatorName, ISID: s.ISID,
		Portal: s.Portal.Addr, Member: memberOfTPGT(s.Portal.TPGT), Remote: s.Remote,
		CHAPUser: s.CHAPUser, Since: s.Since, Commands: s.Commands,
	}
	for _, v := range g.volumes {
		if v.cfg.IQN == s.TargetName {
			ss.Volume = v.cfg.Name
		}
	}
	return ss
}
