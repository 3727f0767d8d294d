package discovery

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/setupapi"
	"github.com/miekg/dns"
)

var goodTXT = []string{
	"serial=HK0123456789", "model=PS-Lab", "firmware=lab-1.0", "state=uninitialized",
	"macs=02:00:00:00:00:01,06:aa:bb:cc:dd:ee", "setup=https://198.18.0.1:8444", "fingerprint=ab:cd",
}

func TestParseSetupTXT(t *testing.T) {
	a, err := ParseSetupTXT(goodTXT)
	if err != nil {
		t.Fatal(err)
	}
	want := Array{Serial: "HK0123456789", Model: "PS-Lab", Firmware: "lab-1.0", State: "uninitialized",
		MACs: []string{"02:00:00:00:00:01", "06:aa:bb:cc:dd:ee"}, SetupEndpoint: "https://198.18.0.1:8444", Fingerprint: "ab:cd"}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("ParseSetupTXT = %+v, want %+v", a, want)
	}

	// Keys are case-insensitive, the first of a repeated key counts,
	// unknown keys and boolean attributes are ignored, and macs,
	// setup and fingerprint may be absent.
	a, err = ParseSetupTXT([]string{"txtvers=1", "flag", "=x", "SERIAL=HK1", "serial=HK2", "Model=M", "firmware=F", "state=uninitialized"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Serial != "HK1" || a.Model != "M" || a.MACs != nil || a.SetupEndpoint != "" {
		t.Fatalf("ParseSetupTXT = %+v", a)
	}

	for name, txt := range map[string][]string{
		"empty":        nil,
		"no serial":    goodTXT[1:],
		"blank serial": append([]string{"serial= "}, goodTXT[1:]...),
		"dotted":       append([]string{"serial=a.b"}, goodTXT[1:]...),
		"no state":     {goodTXT[0], goodTXT[1], goodTXT[2]},
		"bad mac":      append([]string{"macs=02:00:00:00:00"}, goodTXT...),
		"mac list":     append([]string{"macs=02:00:00:00:00:01,"}, goodTXT...),
		"control":      append([]string{"model=PS\x1b[2J"}, goodTXT...),
		"not utf8":     append([]string{"firmware=\xff\xfe"}, goodTXT...),
		"long":         append([]string{"setup=" + strings.Repeat("x", 300)}, goodTXT...),
	} {
		if a, err := ParseSetupTXT(txt); err == nil {
			t.Errorf("%s: ParseSetupTXT(%q) = %+v, want an error", name, txt, a)
		}
	}
}

// announcement is a DNS-SD answer for one instance, as a responder sends
// it: PTR, SRV, TXT and A.
func announcement(t testing.TB, serial string, ip string, txt []string) *dns.Msg {
	t.Helper()
	svc := setupapi.MDNSService + "." + mdnsDomain
	inst := serial + "." + svc
	host := serial + ".local."
	hdr := func(name string, typ uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 120}
	}
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr(svc, dns.TypePTR), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Target: host, Port: 8444},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: txt},
		&dns.A{Hdr: hdr(host, dns.TypeA), A: net.ParseIP(ip)},
	}
	return m
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withSerial(serial string) []string {
	return append([]string{"serial=" + serial}, goodTXT[1:]...)
}

func TestMDNSAnswers(t *testing.T) {
	src := netip.MustParseAddr("198.18.0.9")
	m := newMDNSAnswers()
	// A well-formed answer, and one whose records come in two packets
	// with the A record left out (the source address counts then).
	m.add(pack(t, announcement(t, "HKA", "198.18.0.1", withSerial("HKA"))), src)
	split := announcement(t, "HKB", "198.18.0.2", withSerial("HKB"))
	first, second := *split, *split
	first.Answer, second.Answer = split.Answer[:2], split.Answer[2:3]
	m.add(pack(t, &first), src)
	m.add(pack(t, &second), src)

	// Everything below is ignored.
	other := announcement(t, "HKC", "198.18.0.3", withSerial("HKC"))
	for _, rr := range other.Answer {
		rr.Header().Name = strings.Replace(rr.Header().Name, setupapi.MDNSService, "_printer._tcp", 1)
	}
	other.Answer[0].(*dns.PTR).Ptr = strings.Replace(other.Answer[0].(*dns.PTR).Ptr, setupapi.MDNSService, "_printer._tcp", 1)
	m.add(pack(t, other), src)
	query := announcement(t, "HKD", "198.18.0.4", withSerial("HKD"))
	query.Response = false
	m.add(pack(t, query), src)
	failed := announcement(t, "HKE", "198.18.0.5", withSerial("HKE"))
	failed.Rcode = dns.RcodeServerFailure
	m.add(pack(t, failed), src)
	m.add(pack(t, announcement(t, "HKF", "198.18.0.6", []string{"serial=HKF", "model=x"})), src)
	m.add(pack(t, announcement(t, "HKG", "198.18.0.7", []string{"hello", "world"})), src)
	m.add([]byte("not DNS at all"), src)
	m.add(nil, src)

	got := m.arrays()
	if len(got) != 2 || got[0].Serial != "HKA" || got[0].Address != "198.18.0.1" || got[1].Serial != "HKB" || got[1].Address != src.String() {
		t.Fatalf("arrays = %+v, want HKA at 198.18.0.1 and HKB at %s", got, src)
	}
	if got[0].Model != "PS-Lab" || got[0].State != "uninitialized" || len(got[0].MACs) != 2 {
		t.Errorf("HKA = %+v", got[0])
	}
}

