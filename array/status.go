package array

import (
	"os"
	"time"

	"github.com/hitkit/hitkit/array/target"
)

// Status is a snapshot of a running group, as `hitkit lab status` shows
// it. It holds no secrets: only where they are.
type Status struct {
	Name              string          `json:"name"`
	Dir               string          `json:"dir"`
	PID               int             `json:"pid"`
	Since             time.Time       `json:"since"`
	GroupAddr         string          `json:"group_ip"`
	ManagementAddr    string          `json:"management_api"`
	AdminPasswordFile string          `json:"admin_password_file"`
	PageSize          int64           `json:"page_size"`
	ForwardLatency    Duration        `json:"forward_latency"`
	GroupPort         PortStatus      `json:"group_port"`
	Members           []MemberStatus  `json:"members"`
	Volumes           []VolumeStatus  `json:"volumes"`
	Sessions          []SessionStatus `json:"sessions"`
	Faults            []Fault         `json:"faults"`
}

// MemberStatus is one member.
type MemberStatus struct {
	Number    int          `json:"number"`
	Name      string       `json:"name,omitempty"`
	Serial    string       `json:"serial"`
	State     MemberState  `json:"state"`
	Capacity  int64        `json:"capacity"`
	Used      int64        `json:"used"` // bytes its volume files take
	Forwarded uint64       `json:"forwarded_ios"`
	Ports     []PortStatus `json:"ports"`
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
	g.mu.Lock()
	defer g.mu.Unlock()
	perPort := map[string]int{}
	for _, s := range sessions {
		perPort[s.Portal.Addr]++
	}
	st := Status{
		Name: g.cfg.Name, Dir: g.dir, PID: os.Getpid(), Since: g.started,
		GroupAddr: g.GroupAddr(), ManagementAddr: g.ManagementAddr(),
		AdminPasswordFile: AdminPasswordFile(g.dir), PageSize: g.cfg.PageSize,
		ForwardLatency: Duration(g.forwardLatency.Load()),
		GroupPort:      g.groupPort.status(perPort),
		Sessions:       make([]SessionStatus, 0, len(sessions)),
		Faults:         faults,
	}
	used := map[int]int64{}
	for _, v := range g.volumes {
		vs := g.volumeStatusLocked(v, sessions)
		st.Volumes = append(st.Volumes, vs)
		for m, n := range v.store.AllocatedBytes() {
			used[m] += n
		}
	}
	for _, m := range g.members {
		st.Members = append(st.Members, m.status(perPort, used[m.Number()]))
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
		Capacity: m.cfg.Capacity, Used: used, Forwarded: m.forwarded.Load(), Ports: []PortStatus{},
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

func (g *Group) volumeStatusLocked(v *servedVolume, sessions []target.SessionInfo) VolumeStatus {
	n := 0
	for _, s := range sessions {
		if s.TargetName == v.cfg.IQN {
			n++
		}
	}
	var allocated int64
	for _, b := range v.store.AllocatedBytes() {
		allocated += b
	}
	vs := VolumeStatus{
		Name: v.cfg.Name, IQN: v.cfg.IQN, Serial: v.cfg.Serial, Size: v.store.Size(), Thin: v.cfg.Thin,
		Allocated: allocated, PagesPerMember: v.store.PageMap().PagesPerMember(),
		Forwarded: v.forwarded.Load(), Sessions: n, CHAPUser: v.cfg.CHAPUser,
		CHAPSecretFile: CHAPSecretFile(g.dir, v.cfg.Name), Access: []string{},
	}
	for _, r := range v.cfg.Access {
		vs.Access = append(vs.Access, r.String())
	}
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
