package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hitkit/hitkit/setupapi"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// mdnsDomain is the mDNS domain, and mdnsGroup:mdnsPort where queries go.
const mdnsDomain = "local."

var mdnsGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{224, 0, 0, 251}), 5353)

// mdnsResend is when a query is sent again while answers may still come:
// mDNS runs over plain UDP multicast, and a lost query is lost.
var mdnsResend = []time.Duration{0, time.Second, 3 * time.Second}

// ParseSetupTXT reads an announcement's TXT strings. Keys are
// case-insensitive and only the first of a repeated key counts (RFC 6763
// section 6.4); unknown keys are ignored. A missing required key, a value
// that is not printable text, or a malformed MAC address is an error: the
// caller ignores such an answer.
func ParseSetupTXT(txt []string) (Array, error) {
	kv := map[string]string{}
	for _, s := range txt {
		k, v, ok := strings.Cut(s, "=")
		k = strings.ToLower(k)
		if !ok || k == "" {
			continue // a boolean attribute, or nothing: not ours
		}
		if _, dup := kv[k]; dup {
			continue
		}
		if len(v) > setupapi.MaxTXTValue || !printable(v) {
			return Array{}, fmt.Errorf("TXT key %q: the value is not printable text of at most %d bytes", k, setupapi.MaxTXTValue)
		}
		kv[k] = v
	}
	a := Array{
		Serial: kv[setupapi.TXTSerial], Model: kv[setupapi.TXTModel], Firmware: kv[setupapi.TXTFirmware], State: kv[setupapi.TXTState],
		SetupEndpoint: kv[setupapi.TXTSetup], Fingerprint: kv[setupapi.TXTFingerprint],
	}
	for _, req := range []struct{ key, v string }{{setupapi.TXTSerial, a.Serial}, {setupapi.TXTModel, a.Model}, {setupapi.TXTFirmware, a.Firmware}, {setupapi.TXTState, a.State}} {
		if strings.TrimSpace(req.v) == "" {
			return Array{}, fmt.Errorf("TXT has no %q", req.key)
		}
	}
	if strings.ContainsAny(a.Serial, " \t.") {
		return Array{}, fmt.Errorf("TXT serial %q holds a space or a dot", a.Serial)
	}
	if m := kv[setupapi.TXTMACs]; m != "" {
		for _, s := range strings.Split(m, ",") {
			hw, err := net.ParseMAC(s)
			if err != nil || len(hw) != 6 {
				return Array{}, fmt.Errorf("TXT macs: %q is not a MAC address", s)
			}
			a.MACs = append(a.MACs, hw.String())
		}
	}
	return a, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// MDNSLink is one interface an mDNS query goes out on, from Addr.
type MDNSLink struct {
	Name  string     `json:"name"`
	Index int        `json:"index"`
	Addr  netip.Addr `json:"addr"`
	// Subnet is Addr's subnet, the one a --subnet selected.
	Subnet netip.Prefix `json:"subnet"`
}

// mdnsQuerier asks on one interface. Its socket is bound to the
// interface's address and (when the process may) to the interface
// itself, and its multicast goes out on that interface only. It is a
// "one-shot" querier (RFC 6762 section 5.1): its source port is not 5353,
// so responders answer it by unicast, and it needs no group membership.
type mdnsQuerier struct {
	link MDNSLink
	conn *net.UDPConn
}

// openMDNS creates the socket on the calling thread (so a caller in a
// network namespace gets a socket there).
func openMDNS(l MDNSLink) (*mdnsQuerier, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// Binding to the device keeps answers that reach this host
			// through another interface out; it needs CAP_NET_RAW, and
			// the bound address does most of the same without it.
			_ = unix.BindToDevice(int(fd), l.Name)
			serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(l.Index)})
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(l.Addr, 0).String())
	if err != nil {
		return nil, fmt.Errorf("mDNS on %s: %w", l.Name, err)
	}
	return &mdnsQuerier{link: l, conn: pc.(*net.UDPConn)}, nil
}

// mdnsQuestion is the DNS-SD browse query: PTR records of the service.
func mdnsQuestion() ([]byte, error) {
	m := new(dns.Msg)
	m.SetQuestion(setupapi.MDNSService+"."+mdnsDomain, dns.TypePTR)
	m.Id = 0 // RFC 6762 section 18.1
	m.RecursionDesired = false
	return m.Pack()
}

