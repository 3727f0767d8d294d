package array

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/hitkit/hitkit/setupapi"
)

// A site is the lab's directory of members (DIR). It holds at most one
// group. `hitkit lab up --members 0 --uninitialized N` makes a site that
// holds none yet: no group name, nothing served at a group IP, no
// management API, only members waiting for the setup wizard. The wizard
// forms the group on one of them (create) and adds the others (join);
// see SetUpMember.

// Formed says whether the site holds a group: whether some member is
// initialised.
func (c Config) Formed() bool { return len(c.onlineMembers()) > 0 }

// validateSite checks what depends on whether the site holds a group.
func (c Config) validateSite() error {
	if len(c.Members) == 0 {
		return errors.New("a site needs at least one member, initialised or not")
	}
	if !c.Formed() {
		if c.Name != "" {
			return fmt.Errorf("group %s has no initialised member; a site without a group has no group name", c.Name)
		}
		if len(c.Volumes) > 0 {
			return errors.New("volumes need a group with at least one initialised member")
		}
		return nil
	}
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("group name %q: use 1 to 63 lower-case letters, digits, '.' or '-'", c.Name)
	}
	if c.GroupIP.IsValid() && (!c.GroupIP.Is4() || !c.GroupIP.IsLoopback()) {
		return fmt.Errorf("group IP %s: the lab listens on loopback only; use an address in 127.0.0.0/8", c.GroupIP)
	}
	for _, m := range c.Members {
		if m.RAID != "" && !slices.Contains(setupapi.RAIDPolicies, m.RAID) {
			return fmt.Errorf("member %d: RAID policy %q is not one of %v", m.Number, m.RAID, setupapi.RAIDPolicies)
		}
		if m.IP.IsValid() && int(m.IP.Addr().As4()[3])+m.Ports-1 > portOctetLimit {
			return fmt.Errorf("member %d: %d ports from %s do not fit in its /24", m.Number, m.Ports, m.IP.Addr())
		}
	}
	return nil
}

// groupIP is the group's address: GroupIP, or BASE+1 by default.
func (c Config) groupIP() netip.Addr {
	if c.GroupIP.IsValid() {
		return c.GroupIP
	}
	return offset(c.BaseIP, 1)
}

// GroupAddr is the group IP's iSCSI portal, host:port; empty while the
// site holds no group.
func (c Config) GroupAddr() string {
	if !c.Formed() {
		return ""
	}
	return hostPort(c.groupIP())
}

// ManagementAddr is where the management API listens, host:port; empty
// while the site holds no group.
func (c Config) ManagementAddr() string {
	if !c.Formed() {
		return ""
	}
	return netip.AddrPortFrom(c.groupIP(), ManagementPort).String()
}

// Network is the subnet the site's members sit on: BASE/24.
func (c Config) Network() netip.Prefix {
	return netip.PrefixFrom(c.BaseIP, 24).Masked()
}

// SetupPortsPerMember is how many ports a member has once set up.
func (c Config) SetupPortsPerMember() int {
	if c.PortsPerMember > 0 {
		return c.PortsPerMember
	}
	return DefaultPortsPerMember
}

// raidDrives is how many drives a lab member simulates.
const raidDrives = 14

// raidDataDrives is how many of a member's 14 drives hold data under each
// policy, the rest being mirrors, parity and hot spares:
//
//	raid10  6 of 14: 12 drives as 6 mirrored pairs, 2 spares
//	raid50 10 of 14: 12 drives as 2 RAID 5 sets of 6, 2 spares
//	raid6  11 of 14: 13 drives with 2 parity, 1 spare
//	raid5  12 of 14: 13 drives with 1 parity, 1 spare
var raidDataDrives = map[string]int64{"raid10": 6, "raid50": 10, "raid6": 11, "raid5": 12}

// UsableCapacity is the member's capacity after RAID: the raw capacity
// times its policy's share of data drives. A member with no policy
// recorded (one made by `lab up`) counts its raw capacity.
func (m MemberConfig) UsableCapacity() int64 {
	n, ok := raidDataDrives[m.RAID]
	if !ok {
		return m.Capacity
	}
	const unit = 1 << 20 // whole MiB, as an array reports it
	return m.Capacity / raidDrives * n / unit * unit
}

// MembershipPasswordFile holds the password that lets a member join the
// group (0600); the setup wizard sets it when it creates the group.
func MembershipPasswordFile(dir string) string {
	return filepath.Join(secretsDir(dir), "membership.password")
}

