package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hitkit/hitkit/setupapi"
)

// MaxProbeTargets caps how many addresses one range may hold.
const MaxProbeTargets = 4096

// probeDatagram is what ProbeUninitialized sends.
var probeDatagram, _ = json.Marshal(setupapi.Probe{Probe: setupapi.ProbeMagic})

// maxAnswer bounds an answer datagram; larger ones are ignored.
const maxAnswer = 8192

// Array is an uninitialised array that answered a probe.
type Array struct {
	Serial        string   `json:"serial"`
	Model         string   `json:"model"`
	Firmware      string   `json:"firmware"`
	Address       string   `json:"address"`
	State         string   `json:"state"`
	MACs          []string `json:"macs,omitempty"`
	SetupEndpoint string   `json:"setup_endpoint,omitempty"`
	Fingerprint   string   `json:"fingerprint,omitempty"`
	// Via says how it was found: "mdns", "probe" or both.
	Via []string `json:"via,omitempty"`
}

// ProbeRanges are the only addresses unicast probes go to: the lab
// answers on loopback, and in test namespaces on 198.18.0.0/15 (the
// benchmarking range). Nothing else is probed.
var ProbeRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("198.18.0.0/15"),
}

// Probeable says whether a may be probed.
func Probeable(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ProbeRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// UninitQuery says where FindUninitialized looks.
type UninitQuery struct {
	// Subnets select the interfaces mDNS asks on: those with an address
	// in one of them. Empty means every local IPv4 subnet.
	Subnets []netip.Prefix
	// Probe are the addresses a unicast probe goes to; each must be
	// Probeable.
	Probe []netip.Addr
	// Timeout is how long answers are awaited (both ways at once).
	Timeout time.Duration
	// NoMDNS skips mDNS.
	NoMDNS bool
}

// FindUninitialized asks mDNS on every up, multicast-capable interface
// whose IPv4 subnet q selects, and probes q.Probe, at the same time; it
// returns one Array per serial, sorted by address. An array that both
// ways found keeps the mDNS fields and fills the gaps from the probe.
//
// Every socket is created on the calling goroutine's thread, so a caller
// locked into a network namespace asks there.
func FindUninitialized(ctx context.Context, q UninitQuery) ([]Array, error) {
	if q.Timeout <= 0 {
		return nil, errors.New("discovery timeout must be positive")
	}
	for _, a := range q.Probe {
		if !Probeable(a) {
			return nil, fmt.Errorf("refusing to probe %s: probes go only to 127.0.0.0/8 and 198.18.0.0/15", a)
		}
	}
	deadline := time.Now().Add(q.Timeout)
	var queriers []*mdnsQuerier
	var errs []error
	if !q.NoMDNS {
		links, err := MDNSLinks(q.Subnets)
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			qr, err := openMDNS(l)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			queriers = append(queriers, qr)
		}
	}
	results := make(chan []Array, len(queriers))
	for _, qr := range queriers {
		go func() { results <- qr.run(ctx, deadline) }()
	}
	var probedArrays []Array
	probed := false
	if len(q.Probe) > 0 {
		as, err := ProbeUninitialized(ctx, q.Probe, setupapi.ProbePort, time.Until(deadline))
		if err != nil {
			errs = append(errs, err)
		}
		probed = err == nil
		probedArrays = via(as, "probe")
	}
	var found [][]Array
	for range queriers {
		found = append(found, via(<-results, "mdns"))
	}
	found = append(found, probedArrays)
	// An interface or a probe that failed while others asked is left
	// out; when every way failed, that is the error.
	if len(queriers) == 0 && !probed && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return MergeArrays(found...), nil
}

func via(as []Array, how string) []Array {
	for i := range as {
		as[i].Via = []string{how}
	}
	return as
}

