package blockdev

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// testClient is a minimal NBD client that lets tests send exactly the
// bytes they mean, well-formed or not.
type testClient struct {
	t   testing.TB
	nc  net.Conn
	br  *bufio.Reader
	seq uint64
}

func dialNBD(t testing.TB, path string) *testClient {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &testClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// connectNBD dials, negotiates and selects the export with NBD_OPT_GO.
func connectNBD(t testing.TB, path, export string) (*testClient, uint16) {
	t.Helper()
	c := dialNBD(t, path)
	c.hello(nbdFlagCFixedNewstyle | nbdFlagCNoZeroes)
	_, flags, err := c.goExport(nbdOptGo, export, nil)
	if err != nil {
		t.Fatalf("NBD_OPT_GO: %v", err)
	}
	return c, flags
}

func (c *testClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write to server: %v", err)
	}
}

func (c *testClient) readFull(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read from server: %v", err)
	}
	return b
}

// hello reads the server's greeting and sends the client flags.
func (c *testClient) hello(clientFlags uint32) uint16 {
	c.t.Helper()
	b := c.readFull(18)
	if be.Uint64(b) != nbdMagic || be.Uint64(b[8:]) != nbdOptMagic {
		c.t.Fatalf("bad greeting % x", b)
	}
	c.write(be.AppendUint32(nil, clientFlags))
	return be.Uint16(b[16:])
}

func (c *testClient) sendOption(opt uint32, data []byte) {
	c.t.Helper()
	b := be.AppendUint64(nil, nbdOptMagic)
	b = be.AppendUint32(b, opt)
	b = be.AppendUint32(b, uint32(len(data)))
	c.write(append(b, data...))
}

func (c *testClient) optReply() (opt, typ uint32, data []byte) {
	c.t.Helper()
	h := c.readFull(20)
	if be.Uint64(h) != nbdOptReplyMagic {
		c.t.Fatalf("bad option reply magic % x", h)
	}
	return be.Uint32(h[8:]), be.Uint32(h[12:]), c.readFull(int(be.Uint32(h[16:])))
}

// goExport sends NBD_OPT_GO or NBD_OPT_INFO and collects the NBD_REP_INFO
// replies by information type.
func (c *testClient) goExport(opt uint32, name string, requests []uint16) (map[uint16][]byte, uint16, error) {
	c.t.Helper()
	data := be.AppendUint32(nil, uint32(len(name)))
	data = append(data, name...)
	data = be.AppendUint16(data, uint16(len(requests)))
	for _, r := range requests {
		data = be.AppendUint16(data, r)
	}
	c.sendOption(opt, data)
	infos := map[uint16][]byte{}
	for {
		o, typ, reply := c.optReply()
		if o != opt {
			c.t.Fatalf("reply to option %d, want %d", o, opt)
		}
		switch {
		case typ == nbdRepAck:
			exp, ok := infos[nbdInfoExport]
			if !ok || len(exp) != 10 {
				return infos, 0, errors.New("no NBD_INFO_EXPORT before the ACK")
			}
			return infos, be.Uint16(exp[8:]), nil
		case typ == nbdRepInfo && len(reply) >= 2:
			infos[be.Uint16(reply)] = reply[2:]
		case typ&(1<<31) != 0:
			return infos, 0, fmt.Errorf("option error %#x: %s", typ, reply)
		default:
			c.t.Fatalf("unexpected option reply type %d", typ)
		}
	}
}

// send writes one request without waiting for its reply.
func (c *testClient) send(typ, flags uint16, off uint64, length uint32, data []byte) uint64 {
	c.t.Helper()
	c.seq++
	b := be.AppendUint32(nil, nbdRequestMagic)
	b = be.AppendUint16(b, flags)
	b = be.AppendUint16(b, typ)
	b = be.AppendUint64(b, c.seq)
	b = be.AppendUint64(b, off)
	b = be.AppendUint32(b, length)
	c.write(append(b, data...))
	return c.seq
}

// recv reads one simple reply; readLens says how many data bytes follow a
// successful reply to each outstanding READ handle.
func (c *testClient) recv(readLens map[uint64]int) (handle uint64, errno uint32, data []byte) {
	c.t.Helper()
	h := c.readFull(nbdReplySize)
	if be.Uint32(h) != nbdSimpleReplyMagic {
		c.t.Fatalf("bad reply magic % x", h)
	}
	handle, errno = be.Uint64(h[8:]), be.Uint32(h[4:])
	if n := readLens[handle]; errno == 0 && n > 0 {
		data = c.readFull(n)
	}
	return handle, errno, data
}

// do sends one request and waits for its reply.
func (c *testClient) do(typ, flags uint16, off uint64, length uint32, data []byte) (uint32, []byte) {
	c.t.Helper()
	h := c.send(typ, flags, off, length, data)
	lens := map[uint64]int{}
	if typ == nbdCmdRead {
		lens[h] = int(length)
	}
	got, errno, reply := c.recv(lens)
	if got != h {
		c.t.Fatalf("reply for handle %d, want %d", got, h)
	}
	return errno, reply
}

// expectClosed waits for the server to close the connection.
func (c *testClient) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c.br)
	if err != nil {
		c.t.Fatalf("connection not closed by the server (read %d bytes): %v", n, err)
	}
}
