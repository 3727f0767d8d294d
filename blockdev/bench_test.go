package blockdev

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// benchNBD measures one connection with depth requests of size bytes in
// flight against a memory-backed device.
func benchNBD(b *testing.B, typ uint16, size, depth int) {
	dev := newMemDevice(256<<20, 4096)
	srv, err := ServeNBD(dev, filepath.Join(b.TempDir(), "nbd.sock"), NBDOptions{Logger: quietLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c, _ := connectNBD(b, srv.SocketPath(), "")
	var payload []byte
	if typ == nbdCmdWrite {
		payload = make([]byte, size)
	}
	lens := map[uint64]int{}
	slots := dev.Size() / int64(size)
	next := 0
	send := func() {
		off := uint64(int64(next) % slots * int64(size))
		next++
		h := c.send(typ, 0, off, uint32(size), payload)
		if typ == nbdCmdRead {
			lens[h] = size
		}
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < min(depth, b.N); i++ {
		send()
	}
	for i := 0; i < b.N; i++ {
		h, errno, _ := c.recv(lens)
		if errno != 0 {
			b.Fatalf("errno %d", errno)
		}
		delete(lens, h)
		if next < b.N {
			send()
		}
	}
}

func BenchmarkNBDRead4K(b *testing.B)    { benchNBD(b, nbdCmdRead, 4<<10, 16) }
func BenchmarkNBDRead256K(b *testing.B)  { benchNBD(b, nbdCmdRead, 256<<10, 16) }
func BenchmarkNBDRead1M(b *testing.B)    { benchNBD(b, nbdCmdRead, 1<<20, 8) }
func BenchmarkNBDWrite256K(b *testing.B) { benchNBD(b, nbdCmdWrite, 256<<10, 16) }

// BenchmarkLoopRead reads the loop device with O_DIRECT, one request at a
// time: the cost of the FUSE round trip per request.
func BenchmarkLoopRead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (FUSE mount, loop devices)")
	}
	const size = 1 << 20
	dev := newMemDevice(256<<20, 4096)
	exp, err := ExportLoop(dev, filepath.Join(b.TempDir(), "fuse"), LoopOptions{Logger: quietLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer exp.Close()
	f, err := os.OpenFile(exp.LoopDevice(), os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := alignedBuf(size)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.ReadAt(buf, int64(i%256)*size); err != nil {
			b.Fatal(err)
		}
	}
}
