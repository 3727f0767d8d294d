package vss

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountEntry is one line of /proc/self/mountinfo.
type MountEntry struct {
	Major, Minor uint32
	Root         string // the directory of the filesystem mounted there
	Point        string
	Options      string // per-mount options, such as "ro,relatime"
	FSType       string
	Source       string
}

// ReadOnly reports whether the mount is read-only.
func (m MountEntry) ReadOnly() bool {
	for _, o := range strings.Split(m.Options, ",") {
		if o == "ro" {
			return true
		}
	}
	return false
}

// onDevice reports whether the mount is of the block device rdev.
func (m MountEntry) onDevice(rdev uint64) bool {
	return m.Major == unix.Major(rdev) && m.Minor == unix.Minor(rdev)
}

// parseMountinfo reads the format of proc(5)'s mountinfo.
func parseMountinfo(r io.Reader) ([]MountEntry, error) {
	var out []MountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 2 {
			return nil, fmt.Errorf("mountinfo: malformed line %q", line)
		}
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo: bad device %q", f[2])
		}
		out = append(out, MountEntry{
			Major: uint32(ma), Minor: uint32(mi),
			Root: unescapeMount(f[3]), Point: unescapeMount(f[4]), Options: f[5],
			FSType: g[0], Source: unescapeMount(g[1]),
		})
	}
	return out, sc.Err()
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mounts lists this process's mounts.
func Mounts() ([]MountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// BlockDevice resolves path (a device link such as RUNTIME/dev/NAME) to
// the block device it names, and its device number.
func BlockDevice(path string) (string, uint64, error) {
	dev, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", 0, err
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", 0, fmt.Errorf("%s: %w", dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", 0, fmt.Errorf("%s is not a block device", dev)
	}
	return dev, st.Rdev, nil
}

// MountsOf lists the mounts of the filesystem on block device rdev. A
// bind mount of a subdirectory comes after the filesystem's own root.
func MountsOf(rdev uint64) ([]MountEntry, error) {
	all, err := Mounts()
	if err != nil {
		return nil, err
	}
	var roots, binds []MountEntry
	for _, m := range all {
		if !m.onDevice(rdev) {
			continue
		}
		if m.Root == "/" {
			roots = append(roots, m)
		} else {
			binds = append(binds, m)
		}
	}
	return append(roots, binds...), nil
}

// mountedAt returns the mount whose mount point is path, if any.
func mountedAt(path string) (MountEntry, bool, error) {
	all, err := Mounts()
	if err != nil {
		return MountEntry{}, false, err
	}
	path = filepath.Clean(path)
	// The last one wins: it hides the ones under it.
	found, ok := MountEntry{}, false
	for _, m := range all {
		if m.Point == path {
			found, ok = m, true
		}
	}
	return found, ok, nil
}
