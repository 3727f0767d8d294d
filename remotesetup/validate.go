// Package remotesetup is the remote setup wizard: it takes an
// uninitialised array found on the host's subnets through its setup
// endpoint (setupapi) and makes it a member of a new or an existing group.
//
// It holds the wizard's questions and the checks of each answer, the two
// front ends (interactive prompts on a terminal, and answers given as
// flags or a YAML file), the setup run that follows the member's progress,
// and the host access setup done afterwards through the group's
// management API (groupapi). It never imports array.
package remotesetup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/setupapi"
)

// nameRE is the rule for member and group names (setupapi.Request).
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)

// CheckName says what is wrong with a member or group name.
func CheckName(s string) error {
	if s == "" {
		return errors.New("is empty; use 1 to 63 of a-z, 0-9, '.' and '-', starting with a letter or digit")
	}
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid name; use 1 to 63 of a-z, 0-9, '.' and '-', starting with a letter or digit", s)
	}
	return nil
}

// ParseNetwork reads Info.Network.
func ParseNetwork(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("the member reports network %q, which is not an IPv4 CIDR", s)
	}
	return p.Masked(), nil
}

// ParseMemberIP reads the member's address as A/PREFIX. When network is
// valid (the member's Info.Network), the address must be on it and the
// prefix must not be wider than it.
func ParseMemberIP(s string, network netip.Prefix) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			return netip.Prefix{}, fmt.Errorf("%q has no prefix length; write ADDRESS/PREFIX, such as %s/24", s, s)
		}
		return netip.Prefix{}, fmt.Errorf("%q is not ADDRESS/PREFIX, such as 127.0.10.31/24", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: the member takes an IPv4 address", s)
	}
	if p.Bits() > 30 || p.Bits() < 8 {
		return netip.Prefix{}, fmt.Errorf("%q: the prefix length must be 8 to 30", s)
	}
	if a := p.Addr(); a == p.Masked().Addr() || a == lastAddr(p) {
		return netip.Prefix{}, fmt.Errorf("%q is the subnet's network or broadcast address", s)
	}
	if network.IsValid() {
		if !network.Contains(p.Addr()) {
			return netip.Prefix{}, fmt.Errorf("%s is not on the member's network %s", p.Addr(), network)
		}
		if p.Bits() != network.Bits() {
			return netip.Prefix{}, fmt.Errorf("%q: the member's network is %s; give the address with its prefix, /%d", s, network, network.Bits())
		}
	}
	return p, nil
}

// ParseGateway reads the default gateway, which must be in ip's subnet
// and not the member's own address.
func ParseGateway(s string, ip netip.Prefix) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err != nil {
		return a, err
	}
	if err := inSubnet(a, ip); err != nil {
		return netip.Addr{}, err
	}
	return a, nil
}

// ParseGroupIP reads the group IP, which must be in ip's subnet and be
// neither the member's address nor the gateway.
func ParseGroupIP(s string, ip netip.Prefix, gateway netip.Addr) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err != nil {
		return a, err
	}
	if err := inSubnet(a, ip); err != nil {
		return netip.Addr{}, err
	}
	if a == gateway {
		return netip.Addr{}, fmt.Errorf("%s is the gateway; the group IP needs an address of its own", a)
	}
	return a, nil
}

func parseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		if strings.Contains(s, ":") && !strings.Contains(s, "::") {
			return netip.Addr{}, fmt.Errorf("%q: give an address without a port", s)
		}
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

func inSubnet(a netip.Addr, ip netip.Prefix) error {
	if !ip.IsValid() {
		return nil
	}
	subnet := ip.Masked()
	switch {
	case !subnet.Contains(a):
		return fmt.Errorf("%s is not in the member's subnet %s", a, subnet)
	case a == subnet.Addr() || a == lastAddr(subnet):
		return fmt.Errorf("%s is the subnet's network or broadcast address", a)
	case a == ip.Addr():
		return fmt.Errorf("%s is the member's own address", a)
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// CheckPassword applies the member's password rule
// (setupapi.CheckPassword) to a password as typed or read from a file.
func CheckPassword(p []byte) error { return setupapi.CheckPassword(string(p)) }

// CheckRAID says what is wrong with a RAID policy.
func CheckRAID(s string) error {
	if !slices.Contains(setupapi.RAIDPolicies, s) {
		return fmt.Errorf("%q is not a RAID policy; use one of %s", s, strings.Join(setupapi.RAIDPolicies, ", "))
	}
	return nil
}

// ProbeTimeout bounds each TCP connection attempt of CheckGroupIP.
const ProbeTimeout = 1500 * time.Millisecond

// groupPorts are what a group answers on at its IP: iSCSI and the
// management API.
var groupPorts = []int{3260, groupapi.DefaultPort}

// answering lists which of the group ports accept a TCP connection at a.
func answering(ctx context.Context, a netip.Addr) []string {
	var d net.Dialer
	var out []string
	for _, p := range groupPorts {
		addr := net.JoinHostPort(a.String(), strconv.Itoa(p))
		cctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
		conn, err := d.DialContext(cctx, "tcp", addr)
		cancel()
		if err == nil {
			conn.Close()
			out = append(out, addr)
		}
	}
	return out
}

// CheckGroupIP checks the group IP against what answers there: for a new
// group nothing may answer on its iSCSI or management port, and for a
// join a group must.
func CheckGroupIP(ctx context.Context, a netip.Addr, mode string) error {
	found := answering(ctx, a)
	switch mode {
	case setupapi.ModeCreate:
		if len(found) > 0 {
			return fmt.Errorf("%s is in use: something answers on %s; pick a free address for the new group, or join the group there", a, strings.Join(found, " and "))
		}
	case setupapi.ModeJoin:
		if len(found) == 0 {
			return fmt.Errorf("no group answers at %s (nothing on ports 3260 or %d); check the group IP, or create a new group", a, groupapi.DefaultPort)
		}
	default:
		return fmt.Errorf("mode %q is neither %s nor %s", mode, setupapi.ModeCreate, setupapi.ModeJoin)
	}
	return nil
}

// ParseSize reads a volume size such as 10GiB, 512m or 1t (powers of 1024).
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("kmgt", t[len(t)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > groupapi.MaxVolumeSize/mult {
		return 0, fmt.Errorf("%q is not a size like 512MiB, 10GiB or 1TiB (at most 64 TiB)", s)
	}
	return n * mult, nil
}
