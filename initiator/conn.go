package initiator

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// conn is one logged-in TCP connection of a session.
type conn struct {
	s      *Session
	nc     net.Conn
	fr     *iscsi.Framer
	portal string // the address it is connected to, after redirects
	params iscsi.Params
	log    *logrus.Entry

	// Writers hold wmu to frame a PDU into batch; see unlockWriter.
	wmu   sync.Mutex
	batch batch
	wbhs  iscsi.BHS // scratch header, under wmu

	expStatSN atomic.Uint32
	lastRecv  atomic.Int64 // unix nanoseconds

	// The keepalive's outstanding ping, if any.
	pingITT  atomic.Uint32
	pingSent atomic.Int64

	warnedBurst atomic.Bool // the target exceeded MaxBurstLength once
	loggedOut   atomic.Bool // a Logout Response arrived

	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed when the reader has exited
}

func newConn(s *Session, nc net.Conn, portal string) *conn {
	c := &conn{
		s: s, nc: nc, portal: portal,
		log:  s.log.WithField("portal", portal),
		done: make(chan struct{}),
	}
	c.batch.direct = true // until the login is done
	c.fr = iscsi.NewFramer(nc, &c.batch, 512<<10)
	c.batch.nc = nc
	c.lastRecv.Store(time.Now().UnixNano())
	c.pingITT.Store(iscsi.ReservedTag)
	return c
}

// close drops the connection. The reader notices, and hands the tasks sent
// on it back to their callers for a retry.
func (c *conn) close(err error) {
	c.closeOnce.Do(func() {
		c.closeErr = err
		c.nc.Close()
	})
}

// write sends one PDU.
func (c *conn) write(hdr iscsi.Header, data []byte) error {
	c.lockWriter()
	err := c.writeLocked(hdr, data)
	return c.unlockWriter(err)
}

func (c *conn) lockWriter() { c.wmu.Lock() }

func (c *conn) writeLocked(hdr iscsi.Header, data []byte) error {
	hdr.Marshal(&c.wbhs)
	return c.fr.WritePDU(&c.wbhs, nil, data)
}

// unlockWriter moves the framed PDU into the batch and, unless another
// writer is already sending, sends the batch. Writers never wait for a
// write syscall: while one is in it, the others append and leave, and
// their PDUs go out together in its next write. It drops the connection
// on a write error.
func (c *conn) unlockWriter(err error) error {
	if err == nil {
		err = c.fr.Flush()
	}
	if err == nil && !c.batch.sending {
		err = c.sendBatch()
	}
	c.wmu.Unlock()
	if err != nil {
		c.close(err)
	}
	return err
}

// sendBatch writes the batch until it stays empty. It is called with wmu
// held, and drops it around each write.
func (c *conn) sendBatch() error {
	b := &c.batch
	b.sending = true
	defer func() { b.sending = false }()
	for len(b.pending) > 0 {
		out := b.pending
		b.pending = b.spare[:0]
		c.wmu.Unlock()
		_, err := c.nc.Write(out)
		c.wmu.Lock()
		b.spare = out[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// batch collects framed PDUs from many writers. During login, when one
// goroutine talks to the target, writes go straight to the socket.
type batch struct {
	nc             net.Conn
	direct         bool
	sending        bool
	pending, spare []byte
}

func (b *batch) Write(p []byte) (int, error) {
	if b.direct {
		return b.nc.Write(p)
	}
	b.pending = append(b.pending, p...)
	return len(p), nil
}

// ackStatSN records a status-bearing PDU, so that the next PDU we send
// acknowledges it.
func (c *conn) ackStatSN(sn uint32) {
	for {
		exp := c.expStatSN.Load()
		if iscsi.SerialLess(sn, exp) || c.expStatSN.CompareAndSwap(exp, sn+1) {
			return
		}
	}
}

// keepalive pings when nothing has arrived for the NOP interval, and
// drops the connection when a ping goes unanswered for the NOP timeout. This
// is what notices a silent blackhole, where TCP itself would wait minutes.
func (c *conn) keepalive(interval, timeout time.Duration) {
	tick := time.NewTicker(max(interval/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-tick.C:
			if c.pingITT.Load() != iscsi.ReservedTag {
				if now.Sub(time.Unix(0, c.pingSent.Load())) > timeout {
					c.log.Warn("target stopped answering pings; dropping the connection")
					c.close(ErrNopTimeout)
					return
				}
				continue
			}
			if now.Sub(time.Unix(0, c.lastRecv.Load())) > interval {
				c.ping()
			}
		}
	}
}

func (c *conn) ping() {
	itt, cmdSN := c.s.pingTag()
	c.pingSent.Store(time.Now().UnixNano())
	c.pingITT.Store(itt)
	c.write(&iscsi.NopOut{
		Immediate: true, InitiatorTaskTag: itt, TargetTransferTag: iscsi.ReservedTag,
		CmdSN: cmdSN, ExpStatSN: c.expStatSN.Load(),
	}, nil)
}
