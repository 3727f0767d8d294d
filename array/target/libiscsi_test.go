package target_test

import (
	"errors"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/target"
)

func TestInquiryWithLibiscsi(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	out, err := run(t, 20*time.Second, "iscsi-inq", l.url(0))
	if err != nil {
		t.Fatalf("iscsi-inq: %v\n%s", err, out)
	}
	if !strings.Contains(out, "HITKIT") || !strings.Contains(out, "LABDISK") {
		t.Errorf("iscsi-inq output lacks the disk's identity:\n%s", out)
	}
	out, err = run(t, 20*time.Second, "iscsi-readcapacity16", l.url(0))
	if err != nil {
		t.Fatalf("iscsi-readcapacity16: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Total size:67108864") {
		t.Errorf("iscsi-readcapacity16 reports the wrong size:\n%s", out)
	}
}

func TestDiscoveryWithLibiscsi(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	other := target.NewTarget("iqn.2024-01.test.hitkit:vol2")
	other.SetLUN(0, newDisk(t, 1<<20))
	if err := l.srv.AddTarget(other); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, 20*time.Second, "iscsi-ls", "-s", "iscsi://"+l.portal.Addr)
	if err != nil {
		t.Fatalf("iscsi-ls: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Target:" + testIQN + " Portal:" + l.portal.String(),
		"Target:iqn.2024-01.test.hitkit:vol2 Portal:" + l.portal.String(),
		"Lun:0    Type:DIRECT_ACCESS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("iscsi-ls output lacks %q:\n%s", want, out)
		}
	}
}

func TestCHAPWithLibiscsi(t *testing.T) {
	l := newLab(t, target.Config{}, func(tg *target.Target) {
		tg.CHAP = &target.CHAP{Lookup: target.StaticUsers(map[string]string{"bob": "bob-secret-123"})}
	})
	url := "iscsi://bob%bob-secret-123@" + l.portal.Addr + "/" + testIQN + "/0"
	if out, err := run(t, 20*time.Second, "iscsi-inq", url); err != nil {
		t.Fatalf("iscsi-inq with the right secret: %v\n%s", err, out)
	}
	bad := "iscsi://bob%not-the-secret@" + l.portal.Addr + "/" + testIQN + "/0"
	out, err := run(t, 20*time.Second, "iscsi-inq", bad)
	if err == nil {
		t.Fatalf("iscsi-inq with a wrong secret succeeded:\n%s", out)
	}
	if strings.Contains(out, "not-the-secret") && !strings.Contains(out, "iscsi://") {
		t.Errorf("the secret leaked into the output:\n%s", out)
	}
	if out, err := run(t, 20*time.Second, "iscsi-inq", l.url(0)); err == nil {
		t.Fatalf("iscsi-inq without CHAP succeeded:\n%s", out)
	}
}

func TestACLWithLibiscsi(t *testing.T) {
	refused := make(chan string, 4)
	l := newLab(t, target.Config{}, func(tg *target.Target) {
		tg.Access = func(initiator, _ string, remote netip.Addr) error {
			if strings.Contains(initiator, "denied") {
				refused <- initiator
				return errors.New("initiator not in the volume's access list")
			}
			return nil
		}
	})
	out, err := run(t, 20*time.Second, "iscsi-inq", "-i", "iqn.2024-01.test:denied", l.url(0))
	if err == nil {
		t.Fatalf("iscsi-inq from a refused initiator succeeded:\n%s", out)
	}
	select {
	case who := <-refused:
		if who != "iqn.2024-01.test:denied" {
			t.Errorf("access hook saw %q", who)
		}
	default:
		t.Error("the access hook was not consulted")
	}
	if out, err := run(t, 20*time.Second, "iscsi-inq", "-i", "iqn.2024-01.test:allowed", l.url(0)); err != nil {
		t.Fatalf("iscsi-inq from an allowed initiator: %v\n%s", err, out)
	}
}

// TestRedirectWithLibiscsi: the first portal redirects every login to the
// second, as a group IP does; libiscsi follows and is served there.
func TestRedirectWithLibiscsi(t *testing.T) {
	var member atomic.Value
	arrived := make(chan target.PortalInfo, 4)
	// The hook sees every Normal login: the one at the first portal, which
	// it redirects, and the one that follows at the second. Watching it
	// is more reliable than polling Sessions for iscsi-inq's short visit.
	l := newLab(t, target.Config{Redirect: func(info target.LoginInfo) (string, bool) {
		if info.Portal.TPGT == 1 {
			return member.Load().(string), true
		}
		arrived <- info.Portal
		return "", false
	}}, nil)
	p2, err := l.srv.AddPortal("127.0.0.2:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	member.Store(p2.Addr)
	out, err := run(t, 20*time.Second, "iscsi-inq", l.url(0))
	if err != nil {
		t.Fatalf("iscsi-inq through a redirect: %v\n%s", err, out)
	}
	select {
	case p := <-arrived:
		if p != p2 {
			t.Errorf("login arrived at portal %v, want %v", p, p2)
		}
	default:
		t.Error("no login arrived at the portal named by the redirect")
	}
}

// TestPerfWithLibiscsi drives many outstanding commands with iscsi-perf
// for a second and checks that it completes I/O without errors.
func TestPerfWithLibiscsi(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	out, _ := run(t, 30*time.Second, "iscsi-perf", "-m", "32", "-b", "16", "-t", "1", "-r", l.url(0))
	m := regexp.MustCompile(`iops average (\d+)`).FindAllStringSubmatch(out, -1)
	if m == nil {
		t.Fatalf("iscsi-perf printed no average:\n%s", out)
	}
	if iops, _ := strconv.Atoi(m[len(m)-1][1]); iops == 0 {
		t.Fatalf("iscsi-perf did no I/O:\n%s", out)
	}
	if strings.Contains(strings.ToLower(out), "error") || strings.Contains(out, "failed") {
		t.Errorf("iscsi-perf reported errors:\n%s", out)
	}
	t.Logf("iscsi-perf: %s", m[len(m)-1][0])
}
