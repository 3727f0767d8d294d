package vss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hitkit/hitkit/groupapi"
	"github.com/sirupsen/logrus"
)

// BackupOptions says what Backup does.
type BackupOptions struct {
	// To is a directory (the image is named after the snapshot) or a
	// file name.
	To string
	// Since makes an incremental image: only what changed since this
	// snapshot, whose image must be in the destination's directory.
	Since         string
	Mountpoint    string // as in CreateOptions
	FreezeTimeout time.Duration
	// KeepSnapshots, if above 0, deletes the oldest snapshots that backup
	// took of the volume beyond this many, once the image is written (see
	// PruneBackups).
	KeepSnapshots int
	Guard         func(mountpoint string) (*ThawGuard, error) // as in CreateOptions
	// Progress, if set, is called once the size to read is known, and
	// returns the function that hears of every byte read.
	Progress func(total int64) func(n int64)
	Log      *logrus.Entry
}

// BackupResult reports a backup.
type BackupResult struct {
	Volume      string  `json:"volume"`
	Snapshot    string  `json:"snapshot"`
	Kind        string  `json:"kind"`
	Parent      string  `json:"parent_snapshot,omitempty"`
	Image       string  `json:"image"`
	Manifest    string  `json:"manifest"`
	Size        int64   `json:"size"`
	BytesRead   int64   `json:"bytes_read"`
	DataBytes   int64   `json:"data_bytes"`
	ImageBytes  int64   `json:"image_bytes"`
	ImageSHA256 string  `json:"image_sha256"`
	Frozen      *Frozen `json:"frozen,omitempty"`
	// Pruned are the older backup snapshots deleted by KeepSnapshots.
	Pruned []string `json:"pruned,omitempty"`
}

// Backup takes a consistent snapshot of the volume (Create), sets it
// online only while it reads it through a session of its own, and writes
// a full or incremental image and its manifest. The snapshot is set
// offline again whatever happens; it stays on the array, as the base of
// the next incremental. Only once all of that succeeded, KeepSnapshots
// prunes the older backup snapshots.
func Backup(ctx context.Context, a *Access, api *groupapi.Client, o BackupOptions) (BackupResult, error) {
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	res, err := backup(ctx, a, api, o)
	if err != nil || o.KeepSnapshots <= 0 {
		return res, err
	}
	res.Pruned, err = PruneBackups(api, a, o.KeepSnapshots, res.Snapshot)
	if len(res.Pruned) > 0 {
		o.Log.WithFields(logrus.Fields{"volume": a.Volume, "pruned": res.Pruned}).Info("old backup snapshots deleted")
	}
	if err != nil {
		return res, fmt.Errorf("image %s written, but deleting old backup snapshots failed: %w", res.Image, err)
	}
	return res, nil
}

// PruneBackups deletes the oldest offline snapshots of the volume that
// backup took, beyond keep (Prune). It spares base, the snapshot of the
// newest image and so the base of the next incremental, and any snapshot
// that a backup or mount in progress on this host has recorded: such a
// backup may not have set its snapshot online yet.
func PruneBackups(api *groupapi.Client, a *Access, keep int, base string) ([]string, error) {
	spare := []string{base}
	recs, err := Records(a.StateDir)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Volume == a.Volume && r.Live() {
			spare = append(spare, r.Snapshot)
		}
	}
	return Prune(api, a.Volume, KindBackup, keep, spare...)
}

