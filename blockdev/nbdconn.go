package blockdev

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

var be = binary.BigEndian

var (
	// errProtocol marks a client that broke the protocol; its connection
	// is closed without touching the device.
	errProtocol = errors.New("NBD protocol violation")
	// errUnknownExport ends a connection whose NBD_OPT_EXPORT_NAME names
	// no export: that option has no way to report an error.
	errUnknownExport = errors.New("unknown export name")
	// errClientDone means the client ended the session properly.
	errClientDone = errors.New("client disconnected")
)

// nbdConn is one client connection. A reader goroutine decodes requests
// and starts one goroutine per request; replies are written whole under
// wmu, in completion order.
type nbdConn struct {
	srv      *NBDServer
	nc       net.Conn
	br       *bufio.Reader
	log      logrus.FieldLogger
	noZeroes bool
	inflight *inflight

	wmu  sync.Mutex
	werr error // first failed reply write; later replies are dropped
}

func newNBDConn(s *NBDServer, nc net.Conn, id uint64) *nbdConn {
	return &nbdConn{
		srv:      s,
		nc:       nc,
		br:       bufio.NewReaderSize(nc, 64<<10),
		log:      s.log.WithField("conn", id),
		inflight: newInflight(s.opts.MaxInFlight, s.opts.MaxInFlightBytes),
	}
}

func (c *nbdConn) serve() {
	defer c.nc.Close()
	c.log.Debug("NBD client connected")
	c.srv.setDeadline(c.nc, time.Now().Add(c.srv.opts.HandshakeTimeout))
	next, err := c.handshake()
	if next == optTransmit {
		c.srv.setDeadline(c.nc, time.Time{})
		err = c.transmit()
		c.inflight.wait()
	}
	c.logEnd(err)
}

// logEnd says why the connection ended, loudly only when the client broke
// the protocol or the handshake stalled.
func (c *nbdConn) logEnd(err error) {
	entry := c.log.WithError(err)
	switch {
	case err == nil, errors.Is(err, errClientDone):
		c.log.Debug("NBD client disconnected")
	case errors.Is(err, errProtocol), errors.Is(err, errUnknownExport):
		entry.Warn("closing NBD connection")
	case errors.Is(err, os.ErrDeadlineExceeded) && !c.srv.isClosing():
		c.log.WithField("timeout", c.srv.opts.HandshakeTimeout).Warn("closing NBD connection: handshake timed out")
	default: // hang-ups, resets and server shutdown
		entry.Debug("NBD connection ended")
	}
}

// nbdRequest is a decoded request header.
type nbdRequest struct {
	flags  uint16
	typ    uint16
	handle uint64
	off    uint64
	length uint32
}

// parseRequest decodes and sanity-checks a request header. What it rejects
// cannot be answered, because the stream can no longer be trusted.
func parseRequest(h []byte) (nbdRequest, error) {
	if magic := be.Uint32(h[0:]); magic != nbdRequestMagic {
		return nbdRequest{}, fmt.Errorf("%w: bad request magic %#x", errProtocol, magic)
	}
	r := nbdRequest{
		flags:  be.Uint16(h[4:]),
		typ:    be.Uint16(h[6:]),
		handle: be.Uint64(h[8:]),
		off:    be.Uint64(h[16:]),
		length: be.Uint32(h[24:]),
	}
	if (r.typ == nbdCmdRead || r.typ == nbdCmdWrite) && r.length > nbdMaxPayload {
		return nbdRequest{}, fmt.Errorf("%w: %d-byte %s request exceeds %d", errProtocol, r.length, cmdName(r.typ), nbdMaxPayload)
	}
	return r, nil
}

// payload is the buffer a request needs: its data for WRITE, room for the
// data for READ.
func (r nbdRequest) payload() int {
	if r.typ == nbdCmdRead || r.typ == nbdCmdWrite {
		return int(r.length)
	}
	return 0
}

// transmit reads requests until the client disconnects or breaks the
// protocol; each request runs in its own goroutine.
func (c *nbdConn) transmit() error {
	var h [nbdRequestSize]byte
	for {
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return err
		}
		req, err := parseRequest(h[:])
		if err != nil {
			return err
		}
		if req.typ == nbdCmdDisc {
			return errClientDone
		}
		size := req.payload()
		c.inflight.acquire(int64(size))
		buf := getBuf(size)
		if req.typ == nbdCmdWrite {
			if _, err := io.ReadFull(c.br, buf); err != nil {
				putBuf(buf)
				c.inflight.release(int64(size))
				return err
			}
		}
		go c.execute(req, buf)
	}
}

