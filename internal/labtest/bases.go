package labtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Bases is a range of lab bases 127.0.X.0, X from First to Last. A lab
// takes its base's whole /24: the group IP is BASE+1, member m's port p
// is BASE+10*m+p, and the setup wizard may move members anywhere in it.
type Bases struct{ First, Last byte }

var (
	// GroupBases is where tests run lab groups: away from the default
	// 127.0.10.0, so that a lab someone runs by hand does not clash.
	GroupBases = Bases{100, 199}
	// SiteBases is for sites of uninitialised members and the setup
	// wizard's tests. Setup binds addresses that it picks only after the
	// site started, so a group on the same /24 would not show up as a
	// clash at start; keeping the two ranges apart also keeps them apart
	// from tests that do not reserve their base.
	SiteBases = Bases{200, 249}
)

// lockDir holds one lock file per base. Every test process on the
// machine (go test runs packages in parallel) locks the same files, so
// two labs that reserve their bases never share one.
func lockDir() string { return filepath.Join(os.TempDir(), "hitkit-labtest-bases") }

// reservation holds a base for this process until release. The lock is
// flock(2) on an open file: the kernel drops it if the process dies, so a
// crashed test leaves nothing behind to clean up.
type reservation struct {
	base netip.Addr
	f    *os.File
}

// errAllTaken says every base of a range is held by running tests.
var errAllTaken = errors.New("labtest: every base of the range is reserved by a running test")

// reserve locks a free base of b, trying them all in a random order.
func reserve(b Bases) (*reservation, error) {
	if b == (Bases{}) {
		b = GroupBases
	}
	if b.First > b.Last {
		return nil, fmt.Errorf("labtest: empty base range %d-%d", b.First, b.Last)
	}
	if err := os.MkdirAll(lockDir(), 0o755); err != nil {
		return nil, fmt.Errorf("labtest: %w", err)
	}
	n := int(b.Last) - int(b.First) + 1
	for _, i := range rand.Perm(n) {
		base := netip.AddrFrom4([4]byte{127, 0, b.First + byte(i), 0})
		f, err := os.OpenFile(filepath.Join(lockDir(), base.String()+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("labtest: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue
			}
			return nil, fmt.Errorf("labtest: locking %s: %w", f.Name(), err)
		}
		return &reservation{base: base, f: f}, nil
	}
	return nil, errAllTaken
}

// release lets other tests have the base. Closing the file drops the lock.
func (r *reservation) release() {
	if r != nil && r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// ReserveBase reserves a base of b (GroupBases when zero) until the test
// ends, for a test that starts a lab some other way, such as through
// `hitkit lab up --base-ip`.
func ReserveBase(t testing.TB, b Bases) netip.Addr {
	t.Helper()
	r, err := reserve(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.release)
	return r.base
}
