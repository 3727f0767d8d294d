package labtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/iscsi"
)

// testBases is a range that no other package's tests use, so that these
// tests can fill it.
var testBases = Bases{250, 252}

func TestReservationsExclude(t *testing.T) {
	var held []*reservation
	defer func() {
		for _, r := range held {
			r.release()
		}
	}()
	seen := map[byte]bool{}
	for range 3 {
		r, err := reserve(testBases)
		if err != nil {
			t.Fatalf("reserving base %d of 3: %v", len(held)+1, err)
		}
		held = append(held, r)
		x := r.base.As4()[2]
		if x < testBases.First || x > testBases.Last || seen[x] {
			t.Fatalf("reserved %s: outside %v or twice (held %v)", r.base, testBases, seen)
		}
		seen[x] = true
	}
	if _, err := reserve(testBases); !errors.Is(err, errAllTaken) {
		t.Fatalf("a fourth base of three: err = %v, want errAllTaken", err)
	}
	freed := held[1].base
	held[1].release()
	r, err := reserve(testBases)
	if err != nil || r.base != freed {
		t.Fatalf("after releasing %s: got %v, %v", freed, r, err)
	}
	held[1] = r
}

// TestStartServes: the lab's addresses are on its base, the CHAP secret
// logs in at the group IP, and a wrong one does not; the management API
// answers with the admin password, pinned to the fingerprint.
func TestStartServes(t *testing.T) {
	l := Start(t, Options{
		Spec:          array.Spec{Members: 1, Volumes: []array.VolumeSpec{{Name: "v1", Size: 8 << 20}}},
		ManagementAPI: true,
	})
	if x := l.Base.As4()[2]; x < GroupBases.First || x > GroupBases.Last || l.Base.As4()[3] != 0 {
		t.Fatalf("base %s is not in %v", l.Base, GroupBases)
	}
	if l.GroupIP() != l.Addr(1) || l.GroupAddr() != l.Addr(1).String()+":3260" {
		t.Fatalf("group IP %s, portal %s; base %s", l.GroupIP(), l.GroupAddr(), l.Base)
	}
	if l.ManagementAddr() != l.Addr(1).String()+":8443" {
		t.Fatalf("management API on %s", l.ManagementAddr())
	}
	vol := l.Volume(t, "v1")
	cfg := initiator.Config{Portal: l.GroupAddr(), TargetName: vol.IQN, CHAPUser: vol.CHAPUser, CHAPSecret: []byte(l.CHAPSecret(t, "v1")), Log: quiet()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("login with the lab's CHAP secret: %v", err)
	}
	s.Close()
	cfg.CHAPSecret = []byte("not-the-secret")
	if _, err := initiator.Dial(ctx, cfg); !errors.Is(err, &initiator.LoginError{Status: iscsi.LoginAuthFailed}) {
		t.Fatalf("login with a wrong secret: err = %v, want authentication failed", err)
	}
	vols, err := l.Dial(t).Volumes()
	if err != nil || len(vols) != 1 || vols[0].Name != "v1" {
		t.Fatalf("volumes through the API: %+v, %v", vols, err)
	}
}

// TestStartAvoidsTakenAddresses: a base whose group IP someone else holds
// (a test that does not reserve its base) is passed over.
func TestStartAvoidsTakenAddresses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab group binds 127.0.x.y addresses")
	}
	blocker, err := reserve(Bases{251, 251})
	if err != nil {
		t.Fatal(err)
	}
	taken := blocker.base
	blocker.release() // free for labtest, but its addresses are busy:
	ln, err := net.Listen("tcp", taken.Next().String()+":3260")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range 4 { // labtest picks at random; it must never land on it
		l := Start(t, Options{Bases: Bases{250, 251}, Spec: array.Spec{Members: 1, Uninitialized: -1, Volumes: []array.VolumeSpec{}}})
		if l.Base == taken {
			t.Fatalf("started on %s, whose group IP is taken", taken)
		}
		l.Close()
	}
}

// TestReopenKeepsData: a reopened lab serves what was written before;
// a lab from New loses its directory on Close.
func TestReopenKeepsData(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab group binds 127.0.x.y addresses")
	}
	l, err := New(Options{Spec: array.Spec{Members: 1, Volumes: []array.VolumeSpec{{Name: "v1", Size: 4 << 20}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	payload := bytes.Repeat([]byte("labtest!"), 512)
	vol, err := l.Group.Volume("v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vol.WriteAt(payload, 1<<20); err != nil {
		t.Fatal(err)
	}
	base := l.Base
	if err := l.Reopen(Options{ManagementAPI: true}); err != nil {
		t.Fatal(err)
	}
	if vol, err = l.Group.Volume("v1"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(payload))
	if _, err := vol.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, payload) || l.Base != base {
		t.Fatalf("after Reopen: data equal %v (%v), base %s, was %s", bytes.Equal(got, payload), err, l.Base, base)
	}
	if _, err := l.Dial(t).Group(); err != nil {
		t.Fatalf("management API after Reopen: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Fatalf("%s after Close: %v, want it gone", l.Dir, err)
	}
}

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}