func (c *nbdConn) execute(req nbdRequest, buf []byte) {
	defer c.inflight.release(int64(len(buf)))
	defer putBuf(buf)
	data, errno, err := c.run(req, buf)
	if err != nil {
		entry := c.log.WithFields(logrus.Fields{
			"cmd": cmdName(req.typ), "offset": req.off, "length": req.length, "errno": errno,
		}).WithError(err)
		if errno == nbdEIO {
			entry.Warn("NBD request failed")
		} else {
			entry.Debug("NBD request refused")
		}
	}
	c.reply(req.handle, errno, data)
}

// run performs one request on the device. It returns the data to send
// back, the NBD error number, and the error behind it for the log.
func (c *nbdConn) run(req nbdRequest, buf []byte) ([]byte, uint32, error) {
	// FUA is accepted on every command; it means nothing to READ and FLUSH.
	fua := req.flags&nbdCmdFlagFUA != 0
	allowed := uint16(nbdCmdFlagFUA)
	if req.typ == nbdCmdWriteZeroes {
		allowed |= nbdCmdFlagNoHole
	}
	if req.flags&^allowed != 0 {
		return nil, nbdEINVAL, fmt.Errorf("unsupported command flags %#x", req.flags)
	}
	if req.off > math.MaxInt64 {
		return nil, nbdEINVAL, errOutOfRange
	}
	off, n := int64(req.off), int64(req.length)
	write := req.typ == nbdCmdWrite || req.typ == nbdCmdTrim || req.typ == nbdCmdWriteZeroes
	if write && c.srv.flags&nbdFlagReadOnly != 0 {
		return nil, nbdEPERM, errors.New("device is read-only")
	}
	var err error
	switch req.typ {
	case nbdCmdRead:
		if err = c.srv.io.readAt(buf, off); err == nil {
			return buf, 0, nil
		}
	case nbdCmdWrite:
		err = c.srv.io.writeAt(buf, off, fua)
	case nbdCmdFlush:
		err = c.srv.io.sync()
	case nbdCmdTrim:
		if err = c.srv.io.trim(off, n); err == nil {
			err = c.srv.io.syncIf(fua)
		}
	case nbdCmdWriteZeroes:
		err = c.srv.io.zero(off, n, req.flags&nbdCmdFlagNoHole == 0, fua)
	default:
		return nil, nbdEINVAL, fmt.Errorf("unknown command %d", req.typ)
	}
	return nil, errnoFor(req.typ, err), err
}

// errnoFor maps a failure to the error a client should see: the protocol
// asks for ENOSPC on writes past the end and EINVAL on other bad ranges;
// anything the device reports is EIO unless it is out of space.
func errnoFor(typ uint16, err error) uint32 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errOutOfRange) && (typ == nbdCmdWrite || typ == nbdCmdWriteZeroes):
		return nbdENOSPC
	case errors.Is(err, errOutOfRange):
		return nbdEINVAL
	case errors.Is(err, syscall.ENOSPC):
		return nbdENOSPC
	default:
		return nbdEIO
	}
}

// reply sends a simple reply. A failed write breaks the connection: it is
// closed, which also stops the reader.
func (c *nbdConn) reply(handle uint64, errno uint32, data []byte) {
	var h [nbdReplySize]byte
	be.PutUint32(h[0:], nbdSimpleReplyMagic)
	be.PutUint32(h[4:], errno)
	be.PutUint64(h[8:], handle)
	bufs := net.Buffers{h[:], data}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	if _, err := bufs.WriteTo(c.nc); err != nil {
		c.werr = err
		c.log.WithError(err).Debug("NBD reply not delivered")
		c.nc.Close()
	}
}

func cmdName(typ uint16) string {
	switch typ {
	case nbdCmdRead:
		return "read"
	case nbdCmdWrite:
		return "write"
	case nbdCmdDisc:
		return "disc"
	case nbdCmdFlush:
		return "flush"
	case nbdCmdTrim:
		return "trim"
	case nbdCmdWriteZeroes:
		return "write_zeroes"
	default:
		return fmt.Sprintf("cmd%d", typ)
	}
}

// inflight bounds one connection's requests in flight, by count and by
// payload bytes, and lets the connection wait for them to finish.
type inflight struct {
	mu       sync.Mutex
	cond     sync.Cond
	n, maxN  int
	bytes    int64
	maxBytes int64
}

func newInflight(maxN int, maxBytes int64) *inflight {
	l := &inflight{maxN: maxN, maxBytes: maxBytes}
	l.cond.L = &l.mu
	return l
}

// acquire waits for room. A request larger than the byte budget still
// runs, alone.
func (l *inflight) acquire(size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.n >= l.maxN || (l.n > 0 && l.bytes+size > l.maxBytes) {
		l.cond.Wait()
	}
	l.n++
	l.bytes += size
}

func (l *inflight) release(size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	l.bytes -= size
	l.cond.Broadcast()
}

func (l *inflight) wait() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.n > 0 {
		l.cond.Wait()
	}
}
