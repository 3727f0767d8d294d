package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hitkit/hitkit/bench"
	"github.com/hitkit/hitkit/daemon"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure IOPS, throughput and latency of a logical unit",
		UsageText: "hitkit bench --portal HOST[:PORT] --target IQN [options]\n   hitkit bench --volume NAME [--runtime-dir DIR] [options]",
		Flags: append(benchSessionFlags(),
			&cli.StringFlag{Name: "target", Usage: "target IQN"},
			&cli.StringFlag{Name: "volume", Usage: "benchmark a volume connected with hitkit mpio connect, through its block device (instead of --portal and --target)"},
			&cli.StringFlag{Name: "runtime-dir", Value: daemon.DefaultRuntimeDir, Usage: "hitkitd runtime directory (with --volume)"},
			&cli.IntFlag{Name: "lun", Usage: "logical unit number"},
			&cli.StringFlag{Name: "pattern", Value: "randread", Usage: "seqread, randread, seqwrite, randwrite or verify"},
			&cli.StringFlag{Name: "bs", Value: "4k", Usage: "I/O size (k, m suffixes)"},
			&cli.IntFlag{Name: "qd", Value: 32, Usage: "I/Os in flight"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "run time of the timed patterns"},
			&cli.StringFlag{Name: "span", Usage: "limit I/O to the first SIZE bytes (default: the whole unit)"},
			&cli.BoolFlag{Name: "allow-write", Usage: "allow the write and verify patterns, which destroy data"},
			jsonFlag()),
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	if err := checkBenchTarget(c); err != nil {
		return err
	}
	pattern, err := bench.ParsePattern(c.String("pattern"))
	if err != nil {
		return usageError{err.Error()}
	}
	if pattern.Writes() && !c.Bool("allow-write") {
		return usagef("the %s pattern overwrites the logical unit; add --allow-write if that is what you want", pattern)
	}
	bs, err := parseSize(c.String("bs"))
	if err != nil {
		return usagef("--bs: %v", err)
	}
	var span int64
	if s := c.String("span"); s != "" {
		if span, err = parseSize(s); err != nil {
			return usagef("--span: %v", err)
		}
	}
	var dev bench.Device
	if c.IsSet("volume") {
		vd, err := openVolumeDevice(c)
		if err != nil {
			return err
		}
		defer vd.Close()
		dev = vd
	} else {
		lu, closeLU, err := openLogicalUnit(c)
		if err != nil {
			return err
		}
		defer closeLU()
		dev = lu
	}
	spec := bench.Spec{Pattern: pattern, BlockSize: int(bs), QueueDepth: c.Int("qd"), Duration: c.Duration("duration"), Span: span}
	rep, err := bench.Run(c.Context, dev, spec)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, rep)
	}
	return printTable(c, []string{"pattern", "bs", "qd", "iops", "MB/s", "p50", "p99", "max"}, [][]string{{
		string(pattern), c.String("bs"), strconv.Itoa(spec.QueueDepth),
		fmt.Sprintf("%.0f", rep.IOPS), fmt.Sprintf("%.1f", rep.MBps),
		usText(rep.LatP50us), usText(rep.LatP99us), usText(rep.LatMaxus),
	}})
}

func usText(us float64) string {
	if us >= 10000 {
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return fmt.Sprintf("%.0f µs", us)
}

// parseSize reads sizes like 4096, 4k, 128K, 1m, 2G (binary units).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "g"):
		mult = 1 << 30
	case strings.HasSuffix(s, "t"):
		mult = 1 << 40
	}
	n, err := strconv.ParseInt(strings.TrimRight(s, "kmgt"), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size like 4k, 128k or 1m", s)
	}
	return n * mult, nil
}

// benchSessionFlags are sessionFlags with --portal optional, since
// --volume replaces it; runBench checks that one of them is given.
func benchSessionFlags() []cli.Flag {
	flags := sessionFlags()
	for _, f := range flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "portal" {
			sf.Required = false
		}
	}
	return flags
}

