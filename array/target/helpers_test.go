package target_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/disk"
	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/internal/peer"
	"github.com/sirupsen/logrus"
)

const testIQN = "iqn.2024-01.test.hitkit:vol1"

// testLogger sends the engine's logs to the test's log, shown on failure.
func testLogger(t testing.TB) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.InfoLevel)
	if testing.Verbose() {
		l.SetLevel(logrus.DebugLevel)
	}
	return l
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lab is a server with one portal and one target holding a disk on LUN 0.
type lab struct {
	srv    *target.Server
	portal target.PortalInfo
	target *target.Target
	disk   *disk.Disk
}

func (l *lab) url(lun int) string {
	return fmt.Sprintf("iscsi://%s/%s/%d", l.portal.Addr, testIQN, lun)
}

func newLab(t testing.TB, cfg target.Config, setup func(*target.Target)) *lab {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv := target.NewServer(cfg)
	t.Cleanup(func() { srv.Close() })
	p, err := srv.AddPortal("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	tg := target.NewTarget(testIQN)
	tg.Alias = "vol1"
	d := newDisk(t, 64<<20)
	tg.SetLUN(0, d)
	if setup != nil {
		setup(tg)
	}
	if err := srv.AddTarget(tg); err != nil {
		t.Fatal(err)
	}
	return &lab{srv: srv, portal: p, target: tg, disk: d}
}

func newDisk(t testing.TB, size int64) *disk.Disk {
	t.Helper()
	b, err := disk.CreateFile(filepath.Join(t.TempDir(), "disk.img"), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d, err := disk.New(b, disk.Identity{
		Vendor: "HITKIT", Product: "LABDISK", Revision: "1.0", Serial: "TGT-TEST-0001", OUI: 0x00a0b8,
	}, disk.Options{NoPowerOnAttention: true, ThinProvisioning: true})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// needTool skips unless the test runs as root and the libiscsi tool exists.
func needTool(t testing.TB, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipping: %s tests run as root (CI does)", name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("skipping: %s is not installed (Debian package libiscsi-bin)", name)
	}
	return path
}

// run runs a tool with a time limit and returns its combined output.
func run(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	path := needTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := peer.LibiscsiCommand(ctx, path, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %v: %w", name, timeout, ctx.Err())
	}
	return out.String(), err
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkNoLeak fails when goroutines started after baseline outlive the
// server.
func checkNoLeak(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines left after Close, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quietLogger keeps warnings only, for tests that provoke many on purpose.
func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	if os.Getenv("HITKIT_TARGET_LOG") != "" {
		l.SetLevel(logrus.DebugLevel)
	} else {
		l.SetOutput(io.Discard)
	}
	return l
}

func runtimeGoroutines() int { return runtime.NumGoroutine() }

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }
