package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/disk"
	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// lab is one target engine on loopback with a 32 MiB disk on LUN 0.
type lab struct {
	srv    *target.Server
	portal string
	iqn    string
	tgt    *target.Target
}

const labIQN = "iqn.2026-11.org.hitkit.e2e:vol1"

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	return logrus.NewEntry(l)
}

func startLab(t *testing.T, cfg target.Config, opts disk.Options, setup func(*target.Target)) *lab {
	t.Helper()
	cfg.Logger = quiet()
	srv := target.NewServer(cfg)
	t.Cleanup(func() { srv.Close() })
	p, err := srv.AddPortal("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	be, err := disk.CreateFile(filepath.Join(t.TempDir(), "vol1"), 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	d, err := disk.New(be, disk.Identity{Vendor: "HITKIT", Product: "LAB", Revision: "0001", Serial: "E2E0001"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tg := target.NewTarget(labIQN)
	tg.SetLUN(0, d)
	if setup != nil {
		setup(tg)
	}
	if err := srv.AddTarget(tg); err != nil {
		t.Fatal(err)
	}
	return &lab{srv: srv, portal: p.Addr, iqn: labIQN, tgt: tg}
}

func (l *lab) config() initiator.Config {
	return initiator.Config{Portal: l.portal, TargetName: l.iqn, Log: quiet()}
}

func dialUnit(t *testing.T, cfg initiator.Config) (*initiator.Session, *initiator.LogicalUnit) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	lu, err := initiator.OpenLogicalUnit(ctx, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s, lu
}

func roundTrip(t *testing.T, lu *initiator.LogicalUnit, off int64, n int) {
	t.Helper()
	want := bytes.Repeat([]byte{byte(off>>9) | 1, 0x5a}, n/2)
	if _, err := lu.WriteAt(want, off); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	if _, err := lu.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read back at %d differs from what was written", off)
	}
}

// The disk raises POWER ON OCCURRED to each new nexus, as an array does;
// the initiator retries it, so opening the unit and the first I/O succeed.
func TestUnitAttentionIsRetried(t *testing.T) {
	l := startLab(t, target.Config{}, disk.Options{}, nil)
	_, lu := dialUnit(t, l.config())
	roundTrip(t, lu, 0, 64<<10)
}

// Every CHAP algorithm, one-way and mutual, against our own target,
// which unlike tgt and istgt knows them all.
func TestCHAPAlgorithms(t *testing.T) {
	const user, secret, muser, msecret = "host1", "host-secret-123", "array", "array-secret-456"
	l := startLab(t, target.Config{}, disk.Options{}, func(tg *target.Target) {
		tg.CHAP = &target.CHAP{
			Lookup: target.StaticUsers(map[string]string{user: secret}),
			Mutual: &iscsi.ChapCredentials{User: muser, Secret: []byte(msecret)},
		}
	})
	for _, alg := range []iscsi.ChapAlgorithm{iscsi.ChapMD5, iscsi.ChapSHA1, iscsi.ChapSHA256, iscsi.ChapSHA3256} {
		for _, mutual := range []bool{false, true} {
			cfg := l.config()
			cfg.CHAPUser, cfg.CHAPSecret, cfg.CHAPAlgorithms = user, []byte(secret), []iscsi.ChapAlgorithm{alg}
			if mutual {
				cfg.MutualUser, cfg.MutualSecret = muser, []byte(msecret)
			}
			_, lu := dialUnit(t, cfg)
			roundTrip(t, lu, 4096, 4096)
		}
	}
	cfg := l.config()
	cfg.CHAPUser, cfg.CHAPSecret = user, []byte("not-the-secret")
	if _, err := initiator.Dial(context.Background(), cfg); !errors.Is(err, &initiator.LoginError{Status: iscsi.LoginAuthFailed}) {
		t.Fatalf("wrong secret: err = %v, want authentication failed", err)
	}
}

func TestDigestsAgainstLab(t *testing.T) {
	l := startLab(t, target.Config{}, disk.Options{}, nil)
	cfg := l.config()
	cfg.HeaderDigest, cfg.DataDigest = true, true
	s, lu := dialUnit(t, cfg)
	if p := s.Params(); !p.HeaderDigest || !p.DataDigest {
		t.Fatalf("negotiated header=%v data=%v, want both", p.HeaderDigest, p.DataDigest)
	}
	roundTrip(t, lu, 1<<20, 1<<20)
}

// A login at a redirecting portal ends up at the portal it names.
func TestRedirectIsFollowed(t *testing.T) {
	var member string
	l := startLab(t, target.Config{Redirect: func(info target.LoginInfo) (string, bool) {
		return member, info.Portal.Addr != member
	}}, disk.Options{}, nil)
	p, err := l.srv.AddPortal("127.0.0.2:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	member = p.Addr
	s, lu := dialUnit(t, l.config())
	roundTrip(t, lu, 0, 8192)
	if s.Portal() != member {
		t.Fatalf("session on %s, want the redirect's %s", s.Portal(), member)
	}
	if la := s.LocalAddr(); !strings.HasPrefix(la, "127.0.0.1:") {
		t.Fatalf("LocalAddr = %q, want 127.0.0.1:port", la)
	}
	for _, si := range l.srv.Sessions() {
		if si.Portal.Addr != member {
			t.Fatalf("target sees a session on %s, want the redirect's %s", si.Portal.Addr, member)
		}
	}
}

// AsyncEvent 1 reaches the owner as an event, and without an owner the
// session logs out and in again by itself while I/O keeps flowing.
func TestLogoutRequest(t *testing.T) {
	l := startLab(t, target.Config{}, disk.Options{}, nil)
	t.Run("delivered to the owner", func(t *testing.T) {
		events := make(chan initiator.Event, 4)
		cfg := l.config()
		cfg.OnEvent = func(ev initiator.Event) { events <- ev }
		s, _ := dialUnit(t, cfg)
		if err := l.srv.RequestLogout(tsihOf(t, l, s), 3*time.Second); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-events:
			if ev.Kind != initiator.EventLogoutRequested || ev.Within != 3*time.Second {
				t.Fatalf("event %v within %v, want logout requested within 3s", ev.Kind, ev.Within)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
		}
	})
	t.Run("renewed by the session", func(t *testing.T) {
		s, lu := dialUnit(t, l.config())
		old := tsihOf(t, l, s)
		if err := l.srv.RequestLogout(old, 3*time.Second); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for i := int64(0); time.Now().Before(deadline); i++ {
			roundTrip(t, lu, (i%64)*65536, 65536)
			if tsihOf(t, l, s) != old {
				return
			}
		}
		t.Fatal("the session did not log in again within 5 s")
	})
}

// tsihOf finds the target's view of session s by its ISID.
func tsihOf(t *testing.T, l *lab, s *initiator.Session) uint16 {
	t.Helper()
	for range 50 {
		for _, si := range l.srv.Sessions() {
			if isid := s.ISID(); si.ISID == hex.EncodeToString(isid[:]) {
				return si.TSIH
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the target has no session with our ISID")
	return 0
}

// Unmap on a thin lab disk: the range reads back as zeroes.
func TestUnmap(t *testing.T) {
	l := startLab(t, target.Config{}, disk.Options{ThinProvisioning: true}, nil)
	_, lu := dialUnit(t, l.config())
	roundTrip(t, lu, 1<<20, 2<<20)
	if err := lu.Unmap(1<<20, 2<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2<<20)
	if _, err := lu.ReadAt(got, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, len(got))) {
		t.Fatal("an unmapped range does not read back as zeroes")
	}
	if err := lu.Sync(); err != nil {
		t.Fatal(err)
	}
}
