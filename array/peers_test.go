package array

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/internal/peer"
	"github.com/hitkit/hitkit/internal/testlog"
)

// labURL is a libiscsi URL for a volume through addr, with its CHAP
// credentials (test secrets only ever reach argv here).
func labURL(t *testing.T, g *Group, volume, addr string) string {
	t.Helper()
	v, err := g.volume(volume)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := readSecret(CHAPSecretFile(g.Dir(), volume))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("iscsi://%s%%%s@%s/%s/0", v.cfg.CHAPUser, secret, addr, v.cfg.IQN)
}

// runPeer runs a libiscsi tool with a time limit.
func runPeer(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := peer.LibiscsiCommand(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// luDesignators keeps the logical-unit designators of iscsi-inq's VPD
// page 0x83 output: the target-port ones differ by port, as they should.
func luDesignators(out string) string {
	var keep []string
	for _, block := range strings.Split(out, "DEVICE DESIGNATOR") {
		if strings.Contains(block, "LOGICAL_UNIT") {
			keep = append(keep, strings.TrimSpace(block[strings.Index(block, "\n")+1:]))
		}
	}
	return strings.Join(keep, "\n")
}

// TestLabWithLibiscsi drives a group with libiscsi's tools: discovery at
// the group IP, a redirected login, identity on every port, I/O that
// crosses members, sessions per port, CHAP refusal, port faults, and a
// slice of the conformance suite.
func TestLabWithLibiscsi(t *testing.T) {
	peer.Require(t, "iscsi-ls", "iscsi-inq", "iscsi-perf", "iscsi-test-cu")
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "vol1", Size: 64 << 20}}, ForwardLatency: 100 * time.Microsecond})
	base := g.Config().BaseIP
	iqn := VolumeIQN(DefaultGroupName, "vol1")

	t.Run("conformance", func(t *testing.T) {
		// First, on a fresh volume: MultipathIO.CompareAndWrite expects
		// zeroes past the range it initialises.
		r, err := peer.IscsiTestCU(t, "SCSI.MultipathIO", labURL(t, g, "vol1", PortAddr(base, 1, 1)), labURL(t, g, "vol1", PortAddr(base, 2, 2)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 || r.Passed == 0 {
			t.Fatalf("SCSI.MultipathIO over two members: %d passed, %d failed: %v\n%s", r.Passed, r.Failed, r.FailedTests, testlog.Tail(r.Output, 3000))
		}
		r, err = peer.IscsiTestCU(t, "SCSI.Read10,SCSI.Write16,SCSI.Unmap", labURL(t, g, "vol1", PortAddr(base, 2, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 || r.Passed == 0 {
			t.Fatalf("conformance: %d passed, %d failed: %v", r.Passed, r.Failed, r.FailedTests)
		}
	})

	t.Run("discovery", func(t *testing.T) {
		out, err := runPeer(t, "iscsi-ls", "-s", strings.TrimSuffix(labURL(t, g, "vol1", g.GroupAddr()), "/"+iqn+"/0"))
		if err != nil {
			t.Fatalf("iscsi-ls: %v\n%s", err, out)
		}
		want := fmt.Sprintf("Target:%s Portal:%s,1", iqn, g.GroupAddr())
		if !strings.Contains(out, want) || !strings.Contains(out, "Lun:0") {
			t.Fatalf("iscsi-ls -s output lacks %q and its LUN:\n%s", want, out)
		}
	})

	t.Run("redirect and identity", func(t *testing.T) {
		viaGroup, err := runPeer(t, "iscsi-inq", "-e", "1", "-c", "131", labURL(t, g, "vol1", g.GroupAddr()))
		if err != nil {
			t.Fatalf("iscsi-inq via the group IP: %v\n%s", err, viaGroup)
		}
		viaPort, err := runPeer(t, "iscsi-inq", "-e", "1", "-c", "131", labURL(t, g, "vol1", PortAddr(base, 2, 2)))
		if err != nil {
			t.Fatalf("iscsi-inq via a member port: %v\n%s", err, viaPort)
		}
		a, b := luDesignators(viaGroup), luDesignators(viaPort)
		if a == "" || a != b {
			t.Fatalf("VPD 0x83 differs between the group IP and a member port:\n%s\n---\n%s", a, b)
		}
		// The port designator shows where the redirected session landed:
		// a member port, never the group IP (TPGT 1).
		if m := regexp.MustCompile(`,t,0x([0-9a-f]+)\]`).FindStringSubmatch(viaGroup); m == nil || m[1] == "0001" {
			t.Fatalf("the login at the group IP was not redirected to a member port:\n%s", viaGroup)
		}
	})

	t.Run("io across members and sessions per port", func(t *testing.T) {
		before := g.Status()
		done := make(chan error, 1)
		go func() {
			_, _, err := peer.IscsiPerf(t, labURL(t, g, "vol1", g.GroupAddr()), 8, 64, true, 3*time.Second)
			done <- err
		}()
		var st Status
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			st = g.Status()
			if len(st.Sessions) > 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(st.Sessions) != 1 || st.Sessions[0].Member == 0 {
			t.Fatalf("sessions during iscsi-perf: %+v", st.Sessions)
		}
		onPort := 0
		for _, m := range st.Members {
			for _, p := range m.Ports {
				onPort += p.Sessions
				if p.Addr == st.Sessions[0].Portal && p.Sessions != 1 {
					t.Errorf("port %s counts %d sessions; want 1", p.Addr, p.Sessions)
				}
			}
		}
		if onPort != 1 || st.GroupPort.Sessions != 0 {
			t.Errorf("sessions: %d on member ports, %d at the group IP; want 1 and 0", onPort, st.GroupPort.Sessions)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		after := g.Status()
		// Random 32 KiB reads over pages held round-robin by two
		// members: about half land on the other member's pages.
		if after.Volumes[0].Forwarded <= before.Volumes[0].Forwarded {
			t.Fatal("random I/O through one member forwarded nothing")
		}
	})

	t.Run("async logout", func(t *testing.T) {
		// iscsi-perf handles the logout request: it logs out, logs in
		// again through the group IP and carries on. Here the group
		// reports the power-on unit attention to the new nexus, which
		// iscsi-perf retries without counting it in flight; it then
		// often shows in_flight -1 and never finishes (see
		// TestAsyncLogoutWithIscsiPerf, which leaves the attention out
		// and waits for the end). So rather than waiting for it to end,
		// the test checks that I/O flows on the new session and then
		// stops it.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		perf := peer.LibiscsiCommand(ctx, "iscsi-perf", "-m", "4", "-b", "8", "-r", "-t", "15", labURL(t, g, "vol1", g.GroupAddr()))
		if err := perf.Start(); err != nil {
			t.Fatal(err)
		}
		defer perf.Wait()
		defer cancel()
		second := logoutAndReplace(t, g, waitSession(t, g, 0))
		time.Sleep(300 * time.Millisecond)
		if n := sessionCommands(g, second.TSIH); n == 0 {
			t.Fatal("no I/O on the session that replaced the one asked to log out")
		}
	})

	t.Run("bad CHAP secret", func(t *testing.T) {
		url := fmt.Sprintf("iscsi://vol1%%wrong-secret-123@%s/%s/0", PortAddr(base, 1, 1), iqn)
		out, err := runPeer(t, "iscsi-inq", url)
		if err == nil || !strings.Contains(out, "Authentication failure") {
			t.Fatalf("a wrong CHAP secret: %v\n%s", err, out)
		}
	})

	t.Run("port down", func(t *testing.T) {
		down := PortAddr(base, 1, 1)
		if _, err := g.Inject(FaultRequest{Kind: FaultPortDown, Port: down}); err != nil {
			t.Fatal(err)
		}
		if out, err := runPeer(t, "iscsi-inq", labURL(t, g, "vol1", down)); err == nil {
			t.Fatalf("iscsi-inq through a port that is down succeeded:\n%s", out)
		}
		// The group IP redirects elsewhere meanwhile.
		if out, err := runPeer(t, "iscsi-inq", labURL(t, g, "vol1", g.GroupAddr())); err != nil {
			t.Fatalf("iscsi-inq via the group IP with one port down: %v\n%s", err, out)
		}
		if _, err := g.Inject(FaultRequest{Kind: FaultPortUp, Port: down}); err != nil {
			t.Fatal(err)
		}
		if out, err := runPeer(t, "iscsi-inq", labURL(t, g, "vol1", down)); err != nil {
			t.Fatalf("iscsi-inq after port-up: %v\n%s", err, out)
		}
	})
}

// Access control records by initiator name and by address, with a
// volume created while the group runs.
func TestLabAccessControlWithLibiscsi(t *testing.T) {
	peer.Require(t, "iscsi-inq")
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "vol1", Size: 1 << 20}}})
	const allowed = "iqn.2026-11.org.example:allowed"
	acl := AccessList{{Initiator: allowed}, {Network: netip.MustParsePrefix("127.0.0.0/8"), Initiator: "iqn.2026-11.org.example:local"}}
	if _, err := g.CreateVolume(VolumeSpec{Name: "byname", Size: 4 << 20, Access: acl}); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("iscsi://%s/%s/0", PortAddr(g.Config().BaseIP, 2, 1), VolumeIQN(DefaultGroupName, "byname"))
	for _, c := range []struct {
		initiator string
		ok        bool
	}{{allowed, true}, {"iqn.2026-11.org.example:local", true}, {"iqn.2026-11.org.example:stranger", false}} {
		out, err := runPeer(t, "iscsi-inq", "-i", c.initiator, url)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v\n%s", c.initiator, err, out)
		}
		if !c.ok && !strings.Contains(out, "Authorization failure") {
			t.Errorf("%s was refused without saying why:\n%s", c.initiator, out)
		}
	}
	// The new volume survives a restart.
	dir := g.Dir()
	g.Close()
	g2, err := Open(dir, Options{Logger: testlog.FailureLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if out, err := runPeer(t, "iscsi-inq", "-i", allowed, url); err != nil {
		t.Fatalf("after restart: %v\n%s", err, out)
	}
}

// sessionCommands is how many commands session tsih has run.
// logoutAndReplace asks vol1's one session, first, to log out, and
// returns the session that replaces it, which must have been redirected
// to a member port.
func logoutAndReplace(t *testing.T, g *Group, first SessionStatus) SessionStatus {
	t.Helper()
	msg, err := g.Inject(FaultRequest{Kind: FaultLogoutRequest, Volume: "vol1", Within: Duration(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "1 session") {
		t.Fatalf("logout request: %s", msg)
	}
	second := waitSession(t, g, first.TSIH)
	if second.Member == 0 {
		t.Fatalf("the new session stayed at the group IP: %+v", second)
	}
	return second
}

func sessionCommands(g *Group, tsih uint16) uint64 {
	for _, s := range g.Status().Sessions {
		if s.TSIH == tsih {
			return s.Commands
		}
	}
	return 0
}

// waitSession waits for a Normal session other than TSIH not.
func waitSession(t *testing.T, g *Group, not uint16) SessionStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range g.Status().Sessions {
			if s.Type == "Normal" && s.TSIH != not {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no session other than %d appeared", not)
	return SessionStatus{}
}
