package array

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hitkit/hitkit/array/disk"
	"github.com/hitkit/hitkit/array/target"
	"github.com/sirupsen/logrus"
)

var (
	// ErrVolumeBusy refuses to delete a volume that has sessions.
	ErrVolumeBusy = errors.New("volume has sessions")
	// ErrReadWriteOffline refuses to make an offline snapshot read-write.
	ErrReadWriteOffline = errors.New("read-write needs the snapshot online")
)

// snapshotTargets are the iSCSI targets of a volume's online snapshots.
type snapshotTargets struct {
	mu sync.Mutex
	m  map[string]*target.Target // by snapshot name
}

// SnapshotIQN is the target name of a volume's snapshot: the volume's IQN,
// a colon and the snapshot's name. Volume names have no colon, so no
// snapshot's name is another volume's.
func SnapshotIQN(volumeIQN, snap string) string { return volumeIQN + ":" + snap }

// snapshotBackend is a snapshot as a disk.Backend, for its target.
type snapshotBackend struct {
	vol  *Volume
	name string
	size int64
}

func (b *snapshotBackend) ReadAt(p []byte, off int64) (int, error) {
	return b.vol.ReadSnapshot(b.name, p, off)
}

func (b *snapshotBackend) WriteAt(p []byte, off int64) (int, error) {
	return b.vol.WriteSnapshot(b.name, p, off)
}

func (b *snapshotBackend) Size() int64 { return b.size }
func (b *snapshotBackend) Sync() error { return b.vol.Sync() }

