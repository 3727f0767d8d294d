package mpio

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/internal/peer"
	"github.com/sirupsen/logrus"
)

// faultProxy forwards TCP connections from a loopback port to a target
// portal. Down plays a port going down: it closes every proxied connection
// and refuses new ones (accepts and closes them) until Up.
type faultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.Down()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(c, up) })
		p.wg.Go(func() { p.pipe(up, c) })
	}
}

// pipe copies one way; when either side ends, both connections close.
func (p *faultProxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
	dst.Close()
	src.Close()
}

// Down closes every proxied connection and refuses new ones.
func (p *faultProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Up accepts and forwards connections again.
func (p *faultProxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestTgtdTwoPortals multipaths one tgtd LU over its two loopback portals,
// path 2 through a fault proxy. With the proxy's port down under a verify
// workload (and then under fio over NBD), the application sees no error,
// the path fails, and it is reinstated once the port is back.
func TestTgtdTwoPortals(t *testing.T) {
	tg := peer.StartTgtd(t, peer.Options{Portals: 2})
	proxy := startProxy(t, tg.Portals[1])
	d := openDevice(t, Config{
		Session: initiator.Config{Portal: tg.Portals[0], TargetName: tg.IQN, Log: logrus.NewEntry(quietLogger())},
		LUN:     tg.LUN,
		Paths:   []PathSpec{{Portal: tg.Portals[0]}, {Portal: proxy.Addr()}},
		Log:     testLog(t),
	})
	st := d.Status()
	if len(st.Paths) != 2 || st.Size != 64<<20 || !allActive(d) {
		t.Fatalf("status %+v: want two paths in service to a 64 MiB unit", st)
	}
	proxied := st.Paths[1]
	if proxied.Remote != proxy.Addr() {
		t.Fatalf("path %d is on %s, want the proxy %s; %s", proxied.ID, proxied.Remote, proxy.Addr(), describe(d))
	}

	// portDown takes the proxy's port down until the path has failed and
	// cannot log in again, then brings it back and waits for the path.
	portDown := func(t *testing.T, during func()) (detect, back time.Duration) {
		before := pathByID(d, proxied.ID)
		proxy.Down()
		detect = waitFor(t, 4*time.Second, "the proxied path failed", func() bool {
			p := pathByID(d, proxied.ID)
			return p.Errors > before.Errors && p.State != StateActive
		})
		during()
		if p := pathByID(d, proxied.ID); p.State == StateActive {
			t.Errorf("path %d is active with its port down: %s", p.ID, describe(d))
		}
		proxy.Up()
		back = waitFor(t, 10*time.Second, "the proxied path reinstated", func() bool { return allActive(d) })
		return detect, back
	}

	t.Run("verify workload", func(t *testing.T) {
		w := startWorkload(d)
		defer w.finish(t)
		w.progress(t, 20, 10*time.Second)
		w.resetSlowest()
		detect, back := portDown(t, func() { w.progress(t, 50, 10*time.Second) })
		w.progress(t, 50, 10*time.Second)
		t.Logf("port down: path failed after %v, reinstated %v after the port came back; longest verify round %v; %s",
			detect.Round(time.Millisecond), back.Round(time.Millisecond), w.stall().Round(time.Millisecond), describe(d))
	})

	t.Run("fio over NBD", func(t *testing.T) {
		requireTool(t, "fio")
		srv := serveNBD(t, d)
		base := completed(d)
		begin := time.Now()
		var detect time.Duration
		jobs := fioVerify(t, srv.URI(), func() bool { return completed(d) > base+32 }, func() {
			before := pathByID(d, proxied.ID)
			proxy.Down()
			detect = waitFor(t, 4*time.Second, "the proxied path failed", func() bool {
				return pathByID(d, proxied.ID).Errors > before.Errors
			})
		})
		took := time.Since(begin)
		proxy.Up()
		back := waitFor(t, 10*time.Second, "the proxied path reinstated", func() bool { return allActive(d) })
		t.Logf("fio verified %d+%d writes in %v with port %s down (path failed after %v), reinstated %v after; %s",
			jobs[0].Write.IOs, jobs[1].Write.IOs, took.Round(time.Millisecond), tg.Portals[1],
			detect.Round(time.Millisecond), back.Round(time.Millisecond), describe(d))
	})
}
