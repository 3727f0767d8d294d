package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hitkit/hitkit/blockdev"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/mpio"
	"github.com/sirupsen/logrus"
)

// syncTimeout bounds the flush when a volume closes: with every path down,
// Sync would otherwise wait for the whole no-path timeout, and the daemon
// must stay stoppable.
const syncTimeout = 5 * time.Second

// volume is one connected LU and its exports.
type volume struct {
	req  ConnectRequest
	dev  *mpio.Device
	nbd  *blockdev.NBDServer
	loop *blockdev.LoopExport
	link string
	mnt  string // the FUSE mount point, removed with the export
	log  *logrus.Entry
}

// paths under the runtime directory
func nbdSocket(runtime, name string) string { return filepath.Join(runtime, name+".nbd") }

// DevLink is where hitkitd links a volume's block device: RUNTIME/dev/NAME.
func DevLink(runtime, name string) string { return filepath.Join(runtime, "dev", name) }

func fuseDir(runtime, name string) string { return filepath.Join(runtime, "fuse", name) }

// openVolume logs in, and exports the device over NBD and as a loop
// device linked from RUNTIME/dev/NAME. On failure it undoes what it did.
func openVolume(ctx context.Context, runtime string, r ConnectRequest, log *logrus.Entry) (*volume, error) {
	cfg, err := deviceConfig(r, log)
	if err != nil {
		return nil, err
	}
	v := &volume{req: r, log: log, link: DevLink(runtime, r.Name), mnt: fuseDir(runtime, r.Name)}
	if v.dev, err = mpio.Open(ctx, cfg); err != nil {
		return nil, err
	}
	if err := v.export(runtime); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

func (v *volume) export(runtime string) error {
	var err error
	name := v.req.Name
	var dev blockdev.Device = v.dev
	if v.req.ReadOnly {
		dev = readOnlyDevice{v.dev}
	}
	v.nbd, err = blockdev.ServeNBD(dev, nbdSocket(runtime, name), blockdev.NBDOptions{
		ExportName: name, Description: v.req.Target, Logger: v.log,
	})
	if err != nil {
		return fmt.Errorf("NBD export: %w", err)
	}
	v.loop, err = blockdev.ExportLoop(dev, v.mnt, blockdev.LoopOptions{
		Logger: v.log, CloseTimeout: exportCloseTimeout,
	})
	if err != nil {
		return fmt.Errorf("loop device: %w", err)
	}
	return v.loop.Link(v.link)
}

// exportCloseTimeout bounds each step of taking the loop device and its
// FUSE file away. The kernel lets go of a detached loop device's backing
// file asynchronously, and the FUSE unmount waits for that; on a loaded
// host it has been seen to take more than 5 s.
const exportCloseTimeout = 20 * time.Second

func deviceConfig(r ConnectRequest, log *logrus.Entry) (mpio.Config, error) {
	plan, err := planPaths(r)
	if err != nil {
		return mpio.Config{}, err
	}
	session, err := r.SessionConfig()
	if err != nil {
		return mpio.Config{}, err
	}
	session.Log = log
	cfg := mpio.Config{
		Session:  session,
		LUN:      r.LUN,
		Paths:    plan.Paths,
		Sessions: plan.Sessions,
		Log:      log,
	}
	if r.GroupAdminPassword != "" {
		if cfg.PageMap, err = fetchPageMap(r); err != nil {
			return cfg, err
		}
		cfg.Sessions = sessionCount(r, distinct(cfg.PageMap.Members))
		log.WithFields(logrus.Fields{"members": cfg.PageMap.Members, "sessions": cfg.Sessions}).Info("slice-aware: using the group's page map")
	}
	if r.Policy != "" {
		if cfg.Policy, err = mpio.ParsePolicy(r.Policy); err != nil {
			return cfg, err
		}
	}
	if r.NoPathTimeout != "" {
		if cfg.NoPathTimeout, err = time.ParseDuration(r.NoPathTimeout); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// SessionConfig is one login as the request describes it: portal,
// target, initiator name, CHAP (one-way and mutual, with its algorithms)
// and digests. Commands that log in beside hitkitd with a volume's
// credentials (package vss) start from it too.
func (r ConnectRequest) SessionConfig() (initiator.Config, error) {
	cfg := initiator.Config{
		Portal: r.Portal, TargetName: r.Target, InitiatorName: r.InitiatorName,
		CHAPUser:     r.CHAPUser,
		HeaderDigest: r.HeaderDigest, DataDigest: r.DataDigest,
	}
	if r.CHAPSecret != "" {
		cfg.CHAPSecret = []byte(r.CHAPSecret)
	}
	if r.MutualUser != "" {
		cfg.MutualUser, cfg.MutualSecret = r.MutualUser, []byte(r.MutualSecret)
	}
	if r.CHAPAlgorithms != "" {
		var err error
		if cfg.CHAPAlgorithms, err = iscsi.ParseChapAlgorithms(r.CHAPAlgorithms); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// distinct counts the different numbers in ns.
func distinct(ns []int) int {
	seen := map[int]bool{}
	for _, n := range ns {
		seen[n] = true
	}
	return len(seen)
}

func (v *volume) info() VolumeInfo {
	vi := VolumeInfo{
		Name: v.req.Name, Portal: v.req.Portal, Link: v.link,
		LoginAtBoot: v.req.LoginAtBoot, Status: v.dev.Status(),
	}
	if v.req.GroupFingerprint != "" {
		vi.GroupAPI, vi.GroupFingerprint = v.req.GroupAPIAddr(), v.req.GroupFingerprint
	}
	if v.loop != nil {
		vi.BlockDevice = v.loop.LoopDevice()
	}
	if v.nbd != nil {
		vi.NBDURI = v.nbd.URI()
	}
	return vi
}

// unexport removes the loop device first: while the block device is
// mounted it fails with blockdev.ErrBusy and leaves everything in place,
// so a disconnect of a volume in use changes nothing.
func (v *volume) unexport() error {
	if v.loop != nil {
		if err := v.loop.Close(); err != nil {
			return err
		}
		v.loop = nil
		os.Remove(v.mnt) // only the empty mount point; never what it held
	}
	if v.nbd != nil {
		if err := v.nbd.Close(); err != nil {
			v.log.WithError(err).Warn("closing the NBD export")
		}
		v.nbd = nil
	}
	return nil
}

// close flushes and logs out, after the exports are gone so that the
// flush covers every write they passed on. Both waits are bounded.
func (v *volume) close() error {
	err := v.unexport()
	if errors.Is(err, blockdev.ErrBusy) {
		v.log.WithError(err).Error("the block device is still in use; closing the sessions anyway")
	}
	if serr := v.sync(); serr != nil {
		v.log.WithError(serr).Warn("flush before logout")
	}
	if cerr := v.dev.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func (v *volume) sync() error {
	if !v.usable() {
		// Nothing can reach the array: waiting would only delay the stop,
		// and leave a command in flight for Close to wait on.
		return errors.New("no usable path, so nothing could be flushed")
	}
	done := make(chan error, 1)
	go func() { done <- v.dev.Sync() }()
	select {
	case err := <-done:
		return err
	case <-time.After(syncTimeout):
		return fmt.Errorf("flush did not finish within %v", syncTimeout)
	}
}

// usable reports whether any path can carry a command now.
func (v *volume) usable() bool {
	for _, p := range v.dev.Status().Paths {
		if p.State == mpio.StateActive || p.State == mpio.StateStandby {
			return true
		}
	}
	return false
}