// Unmap writes zeroes into the snapshot's own store: the snapshot reads
// back zeroes there, as LBPRZ promises, and the older snapshots keep
// their contents.
func (b *snapshotBackend) Unmap(off, length int64) error {
	zero := make([]byte, min(length, SnapshotChunk))
	for length > 0 {
		n := min(length, int64(len(zero)))
		if _, err := b.WriteAt(zero[:n], off); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}

// serveSnapshots applies a volume's snapshot policy, hooks its snapshot
// events, and serves the snapshots that were online.
func (g *Group) serveSnapshots(v *servedVolume) error {
	pct := DefaultSnapshotReserve
	if v.cfg.SnapshotReserve != nil {
		pct = *v.cfg.SnapshotReserve
	}
	if err := v.store.SetSnapshotPolicy(pct, whenFullOrDefault(v.cfg.SnapshotWhenFull)); err != nil {
		return fmt.Errorf("volume %s: %w", v.cfg.Name, err)
	}
	v.store.notifySnapshots(func(ev SnapshotEvent) { g.snapshotEvent(v, ev) })
	for _, s := range v.store.Snapshots() {
		if s.Online {
			if err := g.serveSnapshot(v, s.Name, s.ReadWrite); err != nil {
				return err
			}
		}
	}
	return nil
}

func whenFullOrDefault(s string) string {
	if s == "" {
		return ReserveDeleteOldest
	}
	return s
}

// OnSnapshotEvent sets the function that hears about what snapshots do
// by themselves (the reserve filling up, the policy deleting one); the
// management API records them as events.
func (g *Group) OnSnapshotEvent(fn func(SnapshotEvent)) { g.snapshotHook.Store(&fn) }

func (g *Group) snapshotEvent(v *servedVolume, ev SnapshotEvent) {
	g.log.WithFields(logrus.Fields{"volume": ev.Volume, "snapshot": ev.Snapshot, "event": ev.Kind}).Warn(ev.Detail)
	if ev.Kind == "snapshot-deleted" {
		g.unserveSnapshot(v, ev.Snapshot)
	}
	if fn := g.snapshotHook.Load(); fn != nil && *fn != nil {
		(*fn)(ev)
	}
}

// snapshotDisk is the SCSI disk over a snapshot: read-only unless asked,
// with an identity of its own so that no host takes it for a path to the
// volume. It is thin like the volume: UNMAP of a read-only snapshot is
// then refused as WRITE PROTECTED, not as an unsupported command.
func (g *Group) snapshotDisk(v *servedVolume, info SnapshotInfo, readWrite bool) (*disk.Disk, error) {
	id := g.identity(v.cfg)
	id.Serial = info.Serial
	return disk.New(&snapshotBackend{vol: v.store, name: info.Name, size: info.Size}, id,
		disk.Options{ReadOnly: !readWrite, ThinProvisioning: true, WriteCache: true, NoPowerOnAttention: g.noPowerOnAttention})
}

// serveSnapshot makes a snapshot's target take logins, with the volume's
// access records and CHAP. It answers at the group IP with a redirect to
// a port of the volume's members, like the volume.
func (g *Group) serveSnapshot(v *servedVolume, name string, readWrite bool) error {
	info, err := v.store.Snapshot(name)
	if err != nil {
		return err
	}
	d, err := g.snapshotDisk(v, info, readWrite)
	if err != nil {
		return fmt.Errorf("snapshot %s of %s: %w", name, v.cfg.Name, err)
	}
	g.mu.Lock()
	vc := v.cfg
	g.mu.Unlock()
	t, err := g.newTarget(vc, v)
	if err != nil {
		return err
	}
	t.Name, t.Alias = SnapshotIQN(vc.IQN, name), vc.Name+"/"+name
	t.SetLUN(0, d)
	v.snapTargets.mu.Lock()
	defer v.snapTargets.mu.Unlock()
	if old, ok := v.snapTargets.m[name]; ok {
		old.SetLUN(0, d) // read-only <-> read-write: same target, new disk
		return nil
	}
	if err := g.srv.AddTarget(t); err != nil {
		return err
	}
	if v.snapTargets.m == nil {
		v.snapTargets.m = map[string]*target.Target{}
	}
	v.snapTargets.m[name] = t
	return nil
}

// unserveSnapshot logs out a snapshot's sessions and stops its target.
func (g *Group) unserveSnapshot(v *servedVolume, name string) {
	v.snapTargets.mu.Lock()
	t, ok := v.snapTargets.m[name]
	delete(v.snapTargets.m, name)
	v.snapTargets.mu.Unlock()
	if ok {
		if err := g.srv.RemoveTarget(t.Name); err != nil {
			g.log.WithError(err).WithField("snapshot", name).Warn("removing a snapshot's target")
		}
	}
}

// volumeOfSnapshotIQNLocked finds the volume a snapshot's target name
// belongs to; the caller holds the group's mutex.
func (g *Group) volumeOfSnapshotIQNLocked(iqn string) *servedVolume {
	for _, v := range g.volumes {
		if strings.HasPrefix(iqn, v.cfg.IQN+":") {
			return v
		}
	}
	return nil
}

func (g *Group) withIQN(v *servedVolume, s SnapshotInfo) SnapshotInfo {
	s.IQN = SnapshotIQN(v.cfg.IQN, s.Name)
	return s
}

// Snapshots lists a volume's snapshots, oldest first.
func (g *Group) Snapshots(volume string) ([]SnapshotInfo, error) {
	v, err := g.volume(volume)
	if err != nil {
		return nil, err
	}
	out := v.store.Snapshots()
	for i := range out {
		out[i] = g.withIQN(v, out[i])
	}
	return out, nil
}

// Snapshot describes one snapshot.
func (g *Group) Snapshot(volume, snap string) (SnapshotInfo, error) {
	v, err := g.volume(volume)
	if err != nil {
		return SnapshotInfo{}, err
	}
	s, err := v.store.Snapshot(snap)
	return g.withIQN(v, s), err
}

// DefaultSnapshotName is the name a snapshot gets when its creator gives
// none: VOLUME-YYYYMMDD-HHMMSS.mmm in UTC.
func DefaultSnapshotName(volume string, t time.Time) string {
	// Room for the stamp and for the "-2" to "-9" that CreateSnapshot adds
	// when several snapshots are taken in one millisecond.
	const maxVolume = 63 - len("-20060102-150405.000") - len("-9")
	if len(volume) > maxVolume {
		volume = volume[:maxVolume]
	}
	return volume + t.UTC().Format("-20060102-150405.000")
}

// ValidSnapshotName says what is wrong with a snapshot name, if anything.
func ValidSnapshotName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("snapshot name %q: use 1 to 63 lower-case letters, digits, '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// CreateSnapshot takes a crash-consistent snapshot of a volume. An empty
// name gets DefaultSnapshotName. The snapshot starts offline.
func (g *Group) CreateSnapshot(volume, name, description string) (SnapshotInfo, error) {
	v, err := g.volume(volume)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if name == "" {
		name = DefaultSnapshotName(volume, time.Now())
		for i := 2; i < 10 && slices.ContainsFunc(v.store.Snapshots(), func(s SnapshotInfo) bool { return s.Name == name }); i++ {
			name = fmt.Sprintf("%s-%d", DefaultSnapshotName(volume, time.Now()), i)
		}
	}
	if err := ValidSnapshotName(name); err != nil {
		return SnapshotInfo{}, err
	}
	s, err := v.store.CreateSnapshot(name, description)
	if err != nil {
		return SnapshotInfo{}, err
	}
	g.log.WithFields(logrus.Fields{"volume": volume, "snapshot": name}).Info("snapshot created")
	return g.withIQN(v, s), nil
}

// SetSnapshot sets a snapshot online or offline, and read-write or
// read-only; nil leaves a setting as it is. Read-write needs online;
// going offline makes the snapshot read-only again. Going offline logs
// out its sessions.
func (g *Group) SetSnapshot(volume, snap string, online, readWrite *bool) (SnapshotInfo, error) {
	v, err := g.volume(volume)
	if err != nil {
		return SnapshotInfo{}, err
	}
	cur, err := v.store.Snapshot(snap)
	if err != nil {
		return SnapshotInfo{}, err
	}
	on, rw := cur.Online, cur.ReadWrite
	if online != nil {
		on = *online
		if !on {
			rw = false
		}
	}
	if readWrite != nil {
		rw = *readWrite
	}
	if rw && !on {
		return SnapshotInfo{}, fmt.Errorf("snapshot %s: %w; send \"online\": true with it", snap, ErrReadWriteOffline)
	}
	switch {
	case on && (!cur.Online || rw != cur.ReadWrite):
		err = g.serveSnapshot(v, snap, rw)
	case !on && cur.Online:
		g.unserveSnapshot(v, snap)
	}
	if err != nil {
		return SnapshotInfo{}, err
	}
	if err := v.store.setSnapshotState(snap, on, rw); err != nil {
		return SnapshotInfo{}, err
	}
	return g.Snapshot(volume, snap)
}

// DeleteSnapshot deletes a snapshot, taking it offline first.
func (g *Group) DeleteSnapshot(volume, snap string) error {
	v, err := g.volume(volume)
	if err != nil {
		return err
	}
	g.unserveSnapshot(v, snap) // nothing to do for a missing one
	if err := v.store.DeleteSnapshot(snap); err != nil {
		return err
	}
	g.log.WithFields(logrus.Fields{"volume": volume, "snapshot": snap}).Info("snapshot deleted")
	return nil
}

// SnapshotPolicy is a volume's snapshot reserve and what happens when it
// is full.
type SnapshotPolicy struct {
	ReservePercent int
	WhenFull       string
	ReserveUsed    int64
}

// SnapshotPolicy returns a volume's snapshot reserve and policy.
func (g *Group) SnapshotPolicy(volume string) (SnapshotPolicy, error) {
	v, err := g.volume(volume)
	if err != nil {
		return SnapshotPolicy{}, err
	}
	pct, when, used := v.store.SnapshotPolicy()
	return SnapshotPolicy{ReservePercent: pct, WhenFull: when, ReserveUsed: used}, nil
}

// SetSnapshotPolicy changes a volume's snapshot reserve and policy, and
// saves them in group.json. Snapshots already taken stay; a smaller
// reserve takes effect at the next write that needs room.
func (g *Group) SetSnapshotPolicy(volume string, percent int, whenFull string) error {
	v, err := g.volume(volume)
	if err != nil {
		return err
	}
	oldPct, oldWhen, _ := v.store.SnapshotPolicy()
	if err := v.store.SetSnapshotPolicy(percent, whenFull); err != nil {
		return fmt.Errorf("volume %s: %w", volume, err)
	}
	err = g.updateVolume(volume, func(vc *VolumeConfig) {
		vc.SnapshotReserve, vc.SnapshotWhenFull = &percent, whenFull
		v.cfg.SnapshotReserve, v.cfg.SnapshotWhenFull = &percent, whenFull
	})
	if err != nil {
		v.store.SetSnapshotPolicy(oldPct, oldWhen)
	}
	return err
}

// ByteRange is a range of bytes.
type ByteRange struct {
	Offset int64
	Length int64
}

// ChangedBlocks lists the byte ranges that may differ between snapshot
// from and snapshot to (the live volume when to is ""), in SnapshotChunk
// units, merged and clipped to to's size, which it also returns.
func (g *Group) ChangedBlocks(volume, from, to string) ([]ByteRange, int64, error) {
	v, err := g.volume(volume)
	if err != nil {
		return nil, 0, err
	}
	bits, size, err := v.store.ChangedChunks(from, to)
	if err != nil {
		return nil, 0, err
	}
	out := []ByteRange{}
	bits.each(func(c int64) {
		off := c * SnapshotChunk
		n := min(SnapshotChunk, size-off)
		if k := len(out) - 1; k >= 0 && out[k].Offset+out[k].Length == off {
			out[k].Length += n
			return
		}
		out = append(out, ByteRange{Offset: off, Length: n})
	})
	return out, size, nil
}

// restoreLogoutWithin is how long a volume's sessions get to log out
// before a restore.
const restoreLogoutWithin = 2 * time.Second

// RestoreVolume makes a volume's contents (and size) those of one of its
// snapshots. Its sessions are asked to log out first (and dropped if they
// do not); the snapshot stays.
func (g *Group) RestoreVolume(volume, snap string) error {
	v, err := g.volume(volume)
	if err != nil {
		return err
	}
	s, err := v.store.Snapshot(snap)
	if err != nil {
		return err
	}
	g.logoutVolume(v, restoreLogoutWithin)
	resized := s.Size != v.store.Size()
	if err := v.store.RestoreSnapshot(snap); err != nil {
		return err
	}
	if resized {
		// The store has the new size already; the disk takes it on and
		// tells every nexus the capacity changed.
		if err := v.disk.Resize(s.Size); err != nil {
			return fmt.Errorf("volume %s: resizing to snapshot %s's %d bytes: %w", volume, snap, s.Size, err)
		}
		if err := g.updateVolume(volume, func(vc *VolumeConfig) { vc.Size = s.Size }); err != nil {
			return err
		}
	}
	g.log.WithFields(logrus.Fields{"volume": volume, "snapshot": snap}).Info("volume restored from snapshot")
	return nil
}

// volumeSessions lists the Normal sessions of a volume and of its
// snapshots.
func (g *Group) volumeSessions(v *servedVolume) []target.SessionInfo {
	var out []target.SessionInfo
	for _, s := range g.srv.Sessions() {
		if s.Type == "Normal" && (s.TargetName == v.cfg.IQN || strings.HasPrefix(s.TargetName, v.cfg.IQN+":")) {
			out = append(out, s)
		}
	}
	return out
}

// logoutVolume asks the volume's own sessions to log out and waits, a
// bounded time, until they are gone.
func (g *Group) logoutVolume(v *servedVolume, within time.Duration) {
	var asked []uint16
	for _, s := range g.volumeSessions(v) {
		if s.TargetName == v.cfg.IQN && g.srv.RequestLogout(s.TSIH, within) == nil {
			asked = append(asked, s.TSIH)
		}
	}
	deadline := time.Now().Add(within + time.Second)
	for len(asked) > 0 && time.Now().Before(deadline) {
		live := map[uint16]bool{}
		for _, s := range g.srv.Sessions() {
			live[s.TSIH] = true
		}
		asked = slices.DeleteFunc(asked, func(t uint16) bool { return !live[t] })
		time.Sleep(20 * time.Millisecond)
	}
}

// DeleteVolume deletes a volume with its snapshots, files, CHAP secret
// and configuration. A volume (or one of its snapshots) with sessions is
// refused with ErrVolumeBusy unless force, which drops them.
func (g *Group) DeleteVolume(volume string, force bool) error {
	v, err := g.volume(volume)
	if err != nil {
		return err
	}
	if n := len(g.volumeSessions(v)); n > 0 && !force {
		return fmt.Errorf("volume %s: %w: %d logged in; log them out first, or force the deletion", volume, ErrVolumeBusy, n)
	}
	// Withdraw the targets first: their sessions drop and no command
	// reaches the store once it is closed.
	v.snapTargets.mu.Lock()
	names := make([]string, 0, len(v.snapTargets.m))
	for n := range v.snapTargets.m {
		names = append(names, n)
	}
	v.snapTargets.mu.Unlock()
	for _, n := range names {
		g.unserveSnapshot(v, n)
	}
	v.target.RemoveLUN(0)
	if err := g.srv.RemoveTarget(v.cfg.IQN); err != nil {
		g.log.WithError(err).WithField("volume", volume).Warn("removing the volume's target")
	}
	g.mu.Lock()
	g.volumes = slices.DeleteFunc(g.volumes, func(x *servedVolume) bool { return x == v })
	g.mu.Unlock()
	// Files before the configuration: a crash in between must not leave
	// old data for a new volume of the same name to find.
	errs := []error{v.store.Close(), removeVolumeFiles(g.dir, volume)}
	errs = append(errs, g.updateConfig(func(c *Config) error {
		c.Volumes = slices.DeleteFunc(c.Volumes, func(vc VolumeConfig) bool { return vc.Name == volume })
		return nil
	}))
	g.log.WithFields(logrus.Fields{"volume": volume, "force": force}).Info("volume deleted")
	return errors.Join(errs...)
}

// removeVolumeFiles deletes a volume's member files, snapshot stores and
// metadata, and CHAP secret, wherever a member holds them.
func removeVolumeFiles(dir, volume string) error {
	var paths []string
	for _, pattern := range []string{
		filepath.Join(dir, "members", "*", "volumes", volume+".data"),
		filepath.Join(dir, "members", "*", "snapshots", volume),
	} {
		m, _ := filepath.Glob(pattern) // the patterns are well-formed
		paths = append(paths, m...)
	}
	paths = append(paths, snapshotMetaDir(dir, volume), CHAPSecretFile(dir, volume))
	var errs []error
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// snapshotStatus is what Status shows of a volume's snapshots.
func (v *servedVolume) snapshotStatus() (count int, reserveUsed int64) {
	_, _, used := v.store.SnapshotPolicy()
	return len(v.store.Snapshots()), used
}

var _ disk.Backend = (*snapshotBackend)(nil)
