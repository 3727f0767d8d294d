package target

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// framerBuffer is the size of each connection's read and write buffers.
const framerBuffer = 64 << 10

// taskDrainTimeout bounds how long a closing connection waits for its
// units to return from Execute after their context was cancelled.
const taskDrainTimeout = 30 * time.Second

// conn is one TCP connection: its login, then its full feature phase. One
// goroutine reads; commands run on goroutines of their own; writers take
// turns on the Framer, and the last one in line flushes.
type conn struct {
	srv    *Server
	portal *portal
	nc     net.Conn
	fr     *iscsi.Framer
	log    logrus.FieldLogger
	remote netip.AddrPort

	ctx    context.Context // parents every task; cancelled on close
	cancel context.CancelFunc

	wmu        sync.Mutex
	writers    atomic.Int32
	wbhs       iscsi.BHS // guarded by wmu
	statSN     uint32    // guarded by wmu
	writesDone bool      // guarded by wmu: nothing follows a logout response

	// sess is set at the end of login, before any other goroutine uses
	// the connection. loginCmdSN is the window's base until then.
	sess       *session
	loginCmdSN uint32
	cid        uint16

	// Reader-only state.
	text textState

	lastTTT  atomic.Uint32
	tasks    sync.WaitGroup // command goroutines
	lastRecv atomic.Int64   // unix nanoseconds
	ping     atomic.Uint32  // TTT of the outstanding ping, or ReservedTag
	pingSent atomic.Int64

	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed by close
	finished  chan struct{} // closed when serve has cleaned up
}

func newConn(p *portal, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	remote, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	c := &conn{
		srv: p.srv, portal: p, nc: nc, remote: remote,
		fr:  iscsi.NewFramer(nc, nc, framerBuffer),
		log: p.log.WithField("remote", nc.RemoteAddr().String()),
		ctx: ctx, cancel: cancel, statSN: 1,
		done: make(chan struct{}), finished: make(chan struct{}),
	}
	c.ping.Store(iscsi.ReservedTag)
	c.text = textState{itt: iscsi.ReservedTag, ttt: iscsi.ReservedTag}
	c.lastRecv.Store(time.Now().UnixNano())
	return c
}

// close drops the connection; the reader notices and cleans up.
func (c *conn) close(err error) {
	c.closeOnce.Do(func() {
		c.closeErr = err
		c.nc.Close()
		c.cancel()
		close(c.done)
	})
}

func (c *conn) closing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// serve runs the connection to its end.
func (c *conn) serve() {
	defer c.srv.wg.Done()
	defer c.cleanup()
	defer func() {
		if r := recover(); r != nil {
			c.log.WithField("panic", r).Errorf("internal error; dropping the connection\n%s", debug.Stack())
			c.close(fmt.Errorf("internal error: %v", r))
		}
	}()
	if err := c.login(); err != nil {
		c.close(err)
		return
	}
	if c.srv.cfg.NopInterval > 0 {
		c.tasks.Add(1)
		go c.keepalive()
	}
	err := c.readLoop()
	c.close(err)
	if err := c.closeErr; err != nil && !isQuietClose(err) {
		c.log.WithError(err).Warn("connection dropped")
	} else {
		c.log.Debug("connection closed")
	}
}

// cleanup waits for the connection's commands to end and forgets it.
func (c *conn) cleanup() {
	drained := make(chan struct{})
	go func() { c.tasks.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(taskDrainTimeout):
		c.log.Error("a logical unit ignores cancellation; giving up waiting for its commands")
	}
	if c.sess != nil {
		c.srv.unregister(c.sess)
		c.sess.log.Info("session ended")
	}
	c.portal.remove(c)
	close(c.finished)
}

var errLoggedOut = errors.New("logged out")

// isQuietClose tells ordinary ends of a connection from failures worth a
// warning.
func isQuietClose(err error) bool {
	return errors.Is(err, errLoggedOut) || errors.Is(err, io.EOF) || errors.Is(err, errServerClosing) ||
		errors.Is(err, net.ErrClosed)
}