// checkBenchTarget enforces --volume NAME xor --portal and --target.
func checkBenchTarget(c *cli.Context) error {
	if c.IsSet("volume") {
		if c.IsSet("portal") || c.IsSet("target") || c.IsSet("lun") {
			return usagef("--volume benchmarks a connected volume; it does not go with --portal, --target or --lun")
		}
		if strings.TrimSpace(c.String("volume")) == "" {
			return usagef("--volume is empty")
		}
		return nil
	}
	var missing []string
	for _, name := range []string{"portal", "target"} {
		if !c.IsSet(name) {
			missing = append(missing, name)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return usagef("Required flag %q not set (or give --volume NAME)", missing[0])
	}
	return usagef("Required flags %q not set (or give --volume NAME)", strings.Join(missing, ", "))
}

// volumeDevice is a multipathed volume's block device, opened with
// O_DIRECT so that the page cache does not stand in for the paths.
type volumeDevice struct {
	f         *os.File
	fd        int
	size      int64
	blockSize int
	bufs      sync.Pool // aligned bounce buffers, when the caller's are not
}

// openVolumeDevice finds --volume's block device through hitkitd and
// opens it.
func openVolumeDevice(c *cli.Context) (*volumeDevice, error) {
	name := strings.TrimSpace(c.String("volume"))
	runtime := c.String("runtime-dir")
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	path := ""
	vols, err := daemon.NewClient(runtime).Status(ctx, name)
	switch {
	case err == nil:
		for _, v := range vols {
			if v.Name != name {
				continue
			}
			if path = v.BlockDevice; path == "" {
				path = v.Link
			}
		}
		if path == "" {
			return nil, fmt.Errorf("volume %q is not connected (hitkit mpio list --runtime-dir %s shows the connected ones)", name, runtime)
		}
	case errors.Is(err, daemon.ErrNotRunning):
		link := daemon.DevLink(runtime, name)
		if _, serr := os.Stat(link); serr != nil {
			return nil, fmt.Errorf("volume %q: hitkitd is not running in %s and there is no %s", name, runtime, link)
		}
		path = link
	default:
		if errors.Is(err, daemon.ErrNotConnected) {
			return nil, fmt.Errorf("%v (hitkit mpio list --runtime-dir %s shows the connected ones)", err, runtime)
		}
		return nil, fmt.Errorf("volume %q: %v", name, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return nil, fmt.Errorf("volume %q: %v", name, err)
	}
	d := &volumeDevice{f: f, fd: int(f.Fd()), blockSize: 512}
	if d.size, err = f.Seek(0, io.SeekEnd); err != nil || d.size <= 0 {
		f.Close()
		return nil, fmt.Errorf("volume %q: %s: cannot size it (%d bytes): %v", name, path, d.size, err)
	}
	if ssz, err := unix.IoctlGetInt(d.fd, unix.BLKSSZGET); err == nil && ssz > 0 {
		d.blockSize = ssz
	}
	return d, nil
}

func (d *volumeDevice) Size() int64    { return d.size }
func (d *volumeDevice) BlockSize() int { return d.blockSize }
func (d *volumeDevice) Close() error   { return d.f.Close() }

// directAlign is the buffer alignment O_DIRECT wants at most.
const directAlign = 4096

func aligned(p []byte) bool {
	return len(p) == 0 || uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// buffer returns an aligned buffer of n bytes, and its backing slice
// to give back to the pool.
func (d *volumeDevice) buffer(n int) ([]byte, *[]byte) {
	if v, ok := d.bufs.Get().(*[]byte); ok && cap(*v) >= n+directAlign {
		return alignSlice(*v, n), v
	}
	b := make([]byte, n+directAlign)
	return alignSlice(b, n), &b
}

func alignSlice(b []byte, n int) []byte {
	off := int(uintptr(unsafe.Pointer(&b[0])) % directAlign)
	if off != 0 {
		off = directAlign - off
	}
	return b[off : off+n]
}

func (d *volumeDevice) ReadAt(p []byte, off int64) (int, error) {
	if aligned(p) {
		return d.preadFull(p, off)
	}
	buf, back := d.buffer(len(p))
	defer d.bufs.Put(back)
	n, err := d.preadFull(buf, off)
	copy(p, buf[:n])
	return n, err
}

func (d *volumeDevice) WriteAt(p []byte, off int64) (int, error) {
	if aligned(p) {
		return d.pwriteFull(p, off)
	}
	buf, back := d.buffer(len(p))
	defer d.bufs.Put(back)
	copy(buf, p)
	return d.pwriteFull(buf, off)
}

func (d *volumeDevice) preadFull(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(d.fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("read at %d: %w", off+int64(done), err)
		}
		if n == 0 {
			return done, io.ErrUnexpectedEOF
		}
		done += n
	}
	return done, nil
}

func (d *volumeDevice) pwriteFull(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pwrite(d.fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("write at %d: %w", off+int64(done), err)
		}
		if n == 0 {
			return done, io.ErrShortWrite
		}
		done += n
	}
	return done, nil
}
