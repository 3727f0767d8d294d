// Package mpio is hitkit's multipath device: one logical unit reached over
// several iSCSI sessions ("paths"), each from its own local address or NIC,
// each logged in at the group IP and redirected by the group to a member
// port.
//
// A Device is an initiator.Executor. Execute sends each command down one
// path chosen by the policy (least queue depth, round-robin or failover).
// When a path fails (lost connection, unanswered NOP-Out, a command that
// times out), the path is taken out of service and the command is sent
// again on another path, so the caller sees no error. A SCSI CHECK
// CONDITION is an answer from the logical unit, not a path failure, and is
// returned as it is. Failed paths log in again in the background, with
// backoff; a logout that the target asks for is served by draining the
// path and renewing its login. Only when no path is left do commands wait,
// for Config.NoPathTimeout, before they fail with ErrNoPath.
//
// Retrying a command on another path means the logical unit may execute it
// twice (the first attempt may have reached the disk before its connection
// died). That is safe for what a block device sends: READ, WRITE of a fixed
// range, SYNCHRONIZE CACHE, UNMAP and TEST UNIT READY give the same result
// when repeated. It would not be safe for commands that are not idempotent
// (COMPARE AND WRITE, reservations, WRITE with a changing buffer), which
// callers must not send through a Device if they need exactly-once. A
// stale write that arrives late from a dead connection, after a newer write
// to the same blocks, is the usual multipath hazard; the iSCSI target
// aborts a dead connection's tasks, which keeps that window small.
//
// A Device is also a block device (blockdev.Device): initiator.LogicalUnit
// runs over it, so ReadAt, WriteAt, Sync and Unmap are spread over the
// paths like any other command.
package mpio

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hitkit/hitkit/initiator"
	"github.com/sirupsen/logrus"
)

// Device is a logical unit reached over several paths. It is safe for
// concurrent use.
type Device struct {
	cfg   Config
	log   *logrus.Entry
	paths []*path
	sel   selector
	lu    *initiator.LogicalUnit
	wwid  string
	limit *loginLimiter

	// changed is closed and replaced when a path comes (back) into
	// service, waking the commands that wait for one.
	mu      sync.Mutex
	changed chan struct{}

	active atomic.Int64 // Execute calls in progress, for Close to drain
	closed atomic.Bool

	life    context.Context // ends at Close, stopping the background work
	endLife context.CancelFunc
	wg      sync.WaitGroup
}

// Open logs every path in, checks that they all reach the same logical
// unit, and returns the device once it is ready for I/O. Paths that cannot
// log in now are left failed and retried in the background; Open fails
// only when none can, or when a path reaches a different logical unit.
func Open(ctx context.Context, cfg Config) (*Device, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Device{
		cfg:     cfg,
		log:     cfg.Log.WithFields(logrus.Fields{"target": cfg.Session.TargetName, "lun": cfg.LUN}),
		sel:     selector{policy: cfg.Policy, pages: cfg.PageMap},
		limit:   newLoginLimiter(cfg.ReinstateGap),
		changed: make(chan struct{}),
	}
	d.life, d.endLife = context.WithCancel(context.Background())
	for i := range cfg.Sessions {
		d.paths = append(d.paths, newPath(d, i+1, cfg.Paths[i%len(cfg.Paths)]))
	}
	if err := d.connectAll(ctx); err != nil {
		d.Close()
		return nil, err
	}
	d.start()
	lu, err := initiator.OpenLogicalUnit(ctx, d, cfg.LUN)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("mpio: %w", err)
	}
	d.lu = lu
	d.sel.blockSize.Store(int64(lu.BlockSize()))
	d.log.WithFields(logrus.Fields{"wwid": d.wwid, "paths": len(d.paths), "policy": cfg.Policy}).Info("multipath device ready")
	return d, nil
}

// dialed is the outcome of one path's first login.
type dialed struct {
	sess *initiator.Session
	wwid string
	err  error
}

// connectAll logs every path in at once, then installs those that reach
// the same logical unit as the first path that logged in.
func (d *Device) connectAll(ctx context.Context) error {
	results := make([]dialed, len(d.paths))
	var wg sync.WaitGroup
	for i, p := range d.paths {
		wg.Go(func() {
			s, wwid, err := p.dial(ctx)
			results[i] = dialed{s, wwid, err}
		})
	}
	wg.Wait()
	if err := d.checkSameUnit(results); err != nil {
		for _, r := range results {
			if r.sess != nil {
				r.sess.Close()
			}
		}
		return err
	}
	for i, p := range d.paths {
		if r := results[i]; r.err != nil {
			p.noteFailure(r.err)
			p.errors.Add(1)
			d.log.WithFields(p.fields()).WithError(r.err).Warn("path could not log in; retrying in the background")
		} else {
			p.install(r.sess)
		}
	}
	return nil
}

// checkSameUnit sets the device's WWID from the first path that logged in,
// and refuses paths that report another one: sending a volume's writes to
// a different volume would corrupt both.
func (d *Device) checkSameUnit(results []dialed) error {
	first := -1
	for i, r := range results {
		if r.err != nil {
			continue
		}
		if first < 0 {
			first, d.wwid = i, r.wwid
			continue
		}
		if r.wwid != d.wwid {
			return fmt.Errorf("mpio: path %d (%s) reaches logical unit %s, but path %d (%s) reaches %s: refusing to multipath two different units",
				i+1, d.paths[i].spec, r.wwid, first+1, d.paths[first].spec, d.wwid)
		}
	}
	if first < 0 {
		return fmt.Errorf("mpio: no path could log in: path 1 (%s): %w", d.paths[0].spec, results[0].err)
	}
	return nil
}

