package blockdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// loopMajor is the block major number of loop devices.
const loopMajor = 7

type loopConfig struct {
	blockSize int
	readOnly  bool
	name      string // shown as the loop device's file name; cut to 63 bytes
}

type loopAttachment struct {
	dev  *os.File // open descriptor; the device detaches when the last one closes
	num  int
	path string
}

// attachLoop binds a free loop device to backing, with autoclear, the
// given block size and direct I/O where the kernel accepts it. With
// configure it uses LOOP_CONFIGURE (Linux 5.8+) and falls back to
// LOOP_SET_FD plus LOOP_SET_STATUS64 on kernels that reject it.
func attachLoop(backing *os.File, cfg loopConfig, configure bool) (loopAttachment, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return loopAttachment{}, fmt.Errorf("blockdev: %w (is the loop module loaded?)", err)
	}
	defer ctl.Close()
	// Another process may bind the free device between LOOP_CTL_GET_FREE
	// and our ioctl (EBUSY); then ask for another.
	for range 16 {
		num, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return loopAttachment{}, fmt.Errorf("blockdev: no free loop device: %w", err)
		}
		dev, err := openLoop(num, cfg.readOnly)
		if err != nil {
			return loopAttachment{}, err
		}
		if configure {
			err = loopConfigure(dev, backing, cfg)
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
				configure = false // an older kernel: try the old way
			}
		}
		if !configure {
			err = loopSetFD(dev, backing, cfg)
		}
		if errors.Is(err, unix.EBUSY) {
			dev.Close()
			continue
		}
		if err != nil {
			dev.Close()
			return loopAttachment{}, fmt.Errorf("blockdev: attach %s: %w", dev.Name(), err)
		}
		return loopAttachment{dev: dev, num: num, path: dev.Name()}, nil
	}
	return loopAttachment{}, errors.New("blockdev: every free loop device was taken by another process; try again")
}

// openLoop opens /dev/loopN, creating the node where no devtmpfs did.
func openLoop(num int, readOnly bool) (*os.File, error) {
	path := "/dev/loop" + strconv.Itoa(num)
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(path, unix.S_IFBLK|0o660, int(unix.Mkdev(loopMajor, uint32(num)))); err != nil {
			return nil, fmt.Errorf("blockdev: create %s: %w", path, err)
		}
		f, err = os.OpenFile(path, flag, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("blockdev: %w", err)
	}
	return f, nil
}

func (cfg loopConfig) info(flags uint32) unix.LoopInfo64 {
	info := unix.LoopInfo64{Flags: flags}
	copy(info.File_name[:len(info.File_name)-1], cfg.name)
	return info
}

func loopConfigure(dev, backing *os.File, cfg loopConfig) error {
	flags := uint32(unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO)
	if cfg.readOnly {
		flags |= unix.LO_FLAGS_READ_ONLY
	}
	c := unix.LoopConfig{Fd: uint32(backing.Fd()), Size: uint32(cfg.blockSize), Info: cfg.info(flags)}
	return unix.IoctlLoopConfigure(int(dev.Fd()), &c)
}

// loopSetFD is the pre-5.8 sequence. Read-only follows from how backing
// was opened.
func loopSetFD(dev, backing *os.File, cfg loopConfig) error {
	fd := int(dev.Fd())
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_FD, int(backing.Fd())); err != nil {
		return err
	}
	info := cfg.info(unix.LO_FLAGS_AUTOCLEAR)
	err := unix.IoctlLoopSetStatus64(fd, &info)
	if err == nil {
		err = unix.IoctlSetInt(fd, unix.LOOP_SET_BLOCK_SIZE, cfg.blockSize)
	}
	if err != nil {
		unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
		return err
	}
	// Optional: without it the loop device reads through the page cache.
	unix.IoctlSetInt(fd, unix.LOOP_SET_DIRECT_IO, 1)
	return nil
}

func loopSysfs(num int, attr string) string {
	b, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/loop/%s", num, attr))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loopDirectIO reports whether the kernel kept LO_FLAGS_DIRECT_IO.
func loopDirectIO(num int) bool { return loopSysfs(num, "dio") == "1" }

// loopBacking returns the file a loop device is bound to, "" if none.
func loopBacking(num int) string { return loopSysfs(num, "backing_file") }

// checkNotClaimed fails with ErrBusy while a filesystem is mounted on the
// device (or anything else holds it exclusively): then detaching would
// only be deferred.
func checkNotClaimed(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("blockdev: %s is mounted or held exclusively; unmount it first: %w", path, ErrBusy)
	}
	if err != nil {
		return fmt.Errorf("blockdev: %s: %w", path, err)
	}
	return unix.Close(fd)
}

// replaceSymlink points path at target, replacing an existing symbolic
// link atomically but nothing else.
func replaceSymlink(target, path string) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSymlink {
		return fmt.Errorf("blockdev: %s exists and is not a symbolic link", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("blockdev: link directory: %w", err)
	}
	tmp := path + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("blockdev: link: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("blockdev: link: %w", err)
	}
	return nil
}

// removeLinks removes the links that still point at target; one that was
// repointed since belongs to someone else now.
func removeLinks(links []string, target string) {
	for _, l := range links {
		if dest, err := os.Readlink(l); err == nil && dest == target {
			os.Remove(l)
		}
	}
}
