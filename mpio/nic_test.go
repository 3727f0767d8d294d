package mpio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/disk"
	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/initiator"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netns"
)

// twoSwitches is the network of the namespace test. The host side is the
// test process's own namespace, with two veth NICs; each goes through its
// own bridge (a "switch", in a switch namespace) to one port of the array
// (in an array namespace). Every address is in 198.18.0.0/15.
type twoSwitches struct {
	sw, arr  string    // namespace names
	host     [2]string // host NICs
	hostPort [2]string // their peers, the switch ports facing the host
	bridge   [2]string
	hostIP   [2]string
	arrayIP  [2]string
}

// ip runs one ip(8) command, failing the test on error.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newTwoSwitches(t *testing.T) *twoSwitches {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces, veth pairs and bridges")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2")
	}
	id := make([]byte, 3)
	rand.Read(id)
	pfx := "hk" + hex.EncodeToString(id)
	n := &twoSwitches{sw: pfx + "-sw", arr: pfx + "-arr"}
	if out, err := exec.Command("ip", "netns", "add", n.sw).CombinedOutput(); err != nil {
		t.Skipf("no network namespace support: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.sw).Run() })
	ip(t, "netns", "add", n.arr)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.arr).Run() })
	// Random /24s, so that two runs at once do not share a route.
	third := 1 + 2*mrand.IntN(100)
	for i := range 2 {
		n.wire(t, pfx, i, third+i)
	}
	return n
}

// wire builds switch i: host NIC ↔ bridge ↔ array port, on 198.18.net.0/24.
func (n *twoSwitches) wire(t *testing.T, pfx string, i, net int) {
	t.Helper()
	k := fmt.Sprint(i + 1)
	n.host[i], n.hostPort[i], n.bridge[i] = pfx+"-h"+k, "sh"+k, "br"+k
	n.hostIP[i], n.arrayIP[i] = fmt.Sprintf("198.18.%d.2", net), fmt.Sprintf("198.18.%d.1", net)
	arrPort, arrNIC := "sa"+k, "a"+k
	ip(t, "link", "add", n.host[i], "type", "veth", "peer", "name", n.hostPort[i], "netns", n.sw)
	t.Cleanup(func() { exec.Command("ip", "link", "del", n.host[i]).Run() })
	ip(t, "-n", n.sw, "link", "add", arrPort, "type", "veth", "peer", "name", arrNIC, "netns", n.arr)
	ip(t, "-n", n.sw, "link", "add", n.bridge[i], "type", "bridge")
	for _, port := range []string{n.hostPort[i], arrPort} {
		ip(t, "-n", n.sw, "link", "set", port, "master", n.bridge[i], "up")
	}
	ip(t, "-n", n.sw, "link", "set", n.bridge[i], "up")
	ip(t, "-n", n.arr, "addr", "add", n.arrayIP[i]+"/24", "dev", arrNIC)
	ip(t, "-n", n.arr, "link", "set", arrNIC, "up")
	ip(t, "-n", n.arr, "link", "set", "lo", "up")
	ip(t, "addr", "add", n.hostIP[i]+"/24", "dev", n.host[i])
	ip(t, "link", "set", n.host[i], "up")
}

