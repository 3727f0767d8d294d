package blockdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// ErrBusy is returned (wrapped) by LoopExport.Close while the block device
// or the FUSE mount is still in use. Nothing has been torn down that a
// later Close cannot finish.
var ErrBusy = errors.New("device busy")

// LoopOptions tunes ExportLoop. The zero value is usable.
type LoopOptions struct {
	// FileName names the device file inside the mount (default "device").
	FileName string
	// CloseTimeout bounds how long Close waits for the kernel to detach
	// the loop device and release the FUSE mount (default 10 s).
	CloseTimeout time.Duration
	// Logger receives the export's log lines (default logrus's standard
	// logger).
	Logger logrus.FieldLogger
}

func (o *LoopOptions) setDefaults() {
	if o.FileName == "" {
		o.FileName = "device"
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = logrus.StandardLogger()
	}
}

// LoopExport is a Device served as a file on a FUSE mount with a loop
// device attached to it: a real block device that the kernel can
// partition, format and mount.
type LoopExport struct {
	opts     LoopOptions
	log      logrus.FieldLogger
	mountDir string
	file     string // the device file on the FUSE mount
	loopDev  string // /dev/loopN
	loopNum  int
	directIO bool

	mu        sync.Mutex
	fuse      *fuse.Server  // nil once unmounted
	loop      *os.File      // holds the autoclear loop device bound; nil once released
	released  chan struct{} // closed when the loop device's release returns
	unmounted chan error    // result of an unmount under way
	links     []string
}

// ExportLoop mounts a FUSE filesystem at mountDir (created if missing)
// holding one file whose contents are dev, and attaches a free loop device
// to that file with the device's block size. The loop device detaches
// itself when the export is closed or the process dies (autoclear). Needs
// root, /dev/fuse and /dev/loop-control.
func ExportLoop(dev Device, mountDir string, opts LoopOptions) (*LoopExport, error) {
	if err := checkDevice(dev); err != nil {
		return nil, err
	}
	if strings.ContainsRune(opts.FileName, '/') || opts.FileName == "." || opts.FileName == ".." {
		return nil, fmt.Errorf("blockdev: file name %q is not a plain name", opts.FileName)
	}
	opts.setDefaults()
	mountDir, err := filepath.Abs(mountDir)
	if err != nil {
		return nil, err
	}
	e := &LoopExport{
		opts:     opts,
		log:      opts.Logger.WithField("mount", mountDir),
		mountDir: mountDir,
		file:     filepath.Join(mountDir, opts.FileName),
	}
	if err := prepareMountPoint(mountDir, e.log); err != nil {
		return nil, err
	}
	readOnly := isReadOnly(dev)
	if e.fuse, err = mountDeviceFile(newBlockIO(dev), readOnly, mountDir, opts.FileName, e.log); err != nil {
		return nil, err
	}
	if err := e.attach(dev.BlockSize(), readOnly); err != nil {
		if uerr := e.unmount(); uerr != nil {
			e.log.WithError(uerr).Error("FUSE mount left behind after a failed export")
		}
		return nil, err
	}
	e.log = e.log.WithField("loop", e.loopDev)
	e.log.WithFields(logrus.Fields{
		"size": dev.Size(), "block_size": dev.BlockSize(), "direct_io": e.directIO, "read_only": readOnly,
	}).Info("loop device attached")
	return e, nil
}

func (e *LoopExport) attach(blockSize int, readOnly bool) error {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	backing, err := os.OpenFile(e.file, flag, 0)
	if err != nil {
		return fmt.Errorf("blockdev: open FUSE device file: %w", err)
	}
	// The loop device keeps its own reference to the file.
	defer backing.Close()
	a, err := attachLoop(backing, loopConfig{blockSize: blockSize, readOnly: readOnly, name: e.file}, true)
	if err != nil {
		return err
	}
	e.loop, e.loopNum, e.loopDev = a.dev, a.num, a.path
	e.directIO = loopDirectIO(a.num)
	return nil
}

// LoopDevice returns the block device's path, such as /dev/loop3.
func (e *LoopExport) LoopDevice() string { return e.loopDev }

// File returns the path of the device file on the FUSE mount.
func (e *LoopExport) File() string { return e.file }

// DirectIO reports whether the loop device bypasses the page cache when it
// reads and writes the file (LO_FLAGS_DIRECT_IO was accepted).
func (e *LoopExport) DirectIO() bool { return e.directIO }

// Link makes path a symbolic link to the block device, creating parent
// directories; an existing symbolic link there is replaced, anything else
// is an error. Close removes the link.
func (e *LoopExport) Link(path string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loop == nil {
		return errors.New("blockdev: export is closed")
	}
	if err := replaceSymlink(e.loopDev, path); err != nil {
		return err
	}
	e.links = append(e.links, path)
	return nil
}

// Close detaches the loop device and unmounts the FUSE filesystem. While
// the block device is mounted or held open it returns an error wrapping
// ErrBusy and changes nothing that a later Close cannot finish; if the
// kernel does not let go within CloseTimeout (a device that stopped
// answering), it returns an error rather than hang.
func (e *LoopExport) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.detach(); err != nil {
		return err
	}
	return e.unmount()
}

func (e *LoopExport) detach() error {
	if e.loop != nil {
		if err := checkNotClaimed(e.loopDev); err != nil {
			return err
		}
		removeLinks(e.links, e.loopDev)
		e.links = nil
		// Closing the last descriptor of an autoclear loop device
		// detaches it; the kernel first waits for its queued I/O.
		loop := e.loop
		e.loop = nil
		e.released = make(chan struct{})
		go func() {
			loop.Close()
			close(e.released)
		}()
	}
	if e.released == nil {
		return nil
	}
	deadline := time.After(e.opts.CloseTimeout)
	select {
	case <-e.released:
	case <-deadline:
		return fmt.Errorf("blockdev: detaching %s: still waiting after %v for queued I/O to the device", e.loopDev, e.opts.CloseTimeout)
	}
	for loopBacking(e.loopNum) == e.file {
		select {
		case <-deadline:
			return fmt.Errorf("blockdev: %s is still open in another process and detaches at its last close: %w", e.loopDev, ErrBusy)
		case <-time.After(20 * time.Millisecond):
		}
	}
	e.released = nil
	e.log.Info("loop device detached")
	return nil
}

// unmount unmounts the FUSE filesystem, waiting at most CloseTimeout. An
// unmount that has not answered yet is waited for again by the next call.
func (e *LoopExport) unmount() error {
	if e.fuse == nil {
		return nil
	}
	if e.unmounted == nil {
		srv, done := e.fuse, make(chan error, 1)
		go func() { done <- srv.Unmount() }()
		e.unmounted = done
	}
	select {
	case err := <-e.unmounted:
		e.unmounted = nil
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("blockdev: unmount %s: the device file is still open: %w", e.mountDir, ErrBusy)
		}
		if err != nil {
			return fmt.Errorf("blockdev: unmount %s: %w", e.mountDir, err)
		}
	case <-time.After(e.opts.CloseTimeout):
		return fmt.Errorf("blockdev: unmount %s: no answer after %v", e.mountDir, e.opts.CloseTimeout)
	}
	e.fuse = nil
	e.log.Info("FUSE device file unmounted")
	return nil
}
