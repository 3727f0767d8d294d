package blockdev

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// quietLogger keeps expected warnings out of the test output unless -v.
func quietLogger(t testing.TB) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return l.WithField("test", t.Name())
}

func serveTest(t *testing.T, dev Device, opts NBDOptions) *NBDServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	srv, err := ServeNBD(dev, filepath.Join(t.TempDir(), "nbd.sock"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

type nbdinfoExport struct {
	Name         string `json:"export-name"`
	Description  string `json:"description"`
	Size         int64  `json:"export-size"`
	ReadOnly     bool   `json:"is_read_only"`
	CanFlush     bool   `json:"can_flush"`
	CanFUA       bool   `json:"can_fua"`
	CanTrim      bool   `json:"can_trim"`
	CanZero      bool   `json:"can_zero"`
	CanMultiConn bool   `json:"can_multi_conn"`
	MinBlock     int    `json:"block_size_minimum"`
	PreferredBlk int    `json:"block_size_preferred"`
	MaxBlock     int    `json:"block_size_maximum"`
}

func nbdinfo(t *testing.T, args ...string) nbdinfoExport {
	t.Helper()
	var info struct {
		Protocol string          `json:"protocol"`
		Exports  []nbdinfoExport `json:"exports"`
	}
	out := run(t, "nbdinfo", append([]string{"--json"}, args...)...)
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("nbdinfo output: %v\n%s", err, out)
	}
	if info.Protocol != "newstyle-fixed" || len(info.Exports) != 1 {
		t.Fatalf("nbdinfo: protocol %q, %d exports\n%s", info.Protocol, len(info.Exports), out)
	}
	return info.Exports[0]
}

func TestNBDInfo(t *testing.T) {
	requireTool(t, "nbdinfo")
	dev := newMemDevice(64<<20, 512)
	srv := serveTest(t, dev, NBDOptions{ExportName: "vol1", Description: "test volume"})

	got := nbdinfo(t, srv.URI())
	want := nbdinfoExport{
		Description: "test volume", Size: 64 << 20,
		CanFlush: true, CanFUA: true, CanTrim: true, CanZero: true, CanMultiConn: true,
		MinBlock: 512, PreferredBlk: 4096, MaxBlock: 32 << 20,
	}
	if got != want {
		t.Errorf("nbdinfo default export:\n got %+v\nwant %+v", got, want)
	}
	if named := nbdinfo(t, srv.ExportURI("vol1")); named.Size != 64<<20 || named.Name != "vol1" {
		t.Errorf("nbdinfo named export: %+v", named)
	}
	if listed := nbdinfo(t, "--list", srv.URI()); listed.Name != "vol1" {
		t.Errorf("nbdinfo --list: %+v", listed)
	}
	if _, err := exec.LookPath("qemu-img"); err == nil {
		var img struct {
			Size int64 `json:"virtual-size"`
		}
		out := run(t, "qemu-img", "info", "--output=json", srv.URI())
		if err := json.Unmarshal(out, &img); err != nil || img.Size != 64<<20 {
			t.Errorf("qemu-img info: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command("nbdinfo", srv.ExportURI("nope")).CombinedOutput(); err == nil {
		t.Errorf("nbdinfo on an unknown export succeeded:\n%s", out)
	}

	fi, err := os.Stat(srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if n := dev.writes.Load() + dev.unmaps.Load(); n != 0 {
		t.Errorf("nbdinfo caused %d writes or unmaps", n)
	}
}

func TestNBDInfoReadOnly(t *testing.T) {
	requireTool(t, "nbdinfo")
	dev := newMemDevice(8<<20, 4096)
	dev.readOnly = true
	got := nbdinfo(t, serveTest(t, dev, NBDOptions{}).URI())
	if !got.ReadOnly || got.CanTrim || got.CanZero || got.CanFUA || got.MinBlock != 4096 || got.Size != 8<<20 {
		t.Errorf("read-only export: %+v", got)
	}
}

func TestNBDCopyRoundTrip(t *testing.T) {
	requireTool(t, "nbdcopy")
	dev := newMemDevice(16<<20, 512)
	srv := serveTest(t, dev, NBDOptions{})
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	data := make([]byte, 16<<20)
	rand.Read(data)
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}

	run(t, "nbdcopy", "--flush", in, srv.URI())
	if !bytes.Equal(dev.snapshot(), data) {
		t.Fatal("device content differs from the file copied in")
	}
	if dev.syncs.Load() == 0 {
		t.Error("nbdcopy --flush did not reach Device.Sync")
	}
	run(t, "nbdcopy", srv.URI(), out)
	back, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data) {
		t.Fatal("bytes copied out differ from the bytes copied in")
	}
	dev.checkContract(t)
}

func TestNBDFio(t *testing.T) {
	requireTool(t, "fio")
	dev := newMemDevice(64<<20, 512)
	srv := serveTest(t, dev, NBDOptions{})
	// Two jobs, two connections, each verifying its own 32 MiB half.
	out := run(t, "fio", "--name=nbd", "--ioengine=nbd", "--uri="+srv.URI(),
		"--rw=randrw", "--verify=crc32c", "--bs=4k", "--size=32m", "--offset_increment=32m",
		"--iodepth=16", "--numjobs=2", "--verify_state_save=0", "--output-format=json")
	var res struct {
		Jobs []struct {
			Name  string `json:"jobname"`
			Error int    `json:"error"`
			Read  struct {
				IOs int64 `json:"total_ios"`
			} `json:"read"`
			Write struct {
				IOs int64 `json:"total_ios"`
			} `json:"write"`
		} `json:"jobs"`
	}
	start := bytes.IndexByte(out, '{') // fio may print notes before the JSON
	if start < 0 || json.Unmarshal(out[start:], &res) != nil || len(res.Jobs) != 2 {
		t.Fatalf("fio output:\n%s", out)
	}
	for _, j := range res.Jobs {
		if j.Error != 0 || j.Read.IOs == 0 || j.Write.IOs == 0 {
			t.Errorf("fio job %s: error %d, %d reads, %d writes", j.Name, j.Error, j.Read.IOs, j.Write.IOs)
		}
	}
	dev.checkContract(t)
}

// TestNBDCommands drives every command with the test client and checks
// what reaches the device.
func TestNBDCommands(t *testing.T) {
	dev := newMemDevice(1<<20, 4096)
	srv := serveTest(t, dev, NBDOptions{})
	c, flags := connectNBD(t, srv.SocketPath(), "")
	wantFlags := uint16(nbdFlagHasFlags | nbdFlagSendFlush | nbdFlagSendFUA | nbdFlagSendTrim |
		nbdFlagSendWriteZeroes | nbdFlagCanMultiConn)
	if flags != wantFlags {
		t.Fatalf("transmission flags %#x, want %#x", flags, wantFlags)
	}

	block := bytes.Repeat([]byte{0xab}, 8192)
	if errno, _ := c.do(nbdCmdWrite, 0, 4096, 8192, block); errno != 0 {
		t.Fatalf("write: errno %d", errno)
	}
	if errno, got := c.do(nbdCmdRead, 0, 4096, 8192, nil); errno != 0 || !bytes.Equal(got, block) {
		t.Fatalf("read back: errno %d, equal %v", errno, bytes.Equal(got, block))
	}

	syncs := dev.syncs.Load()
	if errno, _ := c.do(nbdCmdFlush, 0, 0, 0, nil); errno != 0 || dev.syncs.Load() != syncs+1 {
		t.Errorf("flush: errno %d, syncs %d -> %d", errno, syncs, dev.syncs.Load())
	}

	fuas := dev.fuas.Load()
	if errno, _ := c.do(nbdCmdWrite, nbdCmdFlagFUA, 0, 4096, block[:4096]); errno != 0 || dev.fuas.Load() != fuas+1 {
		t.Errorf("FUA write: errno %d, WriteAtFUA calls %d -> %d", errno, fuas, dev.fuas.Load())
	}

	// TRIM: only the whole blocks inside the range are unmapped.
	if errno, _ := c.do(nbdCmdTrim, 0, 128<<10+100, 3*4096, nil); errno != 0 {
		t.Fatalf("trim: errno %d", errno)
	}
	if dev.unmaps.Load() != 1 || dev.unmapped.Load() != 2*4096 {
		t.Errorf("trim: %d unmaps of %d bytes, want 1 of 8192", dev.unmaps.Load(), dev.unmapped.Load())
	}

	// WRITE_ZEROES without NO_HOLE unmaps; with it, zeroes are written.
	c.do(nbdCmdWrite, 0, 65536, 8192, block)
	if errno, _ := c.do(nbdCmdWriteZeroes, 0, 65536, 8192, nil); errno != 0 || dev.unmaps.Load() != 2 {
		t.Errorf("write zeroes: errno %d, unmaps %d", errno, dev.unmaps.Load())
	}
	c.do(nbdCmdWrite, 0, 65536, 8192, block)
	writes := dev.writes.Load()
	if errno, _ := c.do(nbdCmdWriteZeroes, nbdCmdFlagNoHole, 65536, 8192, nil); errno != 0 ||
		dev.unmaps.Load() != 2 || dev.writes.Load() == writes {
		t.Errorf("write zeroes NO_HOLE: errno %d, unmaps %d, writes %d -> %d", errno, dev.unmaps.Load(), writes, dev.writes.Load())
	}
	if _, got := c.do(nbdCmdRead, 0, 65536, 8192, nil); !bytes.Equal(got, make([]byte, 8192)) {
		t.Error("range not zero after WRITE_ZEROES")
	}

	// Unaligned I/O is served by read-modify-write; the device only ever
	// sees whole blocks.
	odd := []byte("unaligned write across a block boundary")
	if errno, _ := c.do(nbdCmdWrite, 0, 8192-10, uint32(len(odd)), odd); errno != 0 {
		t.Fatalf("unaligned write: errno %d", errno)
	}
	if _, got := c.do(nbdCmdRead, 0, 8192-10, uint32(len(odd)), nil); !bytes.Equal(got, odd) {
		t.Errorf("unaligned read back %q", got)
	}
	if _, got := c.do(nbdCmdRead, 0, 8192-11, 1, nil); got[0] != 0xab {
		t.Errorf("byte before the unaligned write changed to %#x", got[0])
	}
	dev.checkContract(t)

	for _, tc := range []struct {
		name   string
		typ    uint16
		flags  uint16
		off    uint64
		length uint32
		errno  uint32
	}{
		{"read past end", nbdCmdRead, 0, 1 << 20, 4096, nbdEINVAL},
		{"read overflowing offset", nbdCmdRead, 0, 1<<64 - 4096, 8192, nbdEINVAL},
		{"write past end", nbdCmdWrite, 0, 1<<20 - 4096, 8192, nbdENOSPC},
		{"trim past end", nbdCmdTrim, 0, 1 << 20, 4096, nbdEINVAL},
		{"zeroes past end", nbdCmdWriteZeroes, 0, 1 << 20, 4096, nbdENOSPC},
		{"unknown command", 99, 0, 0, 0, nbdEINVAL},
		{"NO_HOLE on a write", nbdCmdWrite, nbdCmdFlagNoHole, 0, 4096, nbdEINVAL},
		{"unknown flag", nbdCmdRead, 1 << 9, 0, 4096, nbdEINVAL},
	} {
		var data []byte
		if tc.typ == nbdCmdWrite {
			data = make([]byte, tc.length)
		}
		if errno, _ := c.do(tc.typ, tc.flags, tc.off, tc.length, data); errno != tc.errno {
			t.Errorf("%s: errno %d, want %d", tc.name, errno, tc.errno)
		}
	}

	c.send(nbdCmdDisc, 0, 0, 0, nil)
	c.expectClosed()
}

func TestNBDDeviceErrors(t *testing.T) {
	dev := newMemDevice(1<<20, 512)
	c, _ := connectNBD(t, serveTest(t, dev, NBDOptions{}).SocketPath(), "")
	dev.fail.Store(true)
	for _, typ := range []uint16{nbdCmdRead, nbdCmdWrite, nbdCmdFlush, nbdCmdTrim, nbdCmdWriteZeroes} {
		var data []byte
		if typ == nbdCmdWrite {
			data = make([]byte, 512)
		}
		if errno, _ := c.do(typ, 0, 0, 512, data); errno != nbdEIO {
			t.Errorf("%s on a failing device: errno %d, want EIO", cmdName(typ), errno)
		}
	}
	dev.fail.Store(false)
	if errno, _ := c.do(nbdCmdRead, 0, 0, 512, nil); errno != 0 {
		t.Errorf("read after the device recovered: errno %d", errno)
	}
}

func TestNBDReadOnly(t *testing.T) {
	dev := newMemDevice(1<<20, 512)
	dev.readOnly = true
	c, flags := connectNBD(t, serveTest(t, dev, NBDOptions{}).SocketPath(), "")
	if flags&nbdFlagReadOnly == 0 || flags&nbdFlagSendTrim != 0 {
		t.Errorf("read-only transmission flags %#x", flags)
	}
	for _, typ := range []uint16{nbdCmdWrite, nbdCmdTrim, nbdCmdWriteZeroes} {
		var data []byte
		if typ == nbdCmdWrite {
			data = make([]byte, 512)
		}
		if errno, _ := c.do(typ, 0, 0, 512, data); errno != nbdEPERM {
			t.Errorf("%s on a read-only export: errno %d, want EPERM", cmdName(typ), errno)
		}
	}
	if dev.writes.Load()+dev.unmaps.Load() != 0 {
		t.Error("a read-only device was written")
	}
}

// TestNBDNoFUA checks the write-then-Sync path for devices without
// WriteAtFUA.
func TestNBDNoFUA(t *testing.T) {
	dev := newMemDevice(1<<20, 512)
	c, _ := connectNBD(t, serveTest(t, plainDevice{dev}, NBDOptions{}).SocketPath(), "")
	if errno, _ := c.do(nbdCmdWrite, nbdCmdFlagFUA, 0, 512, make([]byte, 512)); errno != 0 {
		t.Fatalf("FUA write: errno %d", errno)
	}
	if dev.writes.Load() != 1 || dev.syncs.Load() != 1 || dev.fuas.Load() != 0 {
		t.Errorf("FUA write without WriteAtFUA: %d writes, %d syncs", dev.writes.Load(), dev.syncs.Load())
	}
}

func TestNBDOptions(t *testing.T) {
	dev := newMemDevice(1<<20, 512)
	srv := serveTest(t, dev, NBDOptions{ExportName: "vol1", Description: "lab volume"})
	c := dialNBD(t, srv.SocketPath())
	if hs := c.hello(nbdFlagCFixedNewstyle); hs != nbdFlagFixedNewstyle|nbdFlagNoZeroes {
		t.Errorf("handshake flags %#x", hs)
	}

	for _, opt := range []uint32{nbdOptStructuredReply, 5 /* STARTTLS */, 11, 0xdead} {
		c.sendOption(opt, nil)
		if o, typ, _ := c.optReply(); o != opt || typ != nbdRepErrUnsup {
			t.Errorf("option %d: reply %d type %#x, want NBD_REP_ERR_UNSUP", opt, o, typ)
		}
	}

	c.sendOption(nbdOptList, nil)
	if _, typ, data := c.optReply(); typ != nbdRepServer || string(data[4:]) != "vol1" {
		t.Errorf("NBD_OPT_LIST: type %d data %q", typ, data)
	}
	if _, typ, _ := c.optReply(); typ != nbdRepAck {
		t.Errorf("NBD_OPT_LIST end: type %d", typ)
	}
	c.sendOption(nbdOptList, []byte("x"))
	if _, typ, _ := c.optReply(); typ != nbdRepErrInvalid {
		t.Errorf("NBD_OPT_LIST with data: type %#x", typ)
	}

	if _, _, err := c.goExport(nbdOptInfo, "nope", nil); err == nil || !strings.Contains(err.Error(), "0x80000006") {
		t.Errorf("NBD_OPT_INFO on an unknown export: %v", err)
	}
	c.sendOption(nbdOptInfo, []byte{0, 0, 0, 9, 'a'})
	if _, typ, _ := c.optReply(); typ != nbdRepErrInvalid {
		t.Errorf("malformed NBD_OPT_INFO: type %#x", typ)
	}
	infos, _, err := c.goExport(nbdOptInfo, "vol1", []uint16{nbdInfoName, nbdInfoDescription, nbdInfoBlockSize})
	if err != nil {
		t.Fatal(err)
	}
	if string(infos[nbdInfoName]) != "vol1" || string(infos[nbdInfoDescription]) != "lab volume" || len(infos[nbdInfoBlockSize]) != 12 {
		t.Errorf("NBD_OPT_INFO replies %v", infos)
	}

	// The oldest way in: NBD_OPT_EXPORT_NAME, with the 124 zero bytes the
	// client did not opt out of.
	c.sendOption(nbdOptExportName, []byte("vol1"))
	reply := c.readFull(134)
	if be.Uint64(reply) != 1<<20 || !bytes.Equal(reply[10:], make([]byte, 124)) {
		t.Errorf("NBD_OPT_EXPORT_NAME reply % x", reply[:10])
	}
	if errno, _ := c.do(nbdCmdRead, 0, 0, 512, nil); errno != 0 {
		t.Errorf("read after NBD_OPT_EXPORT_NAME: errno %d", errno)
	}

	// An unknown name cannot be refused politely: the server hangs up.
	c2 := dialNBD(t, srv.SocketPath())
	c2.hello(nbdFlagCFixedNewstyle | nbdFlagCNoZeroes)
	c2.sendOption(nbdOptExportName, []byte("nope"))
	c2.expectClosed()

	c3 := dialNBD(t, srv.SocketPath())
	c3.hello(nbdFlagCFixedNewstyle | nbdFlagCNoZeroes)
	c3.sendOption(nbdOptAbort, nil)
	if _, typ, _ := c3.optReply(); typ != nbdRepAck {
		t.Errorf("NBD_OPT_ABORT: type %d", typ)
	}
	c3.expectClosed()
}

// TestNBDMalformed writes broken byte streams with net.Dial: each must
// only close its own connection, never reach the device, and leave the
// server serving.
func TestNBDMalformed(t *testing.T) {
	dev := newMemDevice(1<<20, 512)
	srv := serveTest(t, dev, NBDOptions{HandshakeTimeout: 2 * time.Second})
	okFlags := be.AppendUint32(nil, nbdFlagCFixedNewstyle|nbdFlagCNoZeroes)
	option := func(magic uint64, opt, length uint32) []byte {
		b := be.AppendUint64(nil, magic)
		b = be.AppendUint32(b, opt)
		return be.AppendUint32(b, length)
	}
	request := func(magic uint32, typ uint16, length uint32) []byte {
		b := be.AppendUint32(nil, magic)
		b = be.AppendUint16(b, 0)
		b = be.AppendUint16(b, typ)
		b = be.AppendUint64(b, 1)
		b = be.AppendUint64(b, 0)
		return be.AppendUint32(b, length)
	}
	for _, tc := range []struct {
		name      string
		handshake bool // complete NBD_OPT_GO first
		bytes     []byte
	}{
		{"HTTP instead of NBD", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"unknown client flags", false, be.AppendUint32(nil, 0xff)},
		{"bad option magic", false, slices.Concat(okFlags, option(0x1122334455667788, nbdOptGo, 0))},
		{"huge option", false, slices.Concat(okFlags, option(nbdOptMagic, nbdOptGo, 1<<31))},
		{"truncated option", false, slices.Concat(okFlags, option(nbdOptMagic, nbdOptGo, 100), []byte{1, 2, 3, 4})},
		{"bad request magic", true, request(0xdeadbeef, nbdCmdWrite, 512)},
		{"64 MiB write", true, request(nbdRequestMagic, nbdCmdWrite, 64<<20)},
		{"4 GiB read", true, request(nbdRequestMagic, nbdCmdRead, 1<<32-1)},
		{"truncated write payload", true, append(request(nbdRequestMagic, nbdCmdWrite, 4096), make([]byte, 100)...)},
		{"truncated header", true, request(nbdRequestMagic, nbdCmdWrite, 512)[:10]},
		{"garbage", true, bytes.Repeat([]byte{0xff}, 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *testClient
			if tc.handshake {
				c, _ = connectNBD(t, srv.SocketPath(), "")
			} else {
				c = dialNBD(t, srv.SocketPath())
				c.readFull(18)
			}
			c.write(tc.bytes)
			if strings.HasPrefix(tc.name, "truncated") {
				c.nc.(*net.UnixConn).CloseWrite()
			}
			c.expectClosed()
		})
	}
	if n := dev.reads.Load() + dev.writes.Load() + dev.syncs.Load() + dev.unmaps.Load(); n != 0 {
		t.Errorf("malformed input reached the device %d times", n)
	}
	if !bytes.Equal(dev.snapshot(), make([]byte, 1<<20)) {
		t.Error("device content changed")
	}
	c, _ := connectNBD(t, srv.SocketPath(), "")
	if errno, _ := c.do(nbdCmdRead, 0, 0, 512, nil); errno != 0 {
		t.Errorf("server unusable after malformed input: errno %d", errno)
	}
}

// TestNBDHandshakeTimeout checks that a silent client is dropped.
func TestNBDHandshakeTimeout(t *testing.T) {
	srv := serveTest(t, newMemDevice(1<<20, 512), NBDOptions{HandshakeTimeout: 200 * time.Millisecond})
	c := dialNBD(t, srv.SocketPath())
	c.expectClosed()
}

func TestNBDMaxConns(t *testing.T) {
	srv := serveTest(t, newMemDevice(1<<20, 512), NBDOptions{MaxConns: 1})
	c, _ := connectNBD(t, srv.SocketPath(), "")
	extra := dialNBD(t, srv.SocketPath())
	extra.expectClosed()
	if errno, _ := c.do(nbdCmdRead, 0, 0, 512, nil); errno != 0 {
		t.Errorf("first connection broken: errno %d", errno)
	}
}

// TestNBDPipelining sends a burst of requests without waiting: replies
// come back for every handle, and the device never has more than
// MaxInFlight requests from the connection at once.
func TestNBDPipelining(t *testing.T) {
	dev := &gatedDevice{memDevice: newMemDevice(1<<20, 512)}
	const limit, total = 4, 64
	c, _ := connectNBD(t, serveTest(t, dev, NBDOptions{MaxInFlight: limit}).SocketPath(), "")
	want := map[uint64][]byte{}
	lens := map[uint64]int{}
	for i := range total {
		off := uint64(i) * 4096
		data := bytes.Repeat([]byte{byte(i + 1)}, 4096)
		if i%2 == 0 {
			want[c.send(nbdCmdWrite, 0, off, 4096, data)] = nil
			continue
		}
		dev.memDevice.WriteAt(data, int64(off)) // what the READ must return
		h := c.send(nbdCmdRead, 0, off, 4096, nil)
		want[h], lens[h] = data, 4096
	}
	for range total {
		h, errno, data := c.recv(lens)
		exp, ok := want[h]
		if !ok || errno != 0 || !bytes.Equal(data, exp) {
			t.Fatalf("reply for handle %d: known %v, errno %d, data ok %v", h, ok, errno, bytes.Equal(data, exp))
		}
		delete(want, h)
	}
	if peak := dev.peak.Load(); peak > limit || peak < 2 {
		t.Errorf("peak device concurrency %d, want 2..%d", peak, limit)
	}
}

// gatedDevice tracks how many calls are in the device at once, holding
// each briefly so that concurrent requests overlap.
type gatedDevice struct {
	*memDevice
	active, peak atomic.Int64
}

func (g *gatedDevice) track() func() {
	n := g.active.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	time.Sleep(2 * time.Millisecond)
	return func() { g.active.Add(-1) }
}

func (g *gatedDevice) ReadAt(p []byte, off int64) (int, error) {
	defer g.track()()
	return g.memDevice.ReadAt(p, off)
}

func (g *gatedDevice) WriteAt(p []byte, off int64) (int, error) {
	defer g.track()()
	return g.memDevice.WriteAt(p, off)
}

// TestNBDCloseWaits checks that Close lets an in-flight request finish and
// reply, closes idle connections, and leaks no goroutine.
func TestNBDCloseWaits(t *testing.T) {
	checkNoGoroutineLeak(t)
	dev := newMemDevice(1<<20, 512)
	srv, err := ServeNBD(dev, filepath.Join(t.TempDir(), "nbd.sock"), NBDOptions{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	idle, _ := connectNBD(t, srv.SocketPath(), "")
	busy, _ := connectNBD(t, srv.SocketPath(), "")
	half := dialNBD(t, srv.SocketPath()) // still in the handshake
	half.readFull(18)

	dev.delay.Store(int64(300 * time.Millisecond))
	h := busy.send(nbdCmdWrite, 0, 0, 512, bytes.Repeat([]byte{7}, 512))
	for dev.writes.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if got, errno, _ := busy.recv(nil); got != h || errno != 0 {
		t.Errorf("in-flight write: reply handle %d errno %d", got, errno)
	}
	if dev.snapshot()[0] != 7 {
		t.Error("in-flight write did not land")
	}
	busy.expectClosed()
	idle.expectClosed()
	half.expectClosed()
	if _, err := os.Stat(srv.SocketPath()); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNBDSocketPath(t *testing.T) {
	dir := t.TempDir()
	dev := newMemDevice(1<<20, 512)
	opts := NBDOptions{Logger: quietLogger(t)}

	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, nil, 0o600)
	if _, err := ServeNBD(dev, regular, opts); err == nil {
		t.Error("ServeNBD replaced a regular file")
	}

	// A socket left by a dead server is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	srv, err := ServeNBD(dev, stale, opts)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer srv.Close()

	// A live one is not.
	if _, err := ServeNBD(dev, stale, opts); err == nil || !strings.Contains(err.Error(), "listening") {
		t.Errorf("second server on a live socket: %v", err)
	}
	if got := srv.URI(); got != "nbd+unix:///?socket="+stale {
		t.Errorf("URI %q", got)
	}
	if got := srv.ExportURI("a b"); got != "nbd+unix:///a%20b?socket="+stale {
		t.Errorf("ExportURI %q", got)
	}
	if _, err := ServeNBD(dev, filepath.Join(dir, "x.sock"), NBDOptions{ExportName: strings.Repeat("n", 5000)}); err == nil {
		t.Error("over-long export name accepted")
	}
}
