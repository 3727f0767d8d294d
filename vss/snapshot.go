package vss

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hitkit/hitkit/groupapi"
	"github.com/sirupsen/logrus"
)

// Snapshots that hitkit takes say so in their description, so that
// pruning never touches anyone else's.
const (
	descPrefix = "hitkit "
	KindCreate = "create" // hitkit snapshot create
	KindBackup = "backup" // hitkit backup
)

func description(kind, host, mountpoint string) string {
	d := descPrefix + kind + " host=" + host
	if mountpoint != "" {
		d += " mountpoint=" + mountpoint + " frozen"
	} else {
		d += " crash-consistent"
	}
	return d
}

// MadeBy reports which hitkit command took a snapshot ("" for none).
func MadeBy(s groupapi.Snapshot) string {
	rest, ok := strings.CutPrefix(s.Description, descPrefix)
	if !ok {
		return ""
	}
	kind, _, _ := strings.Cut(rest, " ")
	return kind
}

// CreateOptions says what Create does.
type CreateOptions struct {
	// Mountpoint is where the volume's filesystem is mounted: it is frozen
	// around the snapshot. Empty: found from the volume's device when
	// connected; not mounted, the snapshot is crash-consistent.
	Mountpoint    string
	Kind          string        // KindCreate (default) or KindBackup
	Keep          int           // prune this kind beyond Keep (0: never)
	FreezeTimeout time.Duration // DefaultFreezeTimeout
	// Guard, if set, starts a thaw guard for the mountpoint before the
	// freeze (see StartThawGuard), released after the thaw.
	Guard func(mountpoint string) (*ThawGuard, error)
	Log   *logrus.Entry
}

// Created reports a snapshot taken by Create.
type Created struct {
	Volume   string            `json:"volume"`
	Snapshot groupapi.Snapshot `json:"snapshot"`
	// Frozen is set when a filesystem was frozen around the snapshot.
	Frozen *Frozen  `json:"frozen,omitempty"`
	Pruned []string `json:"pruned,omitempty"`
}

// Mountpoint returns where the volume's filesystem is mounted read-write
// on this host ("" when it is not, or the volume is not connected).
func (a *Access) Mountpoint() (string, error) {
	if !a.Connected {
		return "", nil
	}
	_, rdev, err := BlockDevice(a.Link)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", a.Name, err)
	}
	ms, err := MountsOf(rdev)
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if !m.ReadOnly() {
			return m.Point, nil
		}
	}
	return "", nil
}

// Create takes a snapshot of the volume: with the filesystem frozen when
// it is mounted (for at most FreezeTimeout, and thawed whatever happens),
// crash-consistent otherwise. Then it prunes the oldest snapshots of the
// same kind beyond Keep, never one that is online.
func Create(ctx context.Context, a *Access, api *groupapi.Client, o CreateOptions) (Created, error) {
	if o.Kind == "" {
		o.Kind = KindCreate
	}
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	mp := o.Mountpoint
	if mp == "" {
		var err error
		if mp, err = a.Mountpoint(); err != nil {
			return Created{}, err
		}
	}
	host, _ := os.Hostname()
	req := groupapi.CreateSnapshot{Description: description(o.Kind, host, mp)}
	out := Created{Volume: a.Volume}
	log := o.Log.WithField("volume", a.Volume)
	take := func() (groupapi.Snapshot, error) { return api.CreateSnapshot(a.Volume, req) }
	if mp == "" {
		snap, err := take()
		if err != nil {
			return out, fmt.Errorf("snapshot of %s: %w", a.Volume, err)
		}
		out.Snapshot = snap
	} else {
		late := func(s groupapi.Snapshot, err error) {
			if err != nil {
				return
			}
			// Taken after the thaw: not consistent, so not kept.
			if derr := api.DeleteSnapshot(a.Volume, s.Name); derr != nil {
				log.WithError(derr).WithField("snapshot", s.Name).Error("deleting a snapshot that the array took after the thaw")
			}
		}
		if o.Guard != nil {
			g, err := o.Guard(mp)
			if err != nil {
				// Still bounded and signal-safe; only SIGKILL is uncovered.
				log.WithError(err).Warn("freezing without a thaw guard")
			} else {
				defer g.Release()
			}
		}
		snap, fz, err := WhileFrozen(ctx, mp, o.FreezeTimeout, take, late)
		if err != nil {
			return out, fmt.Errorf("snapshot of %s: %w", a.Volume, err)
		}
		out.Snapshot, out.Frozen = snap, &fz
		log.WithFields(logrus.Fields{"snapshot": snap.Name, "mountpoint": mp, "frozen": fz.Duration}).Info("snapshot taken with the filesystem frozen")
	}
	if o.Keep > 0 {
		pruned, err := Prune(api, a.Volume, o.Kind, o.Keep)
		out.Pruned = pruned
		if err != nil {
			return out, fmt.Errorf("snapshot %s taken, but pruning failed: %w", out.Snapshot.Name, err)
		}
	}
	return out, nil
}

// Delete deletes a snapshot of the volume on the array, unless this host
// uses it: mounted, or being read by a backup.
func Delete(api *groupapi.Client, a *Access, snap string) error {
	recs, err := Records(a.StateDir)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Volume == a.Volume && r.Snapshot == snap && r.Live() {
			return fmt.Errorf("snapshot %s is in use on this host (%s by pid %d); unmount it first", snap, r.Use, r.PID)
		}
	}
	return api.DeleteSnapshot(a.Volume, snap)
}

// Prune deletes the oldest offline snapshots of the volume that hitkit
// took as kind, beyond keep. It never deletes one named in spare.
func Prune(api *groupapi.Client, volume, kind string, keep int, spare ...string) ([]string, error) {
	snaps, err := api.Snapshots(volume)
	if err != nil {
		return nil, err
	}
	var pruned []string
	for _, name := range pruneable(snaps, kind, keep, spare) {
		err := api.DeleteSnapshot(volume, name)
		var se *groupapi.StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			continue // deleted meanwhile, by another prune
		}
		if err != nil {
			return pruned, fmt.Errorf("deleting %s: %w", name, err)
		}
		pruned = append(pruned, name)
	}
	return pruned, nil
}

// pruneable picks, oldest first, the snapshots that hitkit took as kind
// beyond the newest keep, except those online (in use: a mount or a
// backup) and those named in spare. Those it spares still count among
// the kept, so more than keep may stay.
func pruneable(snaps []groupapi.Snapshot, kind string, keep int, spare []string) []string {
	var mine []groupapi.Snapshot
	for _, s := range snaps {
		if MadeBy(s) == kind {
			mine = append(mine, s)
		}
	}
	sort.SliceStable(mine, func(i, j int) bool { return mine[i].Created.Before(mine[j].Created) })
	var out []string
	for i := 0; i < len(mine)-keep; i++ {
		if mine[i].Online || slices.Contains(spare, mine[i].Name) {
			continue
		}
		out = append(out, mine[i].Name)
	}
	return out
}