// TestMDNSAnswersGarbage feeds random bytes and randomly damaged answers:
// nothing panics, and whatever comes out has a serial and an IPv4
// address.
func TestMDNSAnswersGarbage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	good := pack(t, announcement(t, "HKA", "198.18.0.1", withSerial("HKA")))
	m := newMDNSAnswers()
	for i := range 20000 {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, r.IntN(600))
			for j := range b {
				b[j] = byte(r.UintN(256))
			}
		} else {
			b = append([]byte(nil), good...)
			for range 1 + r.IntN(8) {
				b[r.IntN(len(b))] = byte(r.UintN(256))
			}
			b = b[:r.IntN(len(b)+1)]
		}
		m.add(b, netip.MustParseAddr("198.18.0.9"))
	}
	for _, a := range m.arrays() {
		if a.Serial == "" || !netip.MustParseAddr(a.Address).Is4() {
			t.Errorf("garbage made %+v", a)
		}
	}
}

func TestMergeArrays(t *testing.T) {
	mdns := []Array{
		{Serial: "HK2", Model: "PS-Lab", Firmware: "lab-1.0", State: "uninitialized", Address: "198.18.0.1", Fingerprint: "ab", Via: []string{"mdns"}},
		{Serial: "HK3", Model: "PS-Lab", Address: "198.18.0.3", Via: []string{"mdns"}},
	}
	probe := []Array{
		{Serial: "HK2", Model: "other", Firmware: "lab-1.0", State: "uninitialized", Address: "127.0.10.21", MACs: []string{"02:00:00:00:00:01"}, SetupEndpoint: "https://127.0.10.21:8444", Via: []string{"probe"}},
		{Serial: "HK1", Model: "PS-Lab", Address: "127.0.10.31", Via: []string{"probe"}},
		{Serial: "HK3", Firmware: "fw", Address: "198.18.0.2", Via: []string{"probe"}},
	}
	got := MergeArrays(mdns, probe)
	want := []Array{
		{Serial: "HK2", Model: "PS-Lab", Firmware: "lab-1.0", State: "uninitialized", Address: "127.0.10.21", Fingerprint: "ab",
			MACs: []string{"02:00:00:00:00:01"}, SetupEndpoint: "https://127.0.10.21:8444", Via: []string{"mdns", "probe"}},
		{Serial: "HK1", Model: "PS-Lab", Address: "127.0.10.31", Via: []string{"probe"}},
		{Serial: "HK3", Model: "PS-Lab", Firmware: "fw", Address: "198.18.0.2", Via: []string{"mdns", "probe"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("MergeArrays =\n%+v\nwant\n%+v", got, want)
	}
	// The inputs are not changed.
	if mdns[0].Address != "198.18.0.1" || len(mdns[0].Via) != 1 {
		t.Errorf("MergeArrays changed its input: %+v", mdns[0])
	}
	if got := MergeArrays(); len(got) != 0 {
		t.Errorf("MergeArrays() = %+v", got)
	}
}

func TestFindUninitializedRefuses(t *testing.T) {
	for _, q := range []UninitQuery{
		{Probe: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, Timeout: 1, NoMDNS: true},
		{Probe: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Timeout: 0, NoMDNS: true},
	} {
		if got, err := FindUninitialized(t.Context(), q); err == nil {
			t.Errorf("FindUninitialized(%+v) = %+v, want an error", q, got)
		}
	}
}

// FuzzMDNSAnswer: no packet makes the querier panic, and whatever it
// accepts has a serial and an IPv4 address.
func FuzzMDNSAnswer(f *testing.F) {
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(announcement(f, "HKA", "198.18.0.1", withSerial("HKA")))
	seed(announcement(f, "HKB", "198.18.0.2", []string{"serial=HKB"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newMDNSAnswers()
		m.add(b, netip.MustParseAddr("198.18.0.9"))
		for _, a := range m.arrays() {
			if a.Serial == "" || !netip.MustParseAddr(a.Address).Is4() {
				t.Errorf("accepted %+v", a)
			}
			if _, err := ParseSetupTXT([]string{"serial=" + a.Serial, "model=" + a.Model, "firmware=" + a.Firmware, "state=" + a.State}); err != nil {
				t.Errorf("accepted %+v, whose fields do not parse again: %v", a, err)
			}
		}
	})
}