// run sends the query (again at mdnsResend) and collects the arrays
// announced until deadline or ctx's end. Packets that are not well-formed
// answers for the service are ignored.
func (q *mdnsQuerier) run(ctx context.Context, deadline time.Time) []Array {
	defer q.conn.Close()
	query, err := mdnsQuestion()
	if err != nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { q.conn.SetReadDeadline(time.Now()) })
	defer stop()
	start := time.Now()
	next := 0
	answers := newMDNSAnswers()
	buf := make([]byte, 9000)
	for ctx.Err() == nil {
		if next < len(mdnsResend) && !time.Now().Before(start.Add(mdnsResend[next])) {
			q.conn.WriteToUDPAddrPort(query, mdnsGroup)
			next++
		}
		wake := deadline
		if next < len(mdnsResend) && start.Add(mdnsResend[next]).Before(wake) {
			wake = start.Add(mdnsResend[next])
		}
		if !time.Now().Before(deadline) {
			break
		}
		q.conn.SetReadDeadline(wake)
		if ctx.Err() != nil {
			break // ctx ended after the check above; its deadline was overwritten
		}
		n, from, err := q.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			break
		}
		answers.add(buf[:n], from.Addr().Unmap())
	}
	return answers.arrays()
}

// mdnsAnswers gathers the records of the answers on one interface. The
// records of one instance may come in several packets.
type mdnsAnswers struct {
	instances map[string]bool       // instance names under the service
	srv       map[string]*dns.SRV   // by instance
	txt       map[string][]string   // by instance
	a         map[string]netip.Addr // by host name
	from      map[string]netip.Addr // the source of an instance's TXT
	order     []string
}

func newMDNSAnswers() *mdnsAnswers {
	return &mdnsAnswers{
		instances: map[string]bool{}, srv: map[string]*dns.SRV{}, txt: map[string][]string{},
		a: map[string]netip.Addr{}, from: map[string]netip.Addr{},
	}
}

// add reads one packet; anything but a well-formed DNS response is
// dropped, and so are records of other services.
func (m *mdnsAnswers) add(pkt []byte, from netip.Addr) {
	var msg dns.Msg
	if msg.Unpack(pkt) != nil || !msg.Response || msg.Rcode != dns.RcodeSuccess || msg.Opcode != dns.OpcodeQuery {
		return
	}
	suffix := "." + strings.ToLower(setupapi.MDNSService+"."+mdnsDomain)
	for _, rr := range append(msg.Answer, msg.Extra...) {
		name := strings.ToLower(rr.Header().Name)
		switch r := rr.(type) {
		case *dns.PTR:
			if name == suffix[1:] && strings.HasSuffix(strings.ToLower(r.Ptr), suffix) {
				m.note(strings.ToLower(r.Ptr))
			}
		case *dns.SRV:
			if strings.HasSuffix(name, suffix) {
				m.note(name)
				m.srv[name] = r
			}
		case *dns.TXT:
			if strings.HasSuffix(name, suffix) {
				m.note(name)
				m.txt[name] = r.Txt
				m.from[name] = from
			}
		case *dns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok {
				m.a[name] = a
			}
		}
	}
}

func (m *mdnsAnswers) note(instance string) {
	if !m.instances[instance] {
		m.instances[instance] = true
		m.order = append(m.order, instance)
	}
}

// arrays are the instances whose TXT parses. The address is the A record
// of the SRV target, else the source of the TXT record.
func (m *mdnsAnswers) arrays() []Array {
	var out []Array
	for _, inst := range m.order {
		txt, ok := m.txt[inst]
		if !ok {
			continue
		}
		a, err := ParseSetupTXT(txt)
		if err != nil {
			continue
		}
		addr := m.from[inst]
		if srv := m.srv[inst]; srv != nil {
			if ip, ok := m.a[strings.ToLower(srv.Target)]; ok {
				addr = ip
			}
		}
		if !addr.Is4() {
			continue
		}
		a.Address = addr.String()
		out = append(out, a)
	}
	return out
}
