package array

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// FaultKind names a fault that the lab can inject, or undo.
type FaultKind string

const (
	// FaultPortDown closes a port's listener and resets its connections:
	// connects are refused until FaultPortUp.
	FaultPortDown FaultKind = "port-down"
	FaultPortUp   FaultKind = "port-up"
	// FaultBlackhole keeps TCP up but answers nothing: a dead switch.
	FaultBlackhole   FaultKind = "blackhole"
	FaultUnblackhole FaultKind = "unblackhole"
	// FaultLatency adds latency to every response through a port; zero
	// removes it.
	FaultLatency FaultKind = "latency"
	// FaultFailover is a control-module failover on a member: every port
	// drops its connections and refuses new ones for Duration, then
	// comes back.
	FaultFailover FaultKind = "cm-failover"
	// FaultLogoutRequest sends AsyncEvent 1, "log out within N seconds",
	// to a session, or to every session of a volume, port or member.
	FaultLogoutRequest FaultKind = "logout-request"
	// FaultForwardLatency changes the latency of forwarded I/O.
	FaultForwardLatency FaultKind = "forward-latency"
	// FaultClear undoes every port and member fault.
	FaultClear FaultKind = "clear"
)

// FaultKinds lists the kinds, for help texts.
var FaultKinds = []FaultKind{
	FaultPortDown, FaultPortUp, FaultBlackhole, FaultUnblackhole, FaultLatency,
	FaultFailover, FaultLogoutRequest, FaultForwardLatency, FaultClear,
}

// Defaults of fault requests that leave the duration out.
const (
	DefaultFailoverDuration = 3 * time.Second
	DefaultLogoutWithin     = 10 * time.Second
)

// FaultRequest asks for one fault. Port faults take Port (host:port, or
// just the host for port 3260) or Member (all its ports); the group IP is
// a port like any other.
type FaultRequest struct {
	Kind     FaultKind `json:"kind"`
	Port     string    `json:"port,omitempty"`
	Member   int       `json:"member,omitempty"`
	Volume   string    `json:"volume,omitempty"`
	Session  uint16    `json:"session,omitempty"` // TSIH
	Latency  Duration  `json:"latency,omitempty"`
	Duration Duration  `json:"duration,omitempty"` // how long a failover lasts
	Within   Duration  `json:"within,omitempty"`   // the logout deadline
}

// Fault is an active fault, for status output.
type Fault struct {
	Kind   FaultKind `json:"kind"`
	Where  string    `json:"where"` // a port, a member or a session
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until,omitzero"`
	Detail string    `json:"detail,omitempty"`
}

// Inject applies a fault and says what it did, in one line.
func (g *Group) Inject(r FaultRequest) (string, error) {
	log := g.log.WithFields(logrus.Fields{"fault": r.Kind, "port": r.Port, "member": r.Member, "volume": r.Volume, "session": r.Session})
	msg, err := g.inject(r)
	if err != nil {
		log.WithError(err).Warn("fault refused")
		return "", err
	}
	log.Warn("fault injected: " + msg)
	return msg, nil
}

func (g *Group) inject(r FaultRequest) (string, error) {
	switch r.Kind {
	case FaultPortDown, FaultPortUp, FaultBlackhole, FaultUnblackhole, FaultLatency:
		ports, err := g.faultPorts(r)
		if err != nil {
			return "", err
		}
		return g.portFault(r, ports)
	case FaultFailover:
		d := time.Duration(r.Duration)
		if d <= 0 {
			d = DefaultFailoverDuration
		}
		return g.Failover(r.Member, d)
	case FaultLogoutRequest:
		return g.requestLogouts(r)
	case FaultForwardLatency:
		if r.Latency < 0 {
			return "", errors.New("forward latency cannot be negative")
		}
		g.forwardLatency.Store(int64(r.Latency))
		return fmt.Sprintf("forwarded I/O now costs %v", time.Duration(r.Latency)), nil
	case FaultClear:
		return g.ClearFaults()
	case "":
		return "", errors.New("no fault kind given")
	}
	return "", fmt.Errorf("unknown fault %q; the kinds are %v", r.Kind, FaultKinds)
}

