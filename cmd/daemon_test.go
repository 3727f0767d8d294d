package cmd

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hitkit/hitkit/daemon"
)

func TestDaemonUsage(t *testing.T) {
	if code, _, errOut := hitkit(t, "daemon", "extra"); code != exitUsage {
		t.Fatalf("daemon extra: exit %d, want 2: %s", code, errOut)
	}
	if code, _, errOut := hitkit(t, "daemon", "--no-such-flag"); code != exitUsage {
		t.Fatalf("daemon --no-such-flag: exit %d, want 2: %s", code, errOut)
	}
}

// daemonCmdline returns the daemon process's argv, to check that no
// secret is on it.
func daemonCmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\x00", " ")
}

func processRunning(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestDaemonDetached: `hitkit daemon` returns once the 0600 socket
// answers, and SIGTERM stops the daemon and removes the socket.
func TestDaemonDetached(t *testing.T) {
	bin := buildHitkit(t)
	runtime, state := t.TempDir(), t.TempDir()
	t.Cleanup(func() { stopDaemon(t, runtime) })
	code, out, errOut := labCLI(t, bin, "daemon", "--runtime-dir", runtime, "--state-dir", state)
	if code != 0 || !strings.Contains(out, "hitkitd running") {
		t.Fatalf("daemon: exit %d: %s%s", code, out, errOut)
	}
	sock := filepath.Join(runtime, "hitkitd.sock")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, mode %v", err, fi.Mode())
	}
	// A second start finds the running daemon instead of starting another.
	if code, _, errOut := labCLI(t, bin, "daemon", "--runtime-dir", runtime, "--state-dir", state); code != 0 {
		t.Fatalf("second start: exit %d: %s", code, errOut)
	}
	pid, err := daemon.NewClient(runtime).Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	waitGone(t, pid)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after SIGTERM: %v", err)
	}
}

// TestDaemonStop: `hitkit daemon --stop` returns once hitkitd has exited,
// and says so when there is nothing to stop.
func TestDaemonStop(t *testing.T) {
	bin := buildHitkit(t)
	runtime, state := t.TempDir(), t.TempDir()
	t.Cleanup(func() { stopDaemon(t, runtime) })
	if code, _, errOut := labCLI(t, bin, "daemon", "--runtime-dir", runtime, "--state-dir", state); code != 0 {
		t.Fatalf("daemon: exit %d: %s", code, errOut)
	}
	pid, err := daemon.NewClient(runtime).Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := labCLI(t, bin, "daemon", "--stop", "--runtime-dir", runtime); code != 0 {
		t.Fatalf("daemon --stop: exit %d: %s", code, errOut)
	}
	if processAlive(pid) {
		t.Fatalf("hitkitd %d still runs after daemon --stop returned", pid)
	}
	if code, _, errOut := labCLI(t, bin, "daemon", "--stop", "--runtime-dir", runtime); code != 1 || !strings.Contains(errOut, "not running") {
		t.Fatalf("second --stop: exit %d, %q; want 1 and 'not running'", code, errOut)
	}
}
