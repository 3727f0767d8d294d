package e2e

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/iscsi"
)

// labGroup is a lab group started in-process by labtest on its own base,
// with one 64 MiB volume spread over two members.
type labGroup struct {
	g      *array.Group
	vol    array.VolumeConfig
	secret []byte
}

func startGroup(t *testing.T) *labGroup {
	t.Helper()
	lab := labtest.Start(t, labtest.Options{Spec: array.Spec{Volumes: []array.VolumeSpec{{Name: "vol1", Size: 64 << 20}}}})
	return &labGroup{g: lab.Group, vol: lab.Volume(t, "vol1"), secret: []byte(lab.CHAPSecret(t, "vol1"))}
}

// config logs in at the group IP with the volume's CHAP credentials, and
// notices a silent path within about a second.
func (l *labGroup) config() initiator.Config {
	return initiator.Config{
		Portal: l.g.GroupAddr(), TargetName: l.vol.IQN, Log: quiet(),
		CHAPUser: l.vol.CHAPUser, CHAPSecret: l.secret,
		NopInterval: 300 * time.Millisecond, NopTimeout: 700 * time.Millisecond,
	}
}

func (l *labGroup) inject(t *testing.T, r array.FaultRequest) {
	t.Helper()
	if _, err := l.g.Inject(r); err != nil {
		t.Fatal(err)
	}
}

// ioLoop writes and reads back random 64 KiB blocks in its own region
// until stopped, and returns how many rounds ran and the first error.
type ioLoop struct {
	stop   chan struct{}
	done   chan struct{}
	rounds atomic.Int64
	err    error
}

func startIO(lu *initiator.LogicalUnit, region int64) *ioLoop {
	io := &ioLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(io.done)
		rng := rand.New(rand.NewPCG(uint64(region), 7))
		buf, got := make([]byte, 64<<10), make([]byte, 64<<10)
		for i := 0; i < 100000; i++ {
			select {
			case <-io.stop:
				return
			default:
			}
			off := region + rng.Int64N(64)*int64(len(buf))
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
			if _, err := lu.WriteAt(buf, off); err != nil {
				io.err = err
				return
			}
			if _, err := lu.ReadAt(got, off); err != nil {
				io.err = err
				return
			}
			if !bytes.Equal(buf, got) {
				io.err = errors.New("read back differs from what was written")
				return
			}
			io.rounds.Add(1)
		}
	}()
	return io
}

// finish stops the loop and fails the test if any I/O failed or none ran
// after the fault.
func (io *ioLoop) finish(t *testing.T, before int64) {
	t.Helper()
	close(io.stop)
	<-io.done
	if io.err != nil {
		t.Fatalf("application I/O failed: %v", io.err)
	}
	if io.rounds.Load() <= before {
		t.Fatal("no I/O completed after the fault")
	}
}

// waitRounds waits until the loop has done n more rounds, or fails.
func (io *ioLoop) waitRounds(t *testing.T, n int64, within time.Duration) int64 {
	t.Helper()
	want := io.rounds.Load() + n
	deadline := time.Now().Add(within)
	for io.rounds.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("I/O stalled: %d rounds, want %d within %v (err %v)", io.rounds.Load(), want, within, io.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return io.rounds.Load()
}

func TestLabLogin(t *testing.T) {
	l := startGroup(t)
	t.Run("redirected to a member port", func(t *testing.T) {
		s, lu := dialUnit(t, l.config())
		if s.Portal() == l.g.GroupAddr() || !strings.HasSuffix(s.Portal(), ":3260") {
			t.Fatalf("session on %s, want a member port, not the group IP", s.Portal())
		}
		roundTrip(t, lu, 0, 1<<20) // 1 MiB pages: crosses members
	})
	t.Run("wrong CHAP secret", func(t *testing.T) {
		cfg := l.config()
		cfg.CHAPSecret = []byte("not-the-secret")
		if _, err := initiator.Dial(context.Background(), cfg); !errors.Is(err, &initiator.LoginError{Status: iscsi.LoginAuthFailed}) {
			t.Fatalf("err = %v, want authentication failed", err)
		}
	})
	t.Run("access record refuses", func(t *testing.T) {
		acl := array.AccessList{{Initiator: "iqn.2026-11.org.example:someone-else", CHAPUser: l.vol.CHAPUser}}
		if err := l.g.SetAccess("vol1", acl); err != nil {
			t.Fatal(err)
		}
		defer l.g.SetAccess("vol1", l.vol.Access)
		_, err := initiator.Dial(context.Background(), l.config())
		if !errors.Is(err, &initiator.LoginError{Status: iscsi.LoginAuthorizationFailed}) {
			t.Fatalf("err = %v, want not authorised", err)
		}
	})
}

// TestLabFaults injects every fault kind under running I/O on one session
// that logs in at the group IP. The session recovers through the group IP
// by itself, and the application sees no error.
func TestLabFaults(t *testing.T) {
	l := startGroup(t)
	member := func(portal string) int {
		for _, m := range l.g.Members() {
			for _, p := range m.Ports() {
				if p.Addr == portal {
					return p.Member
				}
			}
		}
		t.Fatalf("no member has port %s", portal)
		return 0
	}
	for _, tc := range []struct {
		name  string
		moves bool // the session must end up on another port
		fault func(portal string) array.FaultRequest
	}{
		{"port down", true, func(p string) array.FaultRequest { return array.FaultRequest{Kind: array.FaultPortDown, Port: p} }},
		{"blackhole", true, func(p string) array.FaultRequest { return array.FaultRequest{Kind: array.FaultBlackhole, Port: p} }},
		{"control-module failover", true, func(p string) array.FaultRequest {
			return array.FaultRequest{Kind: array.FaultFailover, Member: member(p), Duration: array.Duration(2 * time.Second)}
		}},
		{"latency", false, func(p string) array.FaultRequest {
			return array.FaultRequest{Kind: array.FaultLatency, Port: p, Latency: array.Duration(5 * time.Millisecond)}
		}},
		{"logout request", false, func(string) array.FaultRequest {
			return array.FaultRequest{Kind: array.FaultLogoutRequest, Volume: "vol1", Within: array.Duration(2 * time.Second)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, lu := dialUnit(t, l.config())
			io := startIO(lu, 0)
			io.waitRounds(t, 5, 5*time.Second)
			before := s.Portal()
			l.inject(t, tc.fault(before))
			after := io.waitRounds(t, 20, 20*time.Second)
			if now := s.Portal(); tc.moves && (now == before || now == "") {
				t.Fatalf("the session is on %q, want it moved off %s", now, before)
			}
			if _, err := l.g.ClearFaults(); err != nil {
				t.Fatal(err)
			}
			io.finish(t, after-1)
		})
	}
}

// TestLabAsyncLogoutManySessions asks every session of the volume to log
// out while four sessions do I/O; none of them sees an error.
func TestLabAsyncLogoutManySessions(t *testing.T) {
	l := startGroup(t)
	var loops []*ioLoop
	for i := range 4 {
		_, lu := dialUnit(t, l.config())
		loops = append(loops, startIO(lu, int64(i)*16<<20))
	}
	for _, io := range loops {
		io.waitRounds(t, 3, 5*time.Second)
	}
	l.inject(t, array.FaultRequest{Kind: array.FaultLogoutRequest, Volume: "vol1", Within: array.Duration(2 * time.Second)})
	var wg sync.WaitGroup
	for _, io := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); io.waitRounds(t, 10, 20*time.Second) }()
	}
	wg.Wait()
	for _, io := range loops {
		io.finish(t, 0)
	}
}