// faultPorts resolves the ports a port fault applies to.
func (g *Group) faultPorts(r FaultRequest) ([]*Port, error) {
	switch {
	case r.Port != "" && r.Member != 0:
		return nil, errors.New("give a port or a member, not both")
	case r.Port != "":
		p, err := g.port(r.Port)
		return []*Port{p}, err
	case r.Member != 0:
		m, err := g.Member(r.Member)
		if err != nil {
			return nil, err
		}
		if len(m.ports) == 0 {
			return nil, fmt.Errorf("%s has no ports: it is not initialised", m)
		}
		return m.ports, nil
	}
	return nil, fmt.Errorf("%s needs a port or a member", r.Kind)
}

// port finds a port by address; a bare host means port 3260.
func (g *Group) port(addr string) (*Port, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, strconv.Itoa(ISCSIPort))
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		addr = ap.String()
	}
	for _, p := range g.allPorts() {
		if p.Addr == addr {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no port %s in group %s; `hitkit lab status` lists them", addr, g.cfg.Name)
}

// allPorts is the group IP followed by every member port.
func (g *Group) allPorts() []*Port {
	out := []*Port{g.groupPort}
	for _, m := range g.members {
		out = append(out, m.ports...)
	}
	return out
}

func (g *Group) portFault(r FaultRequest, ports []*Port) (string, error) {
	var errs []error
	for _, p := range ports {
		errs = append(errs, g.portFaultOne(r, p))
	}
	names := make([]string, len(ports))
	for i, p := range ports {
		names[i] = p.Addr
	}
	return fmt.Sprintf("%s on %s", r.Kind, strings.Join(names, ", ")), errors.Join(errs...)
}

func (g *Group) portFaultOne(r FaultRequest, p *Port) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r.Kind {
	case FaultPortDown:
		p.down, p.downSince = true, time.Now()
		return g.srv.DropPortal(p.Addr)
	case FaultPortUp:
		p.down = false
		return g.restoreLocked(p)
	case FaultBlackhole, FaultUnblackhole:
		p.blackholed = r.Kind == FaultBlackhole
		p.blackholeSince = time.Now()
		return g.srv.Blackhole(p.Addr, p.blackholed)
	case FaultLatency:
		if r.Latency < 0 {
			return errors.New("latency cannot be negative")
		}
		p.latency = time.Duration(r.Latency)
		p.latencySince = time.Now()
		return g.srv.Delay(p.Addr, p.latency)
	}
	return nil
}

// restoreLocked listens on a port again, unless something else still
// keeps it down: its own port-down, or its member's failover.
func (g *Group) restoreLocked(p *Port) error {
	if p.down {
		return nil
	}
	if p.Member != 0 && g.members[p.Member-1].state != MemberOnline {
		return nil
	}
	return g.srv.RestorePortal(p.Addr)
}

// Failover simulates a control-module failover on member m: its ports
// drop every connection and refuse new ones for d, then come back, and
// the sessions must recover by themselves.
func (g *Group) Failover(member int, d time.Duration) (string, error) {
	m, err := g.Member(member)
	if err != nil {
		return "", err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if m.state != MemberOnline {
		return "", fmt.Errorf("%s is %s; only an online member can fail over", m, m.state)
	}
	m.state, m.failoverSince, m.failoverUntil = MemberFailingOver, time.Now(), time.Now().Add(d)
	var errs []error
	for _, p := range m.ports {
		errs = append(errs, g.srv.DropPortal(p.Addr))
	}
	m.failoverTimer = time.AfterFunc(d, func() { g.endFailover(m) })
	return fmt.Sprintf("%s is failing over for %v", m, d), errors.Join(errs...)
}

// endFailover brings a member's ports back after a failover.
func (g *Group) endFailover(m *Member) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.endFailoverLocked(m)
}

func (g *Group) endFailoverLocked(m *Member) {
	if m.state != MemberFailingOver {
		return
	}
	m.failoverTimer.Stop()
	m.state = MemberOnline
	for _, p := range m.ports {
		if err := g.restoreLocked(p); err != nil {
			g.log.WithError(err).WithField("port", p.Addr).Error("port did not come back after the failover")
		}
	}
	g.log.WithField("member", m.Number()).Info("control-module failover over")
}

