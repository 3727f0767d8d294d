package blockdev

import (
	"bytes"
	"io"
	mathrand "math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// newPipeServer returns a server with no listener, for driving single
// connections over net.Pipe.
func newPipeServer(dev Device) *NBDServer {
	l := logrus.New()
	l.SetOutput(io.Discard)
	opts := NBDOptions{Logger: l}
	opts.setDefaults()
	return &NBDServer{
		io:    newBlockIO(dev),
		opts:  opts,
		log:   l,
		flags: transmissionFlags(dev),
		conns: map[*nbdConn]struct{}{},
	}
}

// clientGo is a valid handshake up to and including NBD_OPT_GO for the
// default export.
func clientGo() []byte {
	b := be.AppendUint32(nil, nbdFlagCFixedNewstyle|nbdFlagCNoZeroes)
	b = be.AppendUint64(b, nbdOptMagic)
	b = be.AppendUint32(b, nbdOptGo)
	b = be.AppendUint32(b, 6)
	return append(b, 0, 0, 0, 0, 0, 0)
}

func request(typ, flags uint16, off uint64, length uint32) []byte {
	b := be.AppendUint32(nil, nbdRequestMagic)
	b = be.AppendUint16(b, flags)
	b = be.AppendUint16(b, typ)
	b = be.AppendUint64(b, 42)
	b = be.AppendUint64(b, off)
	return be.AppendUint32(b, length)
}

// FuzzNBDSession feeds arbitrary client bytes to a connection, either from
// the start or after a valid handshake: the server must neither panic nor
// hang, and must send the device only I/O it may see.
func FuzzNBDSession(f *testing.F) {
	f.Add(false, []byte{})
	f.Add(false, clientGo())
	f.Add(false, []byte("GET / HTTP/1.0\r\n\r\n"))
	f.Add(true, append(request(nbdCmdWrite, 0, 512, 4), 1, 2, 3, 4))
	f.Add(true, request(nbdCmdRead, 0, 1000, 700))
	f.Add(true, request(nbdCmdWriteZeroes, nbdCmdFlagNoHole, 100, 5000))
	f.Add(true, request(nbdCmdTrim, nbdCmdFlagFUA, 0, 1<<20))
	f.Add(true, request(nbdCmdFlush, 0, 0, 0))
	f.Add(true, request(nbdCmdDisc, 0, 0, 0))
	f.Add(true, request(nbdCmdWrite, 0, 0, 1<<30))
	f.Fuzz(func(t *testing.T, handshake bool, data []byte) {
		dev := newMemDevice(64<<10, 512)
		srv := newPipeServer(dev)
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() {
			newNBDConn(srv, server, 1).serve()
			close(done)
		}()
		go io.Copy(io.Discard, client)
		if handshake {
			data = append(clientGo(), data...)
		}
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not end after the client closed")
		}
		dev.checkContract(t)
	})
}

func FuzzParseInfoRequest(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 2, 'v', '1', 0, 2, 0, 1, 0, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		name, reqs, err := parseInfoRequest(data)
		if err != nil {
			return
		}
		enc := be.AppendUint32(nil, uint32(len(name)))
		enc = append(enc, name...)
		enc = be.AppendUint16(enc, uint16(len(reqs)))
		for _, r := range reqs {
			enc = be.AppendUint16(enc, r)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("decoded %q %v, which encodes differently", name, reqs)
		}
	})
}

// FuzzBlockIO runs a sequence of byte-range operations through blockIO and
// through a plain byte slice, and compares: read-modify-write must neither
// lose nor invent data, and the device must only see whole blocks.
func FuzzBlockIO(f *testing.F) {
	f.Add(false, []byte{0, 1, 0, 7, 0, 3, 1, 0, 0, 0, 0, 0, 2})
	f.Add(true, []byte{2, 0, 10, 0, 0, 80, 3, 1, 0, 0, 16, 0, 1, 0, 200, 0, 0, 9})
	f.Fuzz(checkBlockIOOps)
}

// checkBlockIOOps decodes ops as 5-byte operations (kind, offset, length)
// and checks each against the model.
func checkBlockIOOps(t *testing.T, bigBlocks bool, ops []byte) {
	bs := 512
	if bigBlocks {
		bs = 4096
	}
	const size = 64 << 10
	dev := newMemDevice(size, bs)
	b := newBlockIO(dev)
	model := make([]byte, size)
	for i := 0; len(ops) >= 5; i++ {
		kind := ops[0] % 4
		off := int64(be.Uint16(ops[1:])) * 3 % (size + 100)
		n := int64(be.Uint16(ops[3:])) % (3 * int64(bs))
		ops = ops[5:]
		inRange := off+n <= size
		var err error
		switch kind {
		case 0:
			got := make([]byte, n)
			if err = b.readAt(got, off); err == nil && !bytes.Equal(got, model[off:off+n]) {
				t.Fatalf("op %d: read %d@%d differs from the model", i, n, off)
			}
		case 1:
			p := bytes.Repeat([]byte{byte(i + 1)}, int(n))
			if err = b.writeAt(p, off, i%2 == 0); err == nil {
				copy(model[off:], p)
			}
		case 2:
			if err = b.zero(off, n, i%2 == 0, false); err == nil {
				clear(model[off : off+n])
			}
		case 3:
			if err = b.trim(off, n); err == nil {
				first, last := b.interior(off, n)
				if first < last {
					clear(model[first:last])
				}
			}
		}
		if (err == nil) != inRange {
			t.Fatalf("op %d (kind %d, %d@%d): err %v, in range %v", i, kind, n, off, err, inRange)
		}
	}
	if !bytes.Equal(dev.snapshot(), model) {
		t.Fatal("device differs from the model")
	}
	dev.checkContract(t)
}

// TestBlockIORandom runs FuzzBlockIO's check on a fixed set of random
// sequences, so that every test run exercises read-modify-write broadly.
func TestBlockIORandom(t *testing.T) {
	r := mathrand.New(mathrand.NewPCG(1, 2))
	for range 500 {
		ops := make([]byte, 5*r.IntN(40))
		for i := range ops {
			ops[i] = byte(r.Uint32())
		}
		checkBlockIOOps(t, r.IntN(2) == 0, ops)
	}
}