// MergeArrays merges lists of answers into one Array per serial, sorted
// by address then serial. The first list to name a serial wins each
// field it has; later ones fill the empty fields, add to Via, and may
// lower the address (so the order of the lists does not decide it).
func MergeArrays(lists ...[]Array) []Array {
	bySerial := map[string]*Array{}
	var order []string
	for _, l := range lists {
		for _, a := range l {
			old, ok := bySerial[a.Serial]
			if !ok {
				c := a
				c.Via = slices.Clone(a.Via)
				bySerial[a.Serial] = &c
				order = append(order, a.Serial)
				continue
			}
			fillArray(old, a)
		}
	}
	out := make([]Array, 0, len(order))
	for _, s := range order {
		out = append(out, *bySerial[s])
	}
	slices.SortFunc(out, func(a, b Array) int {
		if c := addrOf(a).Compare(addrOf(b)); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
	return out
}

func fillArray(dst *Array, src Array) {
	for _, f := range []struct {
		d *string
		s string
	}{
		{&dst.Model, src.Model}, {&dst.Firmware, src.Firmware}, {&dst.State, src.State},
		{&dst.SetupEndpoint, src.SetupEndpoint}, {&dst.Fingerprint, src.Fingerprint},
	} {
		if *f.d == "" {
			*f.d = f.s
		}
	}
	if len(dst.MACs) == 0 {
		dst.MACs = src.MACs
	}
	if a := addrOf(src); a.IsValid() && (!addrOf(*dst).IsValid() || a.Less(addrOf(*dst))) {
		dst.Address = src.Address
	}
	for _, v := range src.Via {
		if !slices.Contains(dst.Via, v) {
			dst.Via = append(dst.Via, v)
		}
	}
	slices.Sort(dst.Via)
}

// addrOf is a's address, or the zero Addr (which sorts first) when it
// does not parse.
func addrOf(a Array) netip.Addr {
	ip, _ := netip.ParseAddr(a.Address)
	return ip
}

// MDNSLinks are the interfaces mDNS asks on: up, multicast-capable, not
// loopback, with an IPv4 address in one of subnets (any, when subnets is
// empty). An interface with several selected addresses asks once, from
// the first.
func MDNSLinks(subnets []netip.Prefix) ([]MDNSLink, error) {
	nics, err := Interfaces()
	if err != nil {
		return nil, err
	}
	var out []MDNSLink
	for _, n := range nics {
		if !n.Up || n.Loopback {
			continue
		}
		ifi, err := net.InterfaceByIndex(n.Index)
		if err != nil || ifi.Flags&net.FlagMulticast == 0 {
			continue
		}
		for _, p := range n.Addrs {
			if inSubnets(p, subnets) {
				out = append(out, MDNSLink{Name: n.Name, Index: n.Index, Addr: p.Addr(), Subnet: p.Masked()})
				break
			}
		}
	}
	return out, nil
}

func inSubnets(p netip.Prefix, subnets []netip.Prefix) bool {
	if len(subnets) == 0 {
		return true
	}
	for _, s := range subnets {
		if s.Overlaps(p.Masked()) {
			return true
		}
	}
	return false
}

// ProbeUninitialized sends one probe datagram to port on each target and
// collects the answers that arrive within timeout (or until ctx ends),
// one per serial, sorted by address. Datagrams that are not answers are
// ignored. Only IPv4 targets are probed.
func ProbeUninitialized(ctx context.Context, targets []netip.Addr, port int, timeout time.Duration) ([]Array, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("probe port %d out of range", port)
	}
	if timeout <= 0 {
		return nil, errors.New("probe timeout must be positive")
	}
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	type result struct {
		a   Array
		src netip.Addr
	}
	found := map[string]result{}
	recv := func() {
		buf := make([]byte, maxAnswer+1)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if n > maxAnswer {
				continue
			}
			var a Array
			if json.Unmarshal(buf[:n], &a) != nil || strings.TrimSpace(a.Serial) == "" {
				continue
			}
			a.Via = nil
			src := from.Addr().Unmap()
			a.Address = src.String()
			if old, ok := found[a.Serial]; !ok || src.Less(old.src) {
				found[a.Serial] = result{a, src}
			}
		}
	}
	done := make(chan struct{})
	go func() { recv(); close(done) }()
	var sendErr error
	sent := 0
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		t = t.Unmap()
		if !t.Is4() {
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(probeDatagram, netip.AddrPortFrom(t, uint16(port))); err != nil {
			if sendErr == nil {
				sendErr = fmt.Errorf("probe %s: %w", t, err)
			}
			continue
		}
		sent++
	}
	<-done
	if sent == 0 && sendErr != nil {
		return nil, sendErr
	}
	out := make([]Array, 0, len(found))
	for _, r := range found {
		out = append(out, r.a)
	}
	slices.SortFunc(out, func(a, b Array) int {
		if c := netip.MustParseAddr(a.Address).Compare(netip.MustParseAddr(b.Address)); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
	return out, nil
}

// ParseProbeRange parses a single IPv4 address, a CIDR prefix
// ("127.0.10.0/24") or an inclusive range ("127.0.10.31-127.0.10.40") into
// the addresses to probe. A prefix shorter than /31 leaves out its network
// and broadcast addresses. A range may hold at most MaxProbeTargets
// addresses.
func ParseProbeRange(s string) ([]netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty probe range")
	}
	var first, last netip.Addr
	switch {
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("probe range %q: %w", s, err)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("probe range %q: only IPv4 is probed", s)
		}
		p = p.Masked()
		if p.Bits() < 32-12 {
			return nil, fmt.Errorf("probe range %q holds more than %d addresses", s, MaxProbeTargets)
		}
		first = p.Addr()
		last = lastOf(p)
		if p.Bits() < 31 {
			first, last = first.Next(), last.Prev()
		}
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		var err error
		if first, err = netip.ParseAddr(strings.TrimSpace(a)); err != nil {
			return nil, fmt.Errorf("probe range %q: %w", s, err)
		}
		if last, err = netip.ParseAddr(strings.TrimSpace(b)); err != nil {
			return nil, fmt.Errorf("probe range %q: %w", s, err)
		}
		if !first.Is4() || !last.Is4() {
			return nil, fmt.Errorf("probe range %q: only IPv4 is probed", s)
		}
		if last.Less(first) {
			return nil, fmt.Errorf("probe range %q ends before it starts", s)
		}
		if span(first, last) > MaxProbeTargets {
			return nil, fmt.Errorf("probe range %q holds more than %d addresses", s, MaxProbeTargets)
		}
	default:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("probe target %q is not an IPv4 address, prefix or range: %w", s, err)
		}
		if !a.Unmap().Is4() {
			return nil, fmt.Errorf("probe target %q: only IPv4 is probed", s)
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	out := make([]netip.Addr, 0, span(first, last))
	for a := first; ; a = a.Next() {
		out = append(out, a)
		if a == last {
			break
		}
	}
	return out, nil
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func span(a, b netip.Addr) int { return int(u32(b)-u32(a)) + 1 }

func lastOf(p netip.Prefix) netip.Addr {
	v := u32(p.Addr()) | (uint32(1)<<(32-p.Bits()) - 1)
	if p.Bits() == 0 {
		v = ^uint32(0)
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
