package responder_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/array/responder"
	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/setupapi"
)

func startGroup(t *testing.T) (*array.Group, netip.Addr) {
	t.Helper()
	return startGroupWith(t, responder.New())
}

// startGroupWith starts a lab group of one member and one uninitialised
// member, with r as its only service, on a base of its own (labtest).
func startGroupWith(t *testing.T, r *responder.Responder) (*array.Group, netip.Addr) {
	t.Helper()
	l := labtest.Start(t, labtest.Options{Spec: respondingSpec(), Services: []array.Service{r}})
	return l.Group, l.Base
}

// respondingSpec is a group of one member and one uninitialised member,
// which the responder answers for.
func respondingSpec() array.Spec {
	return array.Spec{Members: 1, Uninitialized: 1, Volumes: []array.VolumeSpec{{Name: "vol1", Size: 8 << 20}}}
}

func uninitialized(t *testing.T, g *array.Group) array.MemberStatus {
	t.Helper()
	var found []array.MemberStatus
	for _, m := range g.Status().Members {
		if m.State == array.MemberUninitialized {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d uninitialised members, want 1", len(found))
	}
	return found[0]
}

func TestProbe(t *testing.T) {
	g, base := startGroup(t)
	m := uninitialized(t, g)
	targets, err := discovery.ParseProbeRange(netip.PrefixFrom(base, 24).String())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := discovery.ProbeUninitialized(context.Background(), targets, setupapi.ProbePort, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("probe took %v", time.Since(start))
	}
	addr, _ := responder.Addr(base, m.Number)
	if len(got) != 1 {
		t.Fatalf("probe found %+v, want only %s", got, m.Serial)
	}
	a := got[0]
	if a.Serial != m.Serial || a.Model != responder.Model || a.Firmware != responder.Firmware || a.State != "uninitialized" || a.Address != addr.Addr().String() {
		t.Errorf("answer %+v, member %+v at %s", a, m, addr)
	}
	if len(a.MACs) == 0 || !strings.HasPrefix(a.SetupEndpoint, "https://"+addr.Addr().String()+":") {
		t.Errorf("answer %+v: no MACs or a wrong setup endpoint", a)
	}
	for _, mac := range a.MACs {
		hw, err := net.ParseMAC(mac)
		if err != nil || hw[0]&0x02 == 0 || hw[0]&0x01 != 0 {
			t.Errorf("MAC %q is not a locally administered unicast address", mac)
		}
	}
	// Probing the same address twice answers once per serial.
	got, err = discovery.ProbeUninitialized(context.Background(), []netip.Addr{addr.Addr(), addr.Addr()}, setupapi.ProbePort, 500*time.Millisecond)
	if err != nil || len(got) != 1 {
		t.Fatalf("probe twice = %+v, %v", got, err)
	}
}

func TestGarbageIgnored(t *testing.T) {
	g, base := startGroup(t)
	m := uninitialized(t, g)
	addr, _ := responder.Addr(base, m.Number)
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range [][]byte{
		{}, []byte("hello"), []byte(`{"probe":"other"}`), []byte(`{"probe":1}`), []byte(`{"probe":"hitkit","x":1}`),
		[]byte(`{"probe":"hitkit"`), []byte(`{"probe":"hitkit"}` + strings.Repeat(" ", 2000)), make([]byte, 60000),
	} {
		if _, err := conn.Write(d); err != nil {
			t.Fatalf("write %d bytes: %v", len(d), err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("garbage was answered: %s", buf[:n])
	}
	// The responder still answers a real probe.
	got, err := discovery.ProbeUninitialized(context.Background(), []netip.Addr{addr.Addr()}, setupapi.ProbePort, 500*time.Millisecond)
	if err != nil || len(got) != 1 || got[0].Serial != m.Serial {
		t.Fatalf("probe after garbage = %+v, %v", got, err)
	}
}