// readLoop reads and dispatches PDUs until the connection ends.
func (c *conn) readLoop() error {
	var h iscsi.BHS
	for {
		if err := c.waitPassable(); err != nil {
			return err
		}
		ahs, err := c.fr.ReadHeader(&h)
		if err != nil {
			return c.readError(&h, err)
		}
		if err := c.waitPassable(); err != nil {
			return err
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if err := c.dispatch(&h, ahs); err != nil {
			return c.readError(&h, err)
		}
	}
}

// waitPassable holds the reader while the portal is blackholed.
func (c *conn) waitPassable() error {
	select {
	case <-c.portal.passable():
		return nil
	case <-c.done:
		return c.closeErr
	}
}

// readError turns a read failure into the reason the connection ends,
// answering a data digest error with a Reject first (RFC 7143 section
// 7.8: at ErrorRecoveryLevel 0 the connection is then dropped).
func (c *conn) readError(h *iscsi.BHS, err error) error {
	if c.closing() {
		return c.closeErr
	}
	if errors.Is(err, iscsi.ErrDataDigest) {
		c.reject(h, iscsi.RejectDataDigest)
	}
	return err
}

func (c *conn) dispatch(h *iscsi.BHS, ahs []byte) error {
	switch h.Opcode() {
	case iscsi.OpNopOut:
		return c.handleNopOut(h)
	case iscsi.OpSCSICommand:
		return c.handleCommand(h, ahs)
	case iscsi.OpDataOut:
		return c.handleDataOut(h)
	case iscsi.OpTaskMgmtReq:
		return c.handleTMF(h)
	case iscsi.OpTextReq:
		return c.handleText(h)
	case iscsi.OpLogoutReq:
		return c.handleLogout(h)
	case iscsi.OpSNACKReq:
		// ErrorRecoveryLevel 0 has no retransmission to offer.
		return c.rejectAndDiscard(h, iscsi.RejectSNACK)
	case iscsi.OpLoginReq:
		return c.rejectAndDiscard(h, iscsi.RejectProtocolError)
	default:
		c.log.WithField("opcode", h.Opcode().String()).Warn("rejecting an unknown opcode")
		return c.rejectAndDiscard(h, iscsi.RejectNotSupported)
	}
}

// rejectAndDiscard skips the PDU's data and answers it with a Reject.
func (c *conn) rejectAndDiscard(h *iscsi.BHS, reason uint8) error {
	if err := c.fr.DiscardData(h); err != nil {
		return err
	}
	c.reject(h, reason)
	return nil
}

// reject sends a Reject carrying a copy of the offending header.
func (c *conn) reject(h *iscsi.BHS, reason uint8) {
	hdr := *h
	c.write(&iscsi.Reject{Reason: reason, DataSN: 0}, hdr[:], true)
}

// window is the command window to advertise.
func (c *conn) window() (exp, max uint32) {
	if c.sess != nil {
		return c.sess.window()
	}
	return c.loginCmdSN, c.loginCmdSN + uint32(c.srv.cfg.QueueDepth) - 1
}

// write sends one PDU. status marks PDUs that carry a StatSN and advance it.
func (c *conn) write(hdr iscsi.Header, data []byte, status bool) error {
	c.lockWrite()
	err := c.writeLocked(hdr, data, status)
	return c.unlockWrite(err)
}

func (c *conn) lockWrite() {
	c.writers.Add(1)
	c.wmu.Lock()
}

// unlockWrite flushes when no other writer waits, so that a burst of
// responses leaves in few segments, and drops the connection on error.
func (c *conn) unlockWrite(err error) error {
	if c.writers.Add(-1) == 0 && err == nil {
		err = c.fr.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		c.close(err)
	}
	return err
}

// writeLocked marshals hdr into the connection's header buffer and sends it.
func (c *conn) writeLocked(hdr iscsi.Header, data []byte, status bool) error {
	hdr.Marshal(&c.wbhs)
	return c.sendLocked(data, status)
}

// sendLocked stamps c.wbhs with StatSN and the command window and buffers
// it. A blackholed portal swallows everything.
func (c *conn) sendLocked(data []byte, status bool) error {
	if c.writesDone || c.portal.blackholed() {
		return nil
	}
	exp, max := c.window()
	binary.BigEndian.PutUint32(c.wbhs[24:], c.statSN)
	binary.BigEndian.PutUint32(c.wbhs[28:], exp)
	binary.BigEndian.PutUint32(c.wbhs[32:], max)
	if status {
		c.statSN++
	}
	return c.fr.WritePDU(&c.wbhs, nil, data)
}

// delay applies the portal's injected response latency.
func (c *conn) delay() {
	d := c.portal.responseDelay()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.done:
	}
}

// newTTT returns a target transfer tag that is never ReservedTag.
func (c *conn) newTTT() uint32 {
	for {
		if t := c.lastTTT.Add(1); t != iscsi.ReservedTag {
			return t
		}
	}
}
