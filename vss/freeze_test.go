package vss

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ext4Mount makes a small ext4 filesystem in a file and mounts it through
// a loop device.
func ext4Mount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: losetup, mount and FIFREEZE")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		thaw(mnt) // in case a failed test left it frozen
		syscall.Unmount(mnt, 0)
	})
	return mnt
}

// writable checks that a write on the filesystem completes promptly.
func writable(t *testing.T, mnt string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		f, err := os.Create(filepath.Join(mnt, "probe"))
		if err == nil {
			_, err = f.WriteString("x")
			if err == nil {
				err = f.Sync()
			}
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the filesystem is still frozen")
	}
}

func TestWhileFrozen(t *testing.T) {
	mnt := ext4Mount(t)

	t.Run("writes wait while frozen", func(t *testing.T) {
		wrote := make(chan struct{})
		v, fz, err := WhileFrozen(context.Background(), mnt, time.Second, func() (int, error) {
			go func() {
				os.WriteFile(filepath.Join(mnt, "during"), []byte("x"), 0o644)
				close(wrote)
			}()
			select {
			case <-wrote:
				return 0, errors.New("a write went through a frozen filesystem")
			case <-time.After(200 * time.Millisecond):
				return 42, nil
			}
		}, nil)
		if err != nil || v != 42 || fz.Mountpoint != mnt || fz.Duration < 200*time.Millisecond {
			t.Fatalf("%v, %+v, %v", v, fz, err)
		}
		select {
		case <-wrote:
		case <-time.After(5 * time.Second):
			t.Fatal("the write did not complete after the thaw")
		}
	})

	t.Run("error", func(t *testing.T) {
		_, _, err := WhileFrozen(context.Background(), mnt, time.Second, func() (int, error) {
			return 0, errors.New("the array said no")
		}, nil)
		if err == nil || !strings.Contains(err.Error(), "the array said no") {
			t.Fatalf("err = %v", err)
		}
		writable(t, mnt)
	})

	t.Run("timeout", func(t *testing.T) {
		late := make(chan int, 1)
		start := time.Now()
		_, fz, err := WhileFrozen(context.Background(), mnt, 300*time.Millisecond, func() (int, error) {
			time.Sleep(time.Second)
			return 7, nil
		}, func(v int, err error) { late <- v })
		if !errors.Is(err, ErrFreezeTimeout) || fz.Duration > 900*time.Millisecond {
			t.Fatalf("err = %v, frozen %v", err, fz.Duration)
		}
		if v := <-late; v != 7 {
			t.Fatalf("late got %d", v)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("WhileFrozen waited too long for the late call")
		}
		writable(t, mnt)
	})

	t.Run("signal", func(t *testing.T) {
		_, _, err := WhileFrozen(context.Background(), mnt, 5*time.Second, func() (int, error) {
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
			time.Sleep(500 * time.Millisecond)
			return 0, nil
		}, nil)
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("err = %v", err)
		}
		writable(t, mnt)
	})

	t.Run("panic", func(t *testing.T) {
		_, _, err := WhileFrozen(context.Background(), mnt, time.Second, func() (int, error) { panic("boom") }, nil)
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("err = %v", err)
		}
		writable(t, mnt)
	})

	t.Run("not a filesystem root", func(t *testing.T) {
		if _, _, err := WhileFrozen(context.Background(), filepath.Join(mnt, "nope"), time.Second, func() (int, error) { return 0, nil }, nil); err == nil {
			t.Fatal("froze a missing directory")
		}
	})
}

// TestAccessMountpoint: a connected volume's filesystem is found from its
// device link.
func TestAccessMountpoint(t *testing.T) {
	mnt := ext4Mount(t)
	ms, err := Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var dev string
	for _, m := range ms {
		if m.Point == mnt {
			dev = m.Source
		}
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	a := &Access{Name: "vol1", Connected: true, Link: link}
	got, err := a.Mountpoint()
	if err != nil || got != mnt {
		t.Fatalf("Mountpoint(%s -> %s) = %q, %v; want %s", link, dev, got, err, mnt)
	}
	a.Link = mnt
	if _, err := a.Mountpoint(); err == nil {
		t.Error("a directory taken for a block device")
	}
}
