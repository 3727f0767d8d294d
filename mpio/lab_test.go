package mpio

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/sirupsen/logrus"
)

// The lab group is shared by the tests of the package: it starts on first
// use and stops in TestMain. Tests that inject faults clear them when done.
var lab struct {
	once    sync.Once
	running *labtest.Lab
	g       *array.Group
	vol     array.VolumeConfig
	secret  []byte
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if lab.running != nil {
		lab.running.Close()
	}
	os.Exit(code)
}

const labVolumeSize = 64 << 20

// startLab returns the shared group: vol1 (CHAP, 64 MiB) for I/O, and
// vol2 and vol3 (open to 127/8, no CHAP) for the WWID check.
func startLab(t testing.TB) *array.Group {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab group binds 127.0.x.y addresses")
	}
	labtest.RequireSources(t, "127.0.0.2", "127.0.0.3")
	lab.once.Do(func() {
		open := array.AccessList{{Network: netip.MustParsePrefix("127.0.0.0/8")}}
		lab.running, lab.err = labtest.New(labtest.Options{Spec: array.Spec{
			Volumes: []array.VolumeSpec{
				{Name: "vol1", Size: labVolumeSize},
				{Name: "vol2", Size: 8 << 20, Access: open},
				{Name: "vol3", Size: 8 << 20, Access: open},
			},
		}})
		if lab.err != nil {
			return
		}
		lab.g = lab.running.Group
		lab.vol = lab.g.Config().Volumes[0]
		b, err := os.ReadFile(lab.running.CHAPSecretFile("vol1"))
		lab.secret, lab.err = bytes.TrimSpace(b), err
	})
	if lab.err != nil {
		t.Fatal(lab.err)
	}
	return lab.g
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// testLog collects a test's log lines and prints them if it fails.
func testLog(t testing.TB) *logrus.Entry {
	var buf lockedBuffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.InfoLevel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("device log:\n%s", buf.String())
		}
	})
	return logrus.NewEntry(l)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// labConfig is a device on vol1 over four sessions from two source
// addresses, which play the part of two NICs.
func labConfig(t testing.TB) Config {
	g := startLab(t)
	return Config{
		Session: initiator.Config{
			Portal: g.GroupAddr(), TargetName: lab.vol.IQN,
			CHAPUser: lab.vol.CHAPUser, CHAPSecret: lab.secret, Log: logrus.NewEntry(quietLogger()),
		},
		Paths:    []PathSpec{{SourceAddr: "127.0.0.2"}, {SourceAddr: "127.0.0.3"}},
		Sessions: 4,
		Log:      testLog(t),
	}
}

func openDevice(t testing.TB, cfg Config) *Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func clearFaults(t testing.TB) {
	t.Helper()
	if _, err := lab.g.ClearFaults(); err != nil {
		t.Fatal(err)
	}
}

func inject(t testing.TB, r array.FaultRequest) {
	t.Helper()
	if _, err := lab.g.Inject(r); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 10 ms until it holds or within passes, and
// returns how long it took.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func allActive(d *Device) bool {
	for _, p := range d.Status().Paths {
		if p.State != StateActive && p.State != StateStandby {
			return false
		}
	}
	return true
}

func totalErrors(d *Device) uint64 {
	var n uint64
	for _, p := range d.Status().Paths {
		n += p.Errors
	}
	return n
}

// member returns the member that owns a port address.
func member(t testing.TB, portal string) int {
	t.Helper()
	for _, m := range lab.g.Members() {
		for _, p := range m.Ports() {
			if p.Addr == portal {
				return p.Member
			}
		}
	}
	t.Fatalf("no member has port %q", portal)
	return 0
}

// workload is a verify workload: goroutines that each own a region of the
// device, write random blocks there and read them back, comparing bytes.
// It remembers the first error and the slowest round, which under a fault
// is the stall the application saw.
type workload struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	rounds  atomic.Int64
	slowest atomic.Int64 // nanoseconds
	mu      sync.Mutex
	err     error
}

const (
	workers    = 12
	maxRounds  = 200000 // per worker: a bound beside the stop channel
	blockBytes = 16 << 10
)

func startWorkload(d *Device) *workload {
	w := &workload{stop: make(chan struct{})}
	region := d.Size() / workers / blockBytes * blockBytes
	for i := range workers {
		w.wg.Go(func() { w.run(d, int64(i)*region, region, uint64(i)) })
	}
	return w
}

func (w *workload) run(d *Device, base, size int64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	buf, got := make([]byte, 4*blockBytes), make([]byte, 4*blockBytes)
	for range maxRounds {
		select {
		case <-w.stop:
			return
		default:
		}
		n := (1 + rng.IntN(4)) * blockBytes
		off := base + rng.Int64N(size/blockBytes-4)*blockBytes
		for j := range n {
			buf[j] = byte(rng.Uint32())
		}
		start := time.Now()
		if err := roundTrip(d, buf[:n], got[:n], off); err != nil {
			w.fail(err)
			return
		}
		w.note(time.Since(start))
	}
}

func roundTrip(d *Device, data, got []byte, off int64) error {
	if _, err := d.WriteAt(data, off); err != nil {
		return fmt.Errorf("write %d bytes at %d: %w", len(data), off, err)
	}
	if _, err := d.ReadAt(got, off); err != nil {
		return fmt.Errorf("read %d bytes at %d: %w", len(got), off, err)
	}
	if !bytes.Equal(data, got) {
		return fmt.Errorf("read back at %d differs from what was written", off)
	}
	return nil
}

func (w *workload) note(d time.Duration) {
	w.rounds.Add(1)
	for {
		old := w.slowest.Load()
		if int64(d) <= old || w.slowest.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (w *workload) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *workload) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// progress waits for n more rounds, failing the test on an I/O error or a
// stall.
func (w *workload) progress(t testing.TB, n int64, within time.Duration) {
	t.Helper()
	want := w.rounds.Load() + n
	waitFor(t, within, fmt.Sprintf("%d more verified rounds", n), func() bool {
		if err := w.firstErr(); err != nil {
			t.Fatalf("application I/O failed: %v", err)
		}
		return w.rounds.Load() >= want
	})
}

// finish stops the workload and fails the test on any I/O error.
func (w *workload) finish(t testing.TB) {
	t.Helper()
	close(w.stop)
	w.wg.Wait()
	if err := w.firstErr(); err != nil {
		t.Fatalf("application I/O failed: %v", err)
	}
}

func (w *workload) resetSlowest() { w.slowest.Store(0) }
func (w *workload) stall() time.Duration {
	return time.Duration(w.slowest.Load())
}

// activePath returns the status of a path in service, with the port it is on.
func activePath(t testing.TB, d *Device) PathStatus {
	t.Helper()
	for _, p := range d.Status().Paths {
		if p.State == StateActive && p.Remote != "" {
			return p
		}
	}
	t.Fatal("no active path")
	return PathStatus{}
}

func pathByID(d *Device, id int) PathStatus {
	for _, p := range d.Status().Paths {
		if p.ID == id {
			return p
		}
	}
	return PathStatus{}
}

func describe(d *Device) string {
	var b strings.Builder
	for _, p := range d.Status().Paths {
		fmt.Fprintf(&b, "[%d %s %s %s err=%d %q] ", p.ID, p.Source, p.Remote, p.State, p.Errors, p.LastFailure)
	}
	return b.String()
}
