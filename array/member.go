package array

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ISCSIPort is where every portal of the lab listens; addresses tell the
// ports apart.
const ISCSIPort = 3260

// groupTPGT is the group IP's target portal group tag. Member ports use
// 10*m+p, the last octet's offset in the address plan, so that no two
// ports share a tag and a tag tells which member a nexus came through.
const groupTPGT = 1

// GroupAddr is the group IP's portal, BASE+1:3260.
func GroupAddr(base netip.Addr) string {
	return hostPort(offset(base, 1))
}

// PortAddr is member m's port p, BASE+10*m+p:3260 (both 1-based).
func PortAddr(base netip.Addr, m, p int) string {
	return hostPort(offset(base, 10*m+p))
}

func portTPGT(m, p int) uint16 { return uint16(10*m + p) }

// memberOfTPGT inverts portTPGT; the group IP maps to member 0.
func memberOfTPGT(tpgt uint16) int { return int(tpgt) / 10 }

func offset(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	b[3] += byte(n)
	return netip.AddrFrom4(b)
}

func hostPort(a netip.Addr) string {
	return netip.AddrPortFrom(a, ISCSIPort).String()
}

// MemberState is where a member is in its life.
type MemberState string

const (
	// MemberUninitialized members are not in the group yet: they wait
	// for the setup wizard and serve no iSCSI.
	MemberUninitialized MemberState = "uninitialized"
	// MemberOnline members serve their ports.
	MemberOnline MemberState = "online"
	// MemberFailingOver members have dropped every connection for a
	// control-module failover and will be back shortly.
	MemberFailingOver MemberState = "failing-over"
)

// Member is one array in the group.
type Member struct {
	// groupMu is the group's mutex: a join changes cfg and ports under it,
	// so the accessors that others call take it.
	groupMu *sync.Mutex
	cfg     MemberConfig
	ports   []*Port

	// The state and the failover are guarded by the group's mutex.
	state         MemberState
	failoverSince time.Time
	failoverUntil time.Time
	failoverTimer *time.Timer

	forwarded atomic.Uint64 // commands it forwarded to other members
}

func newMember(groupMu *sync.Mutex, cfg MemberConfig, base netip.Addr) *Member {
	m := &Member{groupMu: groupMu, cfg: cfg, state: MemberUninitialized}
	if cfg.Initialized {
		m.state = MemberOnline
	}
	m.ports = memberPorts(cfg, base)
	return m
}

// memberPorts are a member's ports: at the addresses the setup wizard
// gave it (IP, IP+1, ...), or else at the address plan's.
func memberPorts(cfg MemberConfig, base netip.Addr) []*Port {
	var ports []*Port
	for p := 1; p <= cfg.Ports; p++ {
		addr := PortAddr(base, cfg.Number, p)
		if cfg.IP.IsValid() {
			addr = hostPort(offset(cfg.IP.Addr(), p-1))
		}
		ports = append(ports, &Port{Member: cfg.Number, Number: p, Addr: addr, TPGT: portTPGT(cfg.Number, p)})
	}
	return ports
}

// Number is the member's 1-based number in the group.
func (m *Member) Number() int { return m.cfg.Number }

// Name is the member's name; uninitialised members have none.
func (m *Member) Name() string {
	m.groupMu.Lock()
	defer m.groupMu.Unlock()
	return m.cfg.Name
}

// Serial is the member's serial number.
func (m *Member) Serial() string { return m.cfg.Serial }

// Ports lists the member's Ethernet ports.
func (m *Member) Ports() []*Port {
	m.groupMu.Lock()
	defer m.groupMu.Unlock()
	return slices.Clone(m.ports)
}

// Forwarded counts the commands the member received for pages it does
// not hold.
func (m *Member) Forwarded() uint64 { return m.forwarded.Load() }

func (m *Member) String() string {
	if m.cfg.Name != "" {
		return m.cfg.Name
	}
	return "member " + strconv.Itoa(m.cfg.Number)
}

// Port is one Ethernet port of a member: a portal of the group's target
// server. Its fault state is guarded by the group's mutex.
type Port struct {
	Member int    // member number
	Number int    // 1-based within the member
	Addr   string // host:port
	TPGT   uint16

	down       bool          // the listener is closed
	blackholed bool          // TCP stays up, nothing is answered
	latency    time.Duration // added to every response

	downSince, blackholeSince, latencySince time.Time
}

func (p *Port) String() string {
	if p.Member == 0 {
		return "group IP " + p.Addr
	}
	return fmt.Sprintf("member %d port %d (%s)", p.Member, p.Number, p.Addr)
}