// startArray runs hitkit's target with one 32 MiB disk and a portal on
// each array port. The listeners are created on a thread that moved into
// the array namespace; the sockets they accept stay there, whichever
// thread serves them.
func startArray(t *testing.T, n *twoSwitches) (portals [2]string, iqn string) {
	t.Helper()
	iqn = "iqn.2026-11.org.hitkit.test:netns"
	srv := target.NewServer(target.Config{Logger: logrus.NewEntry(quietLogger())})
	t.Cleanup(func() { srv.Close() })
	be, err := disk.CreateFile(filepath.Join(t.TempDir(), "vol"), 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	d, err := disk.New(be, disk.Identity{Vendor: "HITKIT", Product: "NETNS", Revision: "0001", Serial: "NETNS01"}, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg := target.NewTarget(iqn)
	tg.SetLUN(0, d)
	if err := srv.AddTarget(tg); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine instead of
		// going back to the scheduler in the array's namespace.
		runtime.LockOSThread()
		errc <- listenIn(n.arr, srv, n.arrayIP, &portals)
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return portals, iqn
}

func listenIn(ns string, srv *target.Server, addrs [2]string, portals *[2]string) error {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return err
	}
	for i, a := range addrs {
		p, err := srv.AddPortal(a+":3260", uint16(i+1))
		if err != nil {
			return err
		}
		portals[i] = p.Addr
	}
	return nil
}

// TestNICFailoverInNetns runs a verify workload over two NICs and two
// switches, takes switch 1 down (a silent blackhole, found by the NOP-Out
// check), brings it back, then pulls the cable of NIC 1 (a carrier loss,
// which WatchCarrier reports and FailNIC acts on at once), and brings it
// back. The application sees no error, and path 1 is reinstated each time.
func TestNICFailoverInNetns(t *testing.T) {
	n := newTwoSwitches(t)
	portals, iqn := startArray(t, n)
	checkPlan(t, n)

	paths := make([]PathSpec, 2)
	for i := range paths {
		paths[i] = PathSpec{SourceAddr: n.hostIP[i], Device: n.host[i], Portal: portals[i]}
	}
	d := openDevice(t, Config{
		Session: initiator.Config{Portal: portals[0], TargetName: iqn,
			LoginTimeout: 2 * time.Second, Log: logrus.NewEntry(quietLogger())},
		Paths:      paths,
		BackoffMax: time.Second,
		Log:        testLog(t),
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := discovery.WatchCarrier(ctx, func(nic string, up bool) {
		if !up {
			d.FailNIC(nic, "carrier lost")
		}
	}); err != nil {
		t.Fatal(err)
	}

	w := startWorkload(d)
	defer w.finish(t)
	w.progress(t, 100, 10*time.Second)

	t.Run("switch down", func(t *testing.T) {
		fault(t, w, d, "-n", n.sw, "link", "set", n.bridge[0])
	})
	t.Run("carrier loss", func(t *testing.T) {
		fault(t, w, d, "-n", n.sw, "link", "set", n.hostPort[0])
		// The NOP-Out check would have said "did not answer a ping".
		if why := pathByID(d, 1).LastFailure; !strings.Contains(why, "carrier lost") {
			t.Errorf("path 1 failed with %q, not by its NIC's carrier loss", why)
		}
	})
}

// fault takes the link that link names down during I/O, checks that I/O
// goes on and path 1 fails, brings the link back and waits for path 1 to
// be reinstated and carry I/O again. It logs the stall: the slowest
// write+read round while the link was down.
func fault(t *testing.T, w *workload, d *Device, link ...string) {
	w.resetSlowest()
	down := time.Now()
	ip(t, append(link, "down")...)
	failedIn := waitFor(t, 5*time.Second, "path 1 failed", func() bool { return pathByID(d, 1).State != StateActive })
	w.progress(t, 200, 10*time.Second)
	stall := w.stall()
	ip(t, append(link, "up")...)
	back := waitFor(t, 15*time.Second, "path 1 reinstated", func() bool { return allActive(d) })
	done := pathByID(d, 1).Completed
	w.progress(t, 200, 10*time.Second)
	if pathByID(d, 1).Completed == done {
		t.Errorf("path 1 carries no I/O after its reinstatement: %s", describe(d))
	}
	t.Logf("path 1 failed %v after the link went down; stall (slowest round) %v; reinstated %v after the link came back (down for %v)",
		failedIn.Round(time.Millisecond), stall.Round(time.Millisecond), back.Round(time.Millisecond), time.Since(down).Round(time.Millisecond))
}

// checkPlan asks discovery for the paths to each portal, through the real
// routing table: each portal is reached by the NIC on its subnet alone.
func checkPlan(t *testing.T, n *twoSwitches) {
	t.Helper()
	for i := range 2 {
		got, err := discovery.Plan(discovery.PlanRequest{
			Portal: netip.MustParseAddr(n.arrayIP[i]), NICs: n.host[:],
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []discovery.Path{{NIC: n.host[i], Source: netip.MustParseAddr(n.hostIP[i])}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("plan to %s: %v, want %v", n.arrayIP[i], got, want)
		}
	}
	_, err := discovery.Plan(discovery.PlanRequest{Portal: netip.MustParseAddr(n.arrayIP[0]), NICs: n.host[1:]})
	if want := "has no route to " + n.arrayIP[0]; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("plan to %s through %s only: error %v, want one saying %q", n.arrayIP[0], n.host[1], err, want)
	}
}