// SetupRequest is what the setup wizard asks of an uninitialised member.
type SetupRequest struct {
	Member  int          // the member's number on this site
	Name    string       // the member's name
	IP      netip.Prefix // its first port's address; port p takes IP+(p-1)
	Gateway netip.Addr
	RAID    string // one of setupapi.RAIDPolicies
	// Create founds a group; otherwise the member joins the site's group.
	Create             bool
	GroupName          string
	GroupIP            netip.Addr
	AdminPassword      string // create only
	MembershipPassword string // set by a create, checked by a join
}

// SetupReason is why a setup was refused.
type SetupReason int

const (
	SetupInvalid   SetupReason = iota + 1 // a field is wrong
	SetupForbidden                        // wrong membership password
	SetupConflict                         // the state of the site or the network says no
)

// SetupError is a refused setup; nothing was changed. Field names the
// request field at fault as the setup API spells it (member_name, ip,
// gateway, group_name, group_ip, mode, membership_password,
// admin_password, raid).
type SetupError struct {
	Reason SetupReason
	Field  string
	Msg    string
}

func (e *SetupError) Error() string { return e.Msg }

func invalid(field, format string, args ...any) error {
	return &SetupError{Reason: SetupInvalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func conflict(field, format string, args ...any) error {
	return &SetupError{Reason: SetupConflict, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// CheckSetup says whether a setup request can go ahead, changing nothing.
// A wrong membership password is a SetupForbidden error; the caller rate
// limits those.
func (g *Group) CheckSetup(r SetupRequest) error {
	g.mu.Lock()
	c := g.cfg
	g.mu.Unlock()
	if r.Member < 1 || r.Member > len(c.Members) {
		return invalid("", "no member %d on this site", r.Member)
	}
	if mc := c.Members[r.Member-1]; mc.Initialized {
		return conflict("", "member %d is already initialised as %s in group %s", r.Member, mc.Name, c.Name)
	}
	if err := c.checkMemberFields(r); err != nil {
		return err
	}
	if r.Create {
		if err := g.checkCreate(c, r); err != nil {
			return err
		}
	} else if err := g.checkJoin(c, r); err != nil {
		return err
	}
	return checkListen(r.IP.Addr(), c.SetupPortsPerMember())
}

// checkMemberFields checks the member's own answers: name, RAID, and
// addresses on the member's network that no other member or the group
// uses.
func (c Config) checkMemberFields(r SetupRequest) error {
	if !nameRE.MatchString(r.Name) {
		return invalid("member_name", "member name %q: use 1 to 63 lower-case letters, digits, '.' or '-', starting with a letter or digit", r.Name)
	}
	for _, m := range c.Members {
		if m.Initialized && m.Name == r.Name {
			return invalid("member_name", "member name %s is taken by member %d; pick another", r.Name, m.Number)
		}
	}
	if !slices.Contains(setupapi.RAIDPolicies, r.RAID) {
		return invalid("raid", "RAID policy %q: use one of %v", r.RAID, setupapi.RAIDPolicies)
	}
	if !nameRE.MatchString(r.GroupName) {
		return invalid("group_name", "group name %q: use 1 to 63 lower-case letters, digits, '.' or '-', starting with a letter or digit", r.GroupName)
	}
	network := c.Network()
	if !r.IP.IsValid() || !r.IP.Addr().Is4() || !network.Contains(r.IP.Addr()) || r.IP.Bits() != network.Bits() {
		return invalid("ip", "member IP %s: the member sits on %s; give an address in it with its prefix, such as %s/%d", r.IP, network, offset(c.BaseIP, 10*r.Member+1), network.Bits())
	}
	ports := c.SetupPortsPerMember()
	first := int(r.IP.Addr().As4()[3])
	if first == 0 || first+ports-1 > portOctetLimit {
		return invalid("ip", "member IP %s: the member's %d ports take %s to %s, which must stay inside %s (not .0 or .255)", r.IP.Addr(), ports, r.IP.Addr(), offset(r.IP.Addr(), ports-1), network)
	}
	if !r.Gateway.Is4() || !r.IP.Masked().Contains(r.Gateway) || r.Gateway == network.Addr() {
		return invalid("gateway", "gateway %s: give an address in %s", r.Gateway, r.IP.Masked())
	}
	if !r.GroupIP.Is4() || !r.IP.Masked().Contains(r.GroupIP) || r.GroupIP == network.Addr() {
		return invalid("group_ip", "group IP %s: give an address in the member's subnet %s", r.GroupIP, r.IP.Masked())
	}
	used := c.usedAddresses(r.Member)
	for p := range ports {
		a := offset(r.IP.Addr(), p)
		if a == r.Gateway {
			return invalid("ip", "member IP %s: port %d would take %s, the gateway", r.IP.Addr(), p+1, a)
		}
		if a == r.GroupIP {
			return invalid("ip", "member IP %s: port %d would take %s, the group IP", r.IP.Addr(), p+1, a)
		}
		if who, ok := used[a]; ok {
			return conflict("ip", "member IP %s: port %d would take %s, which is %s", r.IP.Addr(), p+1, a, who)
		}
	}
	return nil
}

// usedAddresses are the addresses of the site other than member self's:
// the group IP, online members' ports and the first port address where
// each other uninitialised member answers its setup endpoint.
func (c Config) usedAddresses(self int) map[netip.Addr]string {
	used := map[netip.Addr]string{}
	if c.Formed() {
		used[c.groupIP()] = "the group IP of group " + c.Name
	}
	for _, m := range c.Members {
		if m.Number == self {
			continue
		}
		if !m.Initialized {
			used[offset(c.BaseIP, 10*m.Number+1)] = fmt.Sprintf("uninitialised member %d's address", m.Number)
			continue
		}
		for _, p := range memberPorts(m, c.BaseIP) {
			used[netip.MustParseAddrPort(p.Addr).Addr()] = fmt.Sprintf("member %d's port %d", m.Number, p.Number)
		}
	}
	return used
}

func (g *Group) checkCreate(c Config, r SetupRequest) error {
	if c.Formed() {
		return conflict("mode", "this site already holds group %s at %s; join it instead", c.Name, c.groupIP())
	}
	if who, ok := c.usedAddresses(r.Member)[r.GroupIP]; ok {
		return conflict("group_ip", "group IP %s is %s; pick a free address", r.GroupIP, who)
	}
	if err := checkPassword("admin_password", "admin password", r.AdminPassword); err != nil {
		return err
	}
	if err := checkPassword("membership_password", "membership password", r.MembershipPassword); err != nil {
		return err
	}
	for _, port := range []int{ISCSIPort, ManagementPort} {
		if err := tryListen(netip.AddrPortFrom(r.GroupIP, uint16(port))); err != nil {
			return conflict("group_ip", "group IP %s is in use: something listens on port %d there (%v); pick another address", r.GroupIP, port, err)
		}
	}
	return nil
}

func (g *Group) checkJoin(c Config, r SetupRequest) error {
	if !c.Formed() {
		return conflict("mode", "there is no group to join at %s: this site holds none yet; create one", r.GroupIP)
	}
	if r.GroupIP != c.groupIP() {
		return invalid("group_ip", "no group at %s: group %s is at %s", r.GroupIP, c.Name, c.groupIP())
	}
	if r.GroupName != c.Name {
		return invalid("group_name", "the group at %s is named %s, not %s", c.groupIP(), c.Name, r.GroupName)
	}
	if r.AdminPassword != "" {
		return invalid("admin_password", "a join keeps the group's admin password; leave admin_password out")
	}
	want, err := readSecret(MembershipPasswordFile(g.dir))
	if err != nil {
		return fmt.Errorf("reading the group's membership password: %w", err)
	}
	if !secretEqual(r.MembershipPassword, want) {
		return &SetupError{Reason: SetupForbidden, Field: "membership_password", Msg: "wrong membership password for group " + c.Name}
	}
	return nil
}

// checkPassword applies the setup contract's password rule.
func checkPassword(field, what, pw string) error {
	if err := setupapi.CheckPassword(pw); err != nil {
		return invalid(field, "%s %v", what, err)
	}
	return nil
}

// checkListen says whether a member's ports, from first on, can listen.
func checkListen(first netip.Addr, ports int) error {
	for p := range ports {
		a := offset(first, p)
		if err := tryListen(netip.AddrPortFrom(a, ISCSIPort)); err != nil {
			return conflict("ip", "member IP %s: port %d's address %s is in use (%v); pick another address", first, p+1, a, err)
		}
	}
	return nil
}

// tryListen says whether something else already listens at addr.
func tryListen(addr netip.AddrPort) error {
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return op.Err
		}
		return err
	}
	return ln.Close()
}
