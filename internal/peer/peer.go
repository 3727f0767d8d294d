package peer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hitkit/hitkit/internal/testlog"
)

// Options shape a target.
type Options struct {
	SizeBytes int64 // LUN size; 64 MiB when zero
	Portals   int   // loopback portals (tgtd only); 1 when zero
	// One-way CHAP: the target authenticates the initiator.
	CHAPUser, CHAPSecret string
	// Mutual CHAP: the target's own credentials.
	MutualUser, MutualSecret string
}

// Target is a running third-party target.
type Target struct {
	Kind    string // "tgtd" or "istgt"
	IQN     string
	LUN     int // the data LUN
	Portals []string
	Backing string

	t     testing.TB
	dir   string
	opts  Options
	cmd   *exec.Cmd
	log   string // the target's stdout and stderr
	ctlID int
	conf  string
}

// Portal is the first portal, host:port.
func (tg *Target) Portal() string { return tg.Portals[0] }

// Require skips the test unless it runs as root with the given programs.
func Require(t testing.TB, bins ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the peer targets bind ports and manage their own state")
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed (make deps installs tgt, istgt and libiscsi-bin)", b)
		}
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (o *Options) defaults() {
	if o.SizeBytes == 0 {
		o.SizeBytes = 64 << 20
	}
	if o.Portals == 0 {
		o.Portals = 1
	}
}

// backingDir prefers tmpfs, so that the peer's speed is not the disk's.
func backingDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "hitkit-peer-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func newTarget(t testing.TB, kind string, o Options) *Target {
	o.defaults()
	tg := &Target{Kind: kind, t: t, opts: o, dir: backingDir(t)}
	tg.log = filepath.Join(tg.dir, kind+".log")
	tg.Backing = filepath.Join(tg.dir, "lun.img")
	f, err := os.Create(tg.Backing)
	if err == nil {
		err = f.Truncate(o.SizeBytes)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	for range o.Portals {
		tg.Portals = append(tg.Portals, "127.0.0.1:"+strconv.Itoa(FreePort(t)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", kind, tg.logTail(4000))
		}
		tg.Kill()
	})
	return tg
}

// Kill stops the target with SIGKILL and waits for it.
func (tg *Target) Kill() {
	if tg.cmd == nil || tg.cmd.Process == nil {
		return
	}
	tg.cmd.Process.Signal(syscall.SIGKILL)
	tg.cmd.Wait()
	tg.cmd = nil
}

// Restart starts the target again with the same portals, name and data.
func (tg *Target) Restart() {
	tg.t.Helper()
	tg.Kill()
	switch tg.Kind {
	case "tgtd":
		tg.startTgtd()
	case "istgt":
		tg.startIstgt()
	}
}

func (tg *Target) waitListening() {
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range tg.Portals {
		for {
			c, err := net.DialTimeout("tcp", p, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				tg.t.Fatalf("%s did not start listening on %s: %v\n%s", tg.Kind, p, err, tg.logTail(2000))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (tg *Target) start(name string, args ...string) {
	log, err := os.OpenFile(tg.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer log.Close()
	tg.cmd = exec.Command(name, args...)
	tg.cmd.Stdout, tg.cmd.Stderr = log, log
	tg.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := tg.cmd.Start(); err != nil {
		tg.t.Fatalf("starting %s: %v", name, err)
	}
}

// URL is the libiscsi URL of the data LUN, with CHAP credentials if given.
func (tg *Target) URL(user, secret string) string {
	cred := ""
	if user != "" {
		cred = user + "%" + secret + "@"
	}
	return fmt.Sprintf("iscsi://%s%s/%s/%d", cred, tg.Portal(), tg.IQN, tg.LUN)
}

// logTail is the end of the target's log.
func (tg *Target) logTail(n int) string {
	b, _ := os.ReadFile(tg.log)
	return testlog.Tail(string(b), n)
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
