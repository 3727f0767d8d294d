package daemon

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/hitkit/hitkit/array/mgmt"
	"golang.org/x/sys/unix"
)

// TestSliceAwareConnect connects with the group's admin password: the
// daemon reads the page map from the management API, opens
// sessions-per-slice sessions per member, and reads go to the member that
// holds their page, so the group forwards (almost) nothing.
func TestSliceAwareConnect(t *testing.T) {
	lab := startLab(t, mgmt.New())
	g := lab.g

	rd := startDaemon(t, t.TempDir(), t.TempDir())
	v := rd.connect(t, ConnectRequest{
		Name: "sliced", Portal: g.GroupAddr(), Target: lab.vol1.IQN,
		CHAPUser: lab.vol1.CHAPUser, CHAPSecret: lab.secret,
		Sources: []string{"127.0.0.2", "127.0.0.3"}, SessionsPerSlice: 2, MaxSessions: 6,
		GroupFingerprint: lab.Fingerprint(t), GroupAdminPassword: lab.AdminPassword(t),
	})
	if n := len(rd.status(t, "sliced").Paths); n != 4 {
		t.Fatalf("%d sessions, want 2 per member of the 2 holding the volume", n)
	}

	forwarded := func() (n uint64) {
		for _, vs := range g.Status().Volumes {
			if vs.Name == "vol1" {
				n += vs.Forwarded
			}
		}
		return n
	}
	f, err := os.OpenFile(v.Link, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := alignedBuf(4096)
	before := forwarded()
	const reads = 400
	for range reads {
		if _, err := f.ReadAt(buf, rand.Int64N((64<<20)/4096)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if n := forwarded() - before; n > reads/20 {
		t.Fatalf("%d of %d reads were forwarded between members; slice-aware routing should avoid that", n, reads)
	}
}
