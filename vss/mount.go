package vss

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// connectTimeout bounds hitkitd's connect of a snapshot.
const connectTimeout = 2 * time.Minute

// SnapshotDevice is the name hitkitd gives a connected snapshot.
func SnapshotDevice(volume, snap string) string {
	if n := "snap." + snap; daemon.ValidName(n) {
		return n
	}
	return fmt.Sprintf("snap.%x", sha256.Sum256([]byte(volume+"@"+snap)))[:5+24]
}

// Mounted reports a snapshot mount.
type Mounted struct {
	Volume      string `json:"volume"`
	Snapshot    string `json:"snapshot"`
	Path        string `json:"path"`
	BlockDevice string `json:"block_device"`
	FSType      string `json:"fstype"`
}

// Mount sets a snapshot online, has hitkitd connect it read-only, and
// mounts its filesystem read-only at path (created if missing). A record
// in the state directory says so from before the snapshot goes online;
// on failure everything done is undone.
func Mount(ctx context.Context, a *Access, api *groupapi.Client, hitkitd *daemon.Client, snapName, path string) (m Mounted, err error) {
	path, err = filepath.Abs(path)
	if err != nil {
		return m, err
	}
	snap, err := api.Snapshot(a.Volume, snapName)
	if err != nil {
		return m, fmt.Errorf("snapshot %s of %s: %w", snapName, a.Volume, err)
	}
	if snap.Online {
		return m, fmt.Errorf("snapshot %s is online already (in use, or left online: hitkit snapshot cleanup sets stray ones offline)", snapName)
	}
	if _, ok, err := mountedAt(path); err != nil || ok {
		return m, fmt.Errorf("%s is a mount point already", path)
	}
	rec := newRecord(UseMount)
	rec.Name, rec.Volume, rec.Snapshot, rec.Path = a.Name, a.Volume, snapName, path
	rec.Device = SnapshotDevice(a.Volume, snapName)
	if err := saveRecord(a.StateDir, rec); err != nil {
		return m, fmt.Errorf("recording the mount: %w", err)
	}
	log := logrus.WithFields(logrus.Fields{"volume": a.Volume, "snapshot": snapName})
	defer func() {
		if err != nil {
			if uerr := release(context.WithoutCancel(ctx), api, hitkitd, a.StateDir, rec, log); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undoing: %w", uerr))
			}
		}
	}()
	if _, err = api.SetSnapshot(a.Volume, snapName, groupapi.SetSnapshot{Online: ptr(true)}); err != nil {
		return m, fmt.Errorf("setting %s online: %w", snapName, err)
	}
	req := a.Request
	req.Name, req.Target, req.ReadOnly, req.LoginAtBoot = rec.Device, snap.IQN, true, false
	// The page map is the volume's, not the snapshot's.
	req.GroupAPI, req.GroupFingerprint, req.GroupAdminPassword = "", "", ""
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	vi, err := hitkitd.Connect(cctx, req)
	cancel()
	if err != nil {
		return m, fmt.Errorf("connecting snapshot %s: %w", snapName, err)
	}
	rec.BlockDevice = vi.BlockDevice
	if _, err = os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(path, 0o755); err != nil {
			return m, err
		}
		rec.MadeDir = true
	}
	if err = saveRecord(a.StateDir, rec); err != nil {
		return m, err
	}
	fstype, err := probeFS(vi.BlockDevice)
	if err != nil {
		return m, err
	}
	if err = unix.Mount(vi.BlockDevice, path, fstype, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, roOptions(fstype)); err != nil {
		return m, fmt.Errorf("mounting %s (%s) read-only at %s: %w", vi.BlockDevice, fstype, path, err)
	}
	rec.Mounted = true
	if err = saveRecord(a.StateDir, rec); err != nil {
		unix.Unmount(path, 0)
		return m, err
	}
	log.WithFields(logrus.Fields{"path": path, "device": vi.BlockDevice}).Info("snapshot mounted")
	return Mounted{Volume: a.Volume, Snapshot: snapName, Path: path, BlockDevice: vi.BlockDevice, FSType: fstype}, nil
}

func ptr[T any](v T) *T { return &v }

