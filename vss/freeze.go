package vss

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultFreezeTimeout bounds how long a filesystem stays frozen while the
// array takes a snapshot: applications block on every write meanwhile.
const DefaultFreezeTimeout = 10 * time.Second

// ErrFreezeTimeout says that the array did not take the snapshot while the
// filesystem was frozen; the filesystem was thawed.
var ErrFreezeTimeout = errors.New("the array did not answer while the filesystem was frozen")

// ErrInterrupted says that a signal came while the filesystem was frozen;
// the filesystem was thawed.
var ErrInterrupted = errors.New("interrupted while the filesystem was frozen")

// The ioctls of linux/fs.h, _IOWR('X', 119, int) and _IOWR('X', 120,
// int); golang.org/x/sys/unix does not define them.
const (
	ioctlFIFREEZE = 0xc0045877
	ioctlFITHAW   = 0xc0045878
)

// freeze and thaw issue FIFREEZE and FITHAW on a mounted filesystem's
// root. FIFREEZE flushes dirty data and blocks new writes until FITHAW.
func freeze(mountpoint string) error { return freezeIoctl(mountpoint, ioctlFIFREEZE) }
func thaw(mountpoint string) error   { return freezeIoctl(mountpoint, ioctlFITHAW) }

func freezeIoctl(mountpoint string, req uint) error {
	f, err := os.Open(mountpoint)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), req, 0); err != nil {
		what := "freezing"
		if req == ioctlFITHAW {
			what = "thawing"
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) {
			return fmt.Errorf("%s %s: the filesystem cannot be frozen (%v)", what, mountpoint, err)
		}
		return fmt.Errorf("%s %s: %w", what, mountpoint, err)
	}
	return nil
}

// Frozen is what WhileFrozen reports about the frozen window.
type Frozen struct {
	Mountpoint string        `json:"mountpoint"`
	Duration   time.Duration `json:"frozen_ns"`
}

// WhileFrozen freezes the filesystem mounted at mountpoint, runs call, and
// thaws, always: when call returns, when it takes longer than timeout,
// when SIGINT, SIGTERM or SIGHUP arrives, or when ctx ends. In the last
// three cases it thaws at once and returns an error, after waiting
// (boundedly) for call to finish and handing its result to late, if not
// nil: a snapshot taken after the thaw is not consistent, and late can
// delete it.
func WhileFrozen[T any](ctx context.Context, mountpoint string, timeout time.Duration, call func() (T, error), late func(T, error)) (T, Frozen, error) {
	var zero T
	if timeout <= 0 {
		timeout = DefaultFreezeTimeout
	}
	// Signals are caught before freezing, so that none can end the
	// process between FIFREEZE and FITHAW.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := freeze(mountpoint); err != nil {
		return zero, Frozen{}, err
	}
	start := time.Now()
	thawed := false
	var thawErr error
	doThaw := func() {
		if !thawed {
			thawed = true
			thawErr = thaw(mountpoint)
		}
	}
	defer doThaw()

	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("panic while frozen: %v", p)
			}
			done <- r
		}()
		r.v, r.err = call()
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var cause error
	select {
	case r := <-done:
		doThaw()
		fz := Frozen{Mountpoint: mountpoint, Duration: time.Since(start)}
		if thawErr != nil {
			return r.v, fz, errors.Join(r.err, thawErr)
		}
		return r.v, fz, r.err
	case <-timer.C:
		cause = fmt.Errorf("%w within %v; thawed without a snapshot", ErrFreezeTimeout, timeout)
	case s := <-sigs:
		cause = fmt.Errorf("%w (%v); thawed without a snapshot", ErrInterrupted, s)
	case <-ctx.Done():
		cause = fmt.Errorf("%w (%v); thawed without a snapshot", ErrInterrupted, ctx.Err())
	}
	doThaw()
	fz := Frozen{Mountpoint: mountpoint, Duration: time.Since(start)}
	// The filesystem is writable again; wait (boundedly, and not past a
	// second signal) for the call, so that late can undo what it did.
	select {
	case r := <-done:
		if late != nil {
			late(r.v, r.err)
		}
	case <-sigs:
	case <-time.After(lateWait):
	}
	return zero, fz, errors.Join(cause, thawErr)
}

// lateWait bounds the wait for an array call that outlived the freeze:
// the management API client gives up after 30 s.
const lateWait = 35 * time.Second