func backup(ctx context.Context, a *Access, api *groupapi.Client, o BackupOptions) (res BackupResult, err error) {
	res.Volume = a.Volume
	dir, file, err := destination(o.To)
	if err != nil {
		return res, err
	}
	var parent *ImageFile
	if o.Since != "" {
		if parent, err = findImage(dir, a.Volume, o.Since); err != nil {
			return res, err
		}
		if _, err := api.Snapshot(a.Volume, o.Since); err != nil {
			return res, baseError(a.Volume, o.Since, err)
		}
	}
	created, err := Create(ctx, a, api, CreateOptions{
		Mountpoint: o.Mountpoint, Kind: KindBackup, FreezeTimeout: o.FreezeTimeout, Guard: o.Guard, Log: o.Log,
	})
	if err != nil {
		return res, err
	}
	snap := created.Snapshot
	res.Snapshot, res.Frozen, res.Size = snap.Name, created.Frozen, snap.Size
	if file == "" {
		file = snap.Name + ImageExt
	}
	path := filepath.Join(dir, file)
	if _, err := os.Lstat(path); err == nil {
		return res, fmt.Errorf("%s exists already; images are never overwritten", path)
	}

	rec := newRecord(UseBackup)
	rec.Name, rec.Volume, rec.Snapshot = a.Name, a.Volume, snap.Name
	if err := saveRecord(a.StateDir, rec); err != nil {
		return res, fmt.Errorf("recording the backup: %w", err)
	}
	defer func() {
		// The snapshot goes offline even when ctx was cancelled by a signal.
		if oerr := setOffline(api, a.Volume, snap.Name); oerr != nil {
			err = errors.Join(err, oerr)
			return
		}
		removeRecord(a.StateDir, rec)
	}()
	if _, err := api.SetSnapshot(a.Volume, snap.Name, groupapi.SetSnapshot{Online: ptr(true)}); err != nil {
		return res, fmt.Errorf("setting %s online: %w", snap.Name, err)
	}

	h := Header{Volume: a.Volume, Snapshot: snap.Name, SnapshotTime: snap.Created, Created: time.Now().UTC()}
	var changed []groupapi.Extent
	total := snap.Size
	if parent != nil {
		cb, err := api.ChangedBlocks(a.Volume, o.Since, snap.Name)
		if err != nil {
			return res, baseError(a.Volume, o.Since, err)
		}
		// Not nil even when nothing changed: nil makes a full image.
		changed = append([]groupapi.Extent{}, cb.Extents...)
		h.Granularity = cb.Granularity
		h.Parent, h.ParentImage, h.ParentImageSHA256 = o.Since, filepath.Base(parent.Path), parent.Manifest.ImageSHA256
		total = 0
		for _, e := range changed {
			total += e.Length
		}
		res.Parent = o.Since
	}
	lu, closeUnit, err := a.openUnit(ctx, snap.IQN)
	if err != nil {
		return res, err
	}
	defer closeUnit()
	var progress func(int64)
	if o.Progress != nil {
		progress = o.Progress(total)
	}
	cr, err := writeImageFile(ctx, path, lu, h, changed, progress)
	res.BytesRead = cr.BytesRead
	if err != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("backup of %s interrupted after %d bytes; no image written, snapshot %s set offline", a.Volume, cr.BytesRead, snap.Name)
		}
		return res, fmt.Errorf("copying snapshot %s: %w", snap.Name, err)
	}
	m := cr.Manifest
	res.Kind, res.Image, res.Manifest = m.Kind, path, ManifestPath(path)
	res.DataBytes, res.ImageBytes, res.ImageSHA256 = m.DataBytes, m.ImageBytes, m.ImageSHA256
	o.Log.WithFields(logrus.Fields{"volume": a.Volume, "snapshot": snap.Name, "kind": m.Kind, "bytes_read": cr.BytesRead}).Info("backup written")
	return res, nil
}

// baseError explains why the base snapshot of an incremental could not be
// used. When the array no longer has it, its changes cannot be listed, and
// only a full backup can start a new chain.
func baseError(volume, since string, err error) error {
	var se *groupapi.StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return fmt.Errorf("the base snapshot %s of %s is gone from the array (deleted, or pruned by --keep-snapshots): "+
			"an incremental cannot be made from it; take a full backup (without --since)", since, volume)
	}
	return fmt.Errorf("snapshot %s (the base of the incremental): %w", since, err)
}

// destination splits --to into a directory and a file name ("" when the
// image is to be named after the snapshot).
func destination(to string) (dir, file string, err error) {
	if to == "" {
		return "", "", errors.New("no destination for the image")
	}
	if st, err := os.Stat(to); err == nil && st.IsDir() {
		return to, "", nil
	}
	dir = filepath.Dir(to)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", "", fmt.Errorf("%s: no such directory for the image", dir)
	}
	file = filepath.Base(to)
	if !strings.HasSuffix(file, ImageExt) {
		file += ImageExt
	}
	return dir, file, nil
}

// findImage finds the image of a snapshot of the volume in dir, by the
// manifests there.
func findImage(dir, volume, snap string) (*ImageFile, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*"+ManifestExt))
	if err != nil {
		return nil, err
	}
	for _, mp := range matches {
		b, err := os.ReadFile(mp)
		if err != nil {
			continue
		}
		var m Manifest
		if json.Unmarshal(b, &m) != nil || m.Volume != volume || m.Snapshot != snap {
			continue
		}
		img, err := LoadImage(filepath.Join(dir, filepath.Base(m.Image)))
		if err != nil {
			return nil, err
		}
		return &img, nil
	}
	return nil, fmt.Errorf("no image of snapshot %s of %s in %s: an incremental image is kept beside its parent", snap, volume, dir)
}