// start runs each path's loop and the statistics sampler.
func (d *Device) start() {
	for _, p := range d.paths {
		d.wg.Go(p.run)
	}
	d.wg.Go(d.sampleRates)
}

// Execute runs one command on a path chosen by the policy, and on a path
// failure again on another path, until it completes, the no-path timeout
// passes, ctx ends or the device is closed.
func (d *Device) Execute(ctx context.Context, cmd initiator.Command) (initiator.Result, error) {
	d.active.Add(1)
	defer d.active.Add(-1)
	if d.closed.Load() {
		return initiator.Result{}, ErrDeviceClosed
	}
	var trouble time.Time // since when the command has been failing or waiting
	var lastErr error
	for {
		p := d.sel.pickFor(d.paths, cmd)
		if p == nil {
			if trouble.IsZero() {
				trouble = time.Now()
			}
			if err := d.waitForPath(ctx, trouble, lastErr); err != nil {
				return initiator.Result{}, err
			}
			continue
		}
		s := p.sess.Load()
		if s == nil {
			continue // the path was failed between pick and here
		}
		res, err := p.execute(ctx, s, cmd, d.cfg.IOTimeout)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return initiator.Result{}, ctx.Err()
		}
		if d.life.Err() != nil {
			return initiator.Result{}, ErrDeviceClosed
		}
		p.fail(s, err)
		lastErr = err
		if trouble.IsZero() {
			trouble = time.Now()
		}
		if d.expired(trouble) {
			return initiator.Result{}, d.noPathError(lastErr)
		}
	}
}

func (d *Device) expired(since time.Time) bool {
	return d.cfg.NoPathTimeout >= 0 && time.Since(since) >= d.cfg.NoPathTimeout
}

func (d *Device) noPathError(lastErr error) error {
	if lastErr == nil {
		lastErr = d.lastPathFailure()
	}
	if lastErr == nil {
		return fmt.Errorf("%w within %v", ErrNoPath, d.cfg.NoPathTimeout)
	}
	return fmt.Errorf("%w within %v (last path error: %v)", ErrNoPath, d.cfg.NoPathTimeout, lastErr)
}

// lastPathFailure is the most recent reason a path failed, to explain a
// command that found no path at all.
func (d *Device) lastPathFailure() error {
	var reason string
	var when time.Time
	for _, p := range d.paths {
		p.mu.Lock()
		if p.lastFailure.After(when) {
			reason, when = p.lastReason, p.lastFailure
		}
		p.mu.Unlock()
	}
	if reason == "" {
		return nil
	}
	return errors.New(reason)
}

// waitForPath waits until a path comes into service, as long as the
// command has been in trouble for less than the no-path timeout.
func (d *Device) waitForPath(ctx context.Context, trouble time.Time, lastErr error) error {
	d.mu.Lock()
	ch := d.changed
	d.mu.Unlock()
	// A path may have come back between pick and taking ch.
	if d.sel.pick(d.paths) != nil {
		return nil
	}
	var timeout <-chan time.Time
	if d.cfg.NoPathTimeout >= 0 {
		left := d.cfg.NoPathTimeout - time.Since(trouble)
		if left <= 0 {
			return d.noPathError(lastErr)
		}
		t := time.NewTimer(left)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
		return nil
	case <-timeout:
		return d.noPathError(lastErr)
	case <-ctx.Done():
		return ctx.Err()
	case <-d.life.Done():
		return ErrDeviceClosed
	}
}

// pathsChanged wakes the commands that wait for a path.
func (d *Device) pathsChanged() {
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// closeDrainTimeout bounds how long Close lets commands in progress
// finish before it stops the paths under them.
const closeDrainTimeout = 10 * time.Second

// Close lets commands in progress finish (for up to 10 s), stops the
// background work, and logs every session out. It leaks no goroutine.
func (d *Device) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.drain(closeDrainTimeout)
	d.endLife()
	d.wg.Wait()
	var wg sync.WaitGroup
	errs := make([]error, len(d.paths))
	for i, p := range d.paths {
		if s := p.sess.Swap(nil); s != nil {
			wg.Go(func() { errs[i] = s.Close() })
		}
	}
	wg.Wait()
	d.log.Info("multipath device closed")
	return errors.Join(errs...)
}

// drain waits until no Execute call is in progress, or timeout passes.
func (d *Device) drain(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for d.active.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(defaultDrainPollEvery)
	}
}

// WWID is the logical unit's identifier (VPD page 0x83), the same on
// every path.
func (d *Device) WWID() string { return d.wwid }

// LogicalUnit is the SCSI block logic running over the device.
func (d *Device) LogicalUnit() *initiator.LogicalUnit { return d.lu }

// The blockdev.Device methods, served by the logical unit over all paths.

func (d *Device) ReadAt(p []byte, off int64) (int, error)  { return d.lu.ReadAt(p, off) }
func (d *Device) WriteAt(p []byte, off int64) (int, error) { return d.lu.WriteAt(p, off) }
func (d *Device) Sync() error                              { return d.lu.Sync() }
func (d *Device) Unmap(off, length int64) error            { return d.lu.Unmap(off, length) }
func (d *Device) Size() int64                              { return d.lu.Size() }
func (d *Device) BlockSize() int                           { return d.lu.BlockSize() }

// WriteAtFUA writes p durably (WRITE with FUA), cheaper than WriteAt and Sync.
func (d *Device) WriteAtFUA(p []byte, off int64) (int, error) {
	return d.lu.WriteAtContext(context.Background(), p, off, true)
}