// roOptions keep a read-only mount from replaying a journal, which would
// be a write: a snapshot of a frozen ext4 has a clean one anyway.
func roOptions(fstype string) string {
	switch fstype {
	case "ext2", "ext3", "ext4":
		return "noload"
	case "xfs":
		return "norecovery,nouuid"
	}
	return ""
}

// probeFS names the filesystem on a device from its superblock.
func probeFS(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, 0); err != nil {
		return "", fmt.Errorf("reading %s: %w", dev, err)
	}
	switch {
	case binary.LittleEndian.Uint16(b[1024+56:]) == 0xef53:
		return "ext4", nil // the ext4 driver mounts ext2 and ext3 too
	case string(b[:4]) == "XFSB":
		return "xfs", nil
	}
	return "", fmt.Errorf("%s: no ext2/3/4 or XFS filesystem found", dev)
}

// FindRecord returns the record of the snapshot mounted at path.
func FindRecord(state, path string) (Record, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return Record{}, err
	}
	recs, err := Records(state)
	if err != nil {
		return Record{}, err
	}
	for _, r := range recs {
		if r.Use == UseMount && r.Path == path {
			return r, nil
		}
	}
	return Record{}, fmt.Errorf("no snapshot is mounted at %s by hitkit (no record in %s)", path, recordDir(state))
}

// Unmount undoes Mount: unmount, disconnect, offline, forget.
func Unmount(ctx context.Context, api *groupapi.Client, hitkitd *daemon.Client, state string, rec Record) error {
	return release(ctx, api, hitkitd, state, rec, logrus.WithFields(logrus.Fields{"volume": rec.Volume, "snapshot": rec.Snapshot}))
}

// release takes down whatever of a snapshot's use exists, in order:
// the mount, hitkitd's device, the online state, the record. It goes on
// past errors where the next step is still safe, and removes the record
// only when the snapshot is offline.
func release(ctx context.Context, api *groupapi.Client, hitkitd *daemon.Client, state string, rec Record, log *logrus.Entry) error {
	var errs []error
	if rec.Use == UseMount && rec.Path != "" {
		if mountIsDevice(rec) {
			if err := unix.Unmount(rec.Path, 0); err != nil {
				return fmt.Errorf("unmounting %s: %w (is it in use?)", rec.Path, err)
			}
		}
		if rec.MadeDir {
			os.Remove(rec.Path) // only if empty
		}
	}
	if rec.Device != "" && hitkitd != nil {
		if err := disconnect(ctx, hitkitd, rec.Device); err != nil {
			errs = append(errs, fmt.Errorf("disconnecting %s: %w", rec.Device, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // still connected: leave it online
	}
	if err := setOffline(api, rec.Volume, rec.Snapshot); err != nil {
		return err
	}
	log.Info("snapshot offline")
	return removeRecord(state, rec)
}

// mountIsDevice reports whether what is mounted at the record's path is
// the snapshot (not something mounted there since).
func mountIsDevice(rec Record) bool {
	m, ok, err := mountedAt(rec.Path)
	if err != nil || !ok {
		return false
	}
	if rec.BlockDevice == "" {
		return false
	}
	_, rdev, err := BlockDevice(rec.BlockDevice)
	if err != nil {
		return m.Source == rec.BlockDevice
	}
	return m.onDevice(rdev)
}

func setOffline(api *groupapi.Client, volume, snap string) error {
	_, err := api.SetSnapshot(volume, snap, groupapi.SetSnapshot{Online: ptr(false)})
	var se *groupapi.StatusError
	if errors.As(err, &se) && se.Status == 404 {
		return nil // deleted meanwhile: offline enough
	}
	if err != nil {
		return fmt.Errorf("setting %s offline: %w", snap, err)
	}
	return nil
}

// disconnectTimeout bounds the retries of a snapshot's disconnect: right
// after an unmount the kernel may hold the loop device, or the FUSE
// unmount may take a while, and hitkitd then answers with an error that
// a later call gets past.
const disconnectTimeout = 60 * time.Second

func disconnect(ctx context.Context, hitkitd *daemon.Client, name string) error {
	deadline := time.Now().Add(disconnectTimeout)
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := hitkitd.Disconnect(dctx, name)
		cancel()
		if err == nil || isNotConnected(err) || errors.Is(err, daemon.ErrNotRunning) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