// requestLogouts asks sessions to log out (AsyncEvent 1): one by TSIH,
// or every Normal session of a volume, a port or a member.
func (g *Group) requestLogouts(r FaultRequest) (string, error) {
	within := time.Duration(r.Within)
	if within <= 0 {
		within = DefaultLogoutWithin
	}
	tsihs, err := g.logoutTargets(r)
	if err != nil {
		return "", err
	}
	var errs []error
	now := time.Now()
	for _, tsih := range tsihs {
		errs = append(errs, g.srv.RequestLogout(tsih, within))
	}
	g.mu.Lock()
	for _, tsih := range tsihs {
		g.logouts = append(g.logouts, Fault{
			Kind: FaultLogoutRequest, Where: fmt.Sprintf("session %d", tsih), Since: now, Until: now.Add(within),
		})
	}
	g.mu.Unlock()
	return fmt.Sprintf("asked %d session(s) %v to log out within %v", len(tsihs), tsihs, within), errors.Join(errs...)
}

func (g *Group) logoutTargets(r FaultRequest) ([]uint16, error) {
	if r.Session != 0 {
		return []uint16{r.Session}, nil
	}
	var iqn, port string
	member := r.Member
	switch {
	case r.Volume != "":
		v, err := g.volume(r.Volume)
		if err != nil {
			return nil, err
		}
		iqn = v.cfg.IQN
	case r.Port != "":
		p, err := g.port(r.Port)
		if err != nil {
			return nil, err
		}
		port = p.Addr
	case member == 0:
		return nil, errors.New("logout-request needs a session, a volume, a port or a member")
	}
	var out []uint16
	for _, s := range g.srv.Sessions() {
		if s.Type != "Normal" || (iqn != "" && s.TargetName != iqn) || (port != "" && s.Portal.Addr != port) ||
			(member != 0 && memberOfTPGT(s.Portal.TPGT) != member) {
			continue
		}
		out = append(out, s.TSIH)
	}
	if len(out) == 0 {
		return nil, errors.New("no session matches; `hitkit lab status` lists them")
	}
	return out, nil
}

// ClearFaults undoes every port and member fault: ports come up and stop
// blackholing and lagging, and failovers end now.
func (g *Group) ClearFaults() (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for _, m := range g.members {
		g.endFailoverLocked(m)
	}
	for _, p := range g.allPorts() {
		if p.blackholed {
			p.blackholed = false
			errs = append(errs, g.srv.Blackhole(p.Addr, false))
		}
		if p.latency != 0 {
			p.latency = 0
			errs = append(errs, g.srv.Delay(p.Addr, 0))
		}
		if p.down {
			p.down = false
			errs = append(errs, g.restoreLocked(p))
		}
	}
	g.logouts = nil
	return "every fault cleared", errors.Join(errs...)
}

// Faults lists what is broken right now.
func (g *Group) Faults() []Fault {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Fault
	for _, m := range g.members {
		if m.state == MemberFailingOver {
			out = append(out, Fault{Kind: FaultFailover, Where: m.String(), Since: m.failoverSince, Until: m.failoverUntil})
		}
	}
	for _, p := range g.allPorts() {
		out = append(out, p.faults()...)
	}
	now := time.Now()
	kept := g.logouts[:0]
	for _, f := range g.logouts {
		if f.Until.After(now) {
			kept = append(kept, f)
			out = append(out, f)
		}
	}
	g.logouts = kept
	return out
}

func (p *Port) faults() []Fault {
	var out []Fault
	if p.down {
		out = append(out, Fault{Kind: FaultPortDown, Where: p.Addr, Since: p.downSince})
	}
	if p.blackholed {
		out = append(out, Fault{Kind: FaultBlackhole, Where: p.Addr, Since: p.blackholeSince})
	}
	if p.latency != 0 {
		out = append(out, Fault{Kind: FaultLatency, Where: p.Addr, Since: p.latencySince, Detail: p.latency.String()})
	}
	return out
}

// stopFaultTimers cancels pending failover ends, so that nothing fires
// into a closed server.
func (g *Group) stopFaultTimers() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.members {
		if m.failoverTimer != nil {
			m.failoverTimer.Stop()
		}
	}
}
