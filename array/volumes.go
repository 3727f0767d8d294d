package array

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/hitkit/hitkit/array/disk"
	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/iscsi"
)

// What the lab's volumes say they are in INQUIRY.
const (
	inquiryVendor   = "HITKIT"
	inquiryProduct  = "LAB VOLUME"
	inquiryRevision = "1.0"
)

// servedVolume is a volume as the group serves it: its storage, the one
// disk.Disk that every port shares, the iSCSI target, and one forwarder
// per online member.
type servedVolume struct {
	cfg    VolumeConfig // guarded by the group's mutex
	store  *Volume
	disk   *disk.Disk
	target *target.Target
	// units maps member numbers to forwarders. The map is never changed:
	// a member that joins gets a new map (see addUnit), so that Execute
	// reads it without a lock.
	units     atomic.Pointer[map[int]*forwarder]
	lead      *forwarder // serves sessions at the group IP
	forwarded atomic.Uint64
	// snapTargets serve its online snapshots (snapshot_serve.go).
	snapTargets snapshotTargets
}

// Execute routes a command to the forwarder of the member whose port it
// came in on; the TPGT says which. A session that was not redirected and
// stayed at the group IP is served by the group lead, as the group IP
// lives on the lead's ports on a real group.
func (v *servedVolume) Execute(ctx context.Context, r *target.Request) target.Response {
	if f, ok := (*v.units.Load())[memberOfTPGT(r.Nexus.TPGT)]; ok {
		return f.Execute(ctx, r)
	}
	return v.lead.Execute(ctx, r)
}

// Reset passes LOGICAL UNIT RESET and TARGET WARM RESET on to the one
// disk, so that every path sees the unit attention.
func (v *servedVolume) Reset() { v.disk.Reset() }

// NexusLost passes the end of a session on to the disk.
func (v *servedVolume) NexusLost(n target.Nexus) { v.disk.NexusLost(n) }

var (
	_ target.Resetter      = (*servedVolume)(nil)
	_ target.NexusObserver = (*servedVolume)(nil)
)

// addVolume opens a configured volume and makes it available for login.
func (g *Group) addVolume(vc VolumeConfig) error {
	v, err := g.openVolume(vc)
	if err != nil {
		return err
	}
	if err := g.srv.AddTarget(v.target); err != nil {
		v.store.Close()
		return err
	}
	g.mu.Lock()
	g.volumes = append(g.volumes, v)
	g.mu.Unlock()
	return g.serveSnapshots(v)
}

func (g *Group) openVolume(vc VolumeConfig) (*servedVolume, error) {
	pages := PageMap{PageSize: g.cfg.PageSize, Size: vc.Size, Members: vc.Members}
	store, err := OpenVolume(g.dir, vc.Name, pages, !vc.Thin)
	if err != nil {
		return nil, err
	}
	d, err := disk.New(store, g.identity(vc), disk.Options{ThinProvisioning: vc.Thin, WriteCache: true, NoPowerOnAttention: g.noPowerOnAttention})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("volume %s: %w", vc.Name, err)
	}
	v := &servedVolume{cfg: vc, store: store, disk: d}
	units := map[int]*forwarder{}
	for _, m := range g.members {
		if m.state != MemberUninitialized {
			units[m.Number()] = &forwarder{member: m, vol: v, latency: &g.forwardLatency}
		}
	}
	v.units.Store(&units)
	v.lead = units[g.cfg.onlineMembers()[0]]
	if v.target, err = g.newTarget(vc, v); err != nil {
		store.Close()
		return nil, err
	}
	return v, nil
}

// identity is what a volume says it is on every port: the serial in
// group.json makes VPD pages 0x80 and 0x83 survive restarts. The relative
// port is the port's TPGT and the port group is its member, so that a
// host can tell paths through different members apart.
func (g *Group) identity(vc VolumeConfig) disk.Identity {
	return disk.Identity{
		Vendor: inquiryVendor, Product: inquiryProduct, Revision: inquiryRevision,
		Serial: vc.Serial,
		Port: func(n target.Nexus) disk.PortIdentity {
			return disk.PortIdentity{RelativePort: n.TPGT, Group: uint16(memberOfTPGT(n.TPGT))}
		},
	}
}

// newTarget makes the iSCSI target of a volume, with its LU at LUN 0 and
// its access control.
func (g *Group) newTarget(vc VolumeConfig, v *servedVolume) (*target.Target, error) {
	t := target.NewTarget(vc.IQN)
	t.Alias = vc.Name
	t.SetLUN(0, v)
	t.Access = func(initiator, chapUser string, remote netip.Addr) error {
		g.mu.Lock()
		acl := v.cfg.Access
		g.mu.Unlock()
		if chapUser == "" && acl.RequiresCHAP() {
			// The engine asks the same question for logins and for
			// SendTargets. A login to a target that requires CHAP has
			// always authenticated by now, so this is discovery, which
			// filters by name and address only.
			if acl.Discoverable(initiator, remote) {
				return nil
			}
		}
		return acl.Check(initiator, chapUser, remote)
	}
	if vc.Access.RequiresCHAP() {
		chap, err := g.volumeCHAP(vc)
		if err != nil {
			return nil, err
		}
		t.CHAP = chap
	}
	return t, nil
}

// volumeCHAP authenticates a volume's CHAP user with the secret in its
// file. The secret is read once, at start.
func (g *Group) volumeCHAP(vc VolumeConfig) (*target.CHAP, error) {
	secret, err := readSecret(CHAPSecretFile(g.dir, vc.Name))
	if err != nil {
		return nil, fmt.Errorf("volume %s: CHAP secret: %w", vc.Name, err)
	}
	mutual, err := readSecret(MutualCHAPFile(g.dir))
	if err != nil {
		return nil, fmt.Errorf("group CHAP secret for mutual authentication: %w", err)
	}
	return &target.CHAP{
		Lookup: target.StaticUsers(map[string]string{vc.CHAPUser: secret}),
		Mutual: &iscsi.ChapCredentials{User: g.cfg.Name, Secret: []byte(mutual)},
	}, nil
}

// volume finds a served volume by name.
func (g *Group) volume(name string) (*servedVolume, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.IndexFunc(g.volumes, func(v *servedVolume) bool { return v.cfg.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("no volume %q in group %s", name, g.cfg.Name)
	}
	return g.volumes[i], nil
}

// volumeByIQN finds a served volume by target name.
func (g *Group) volumeByIQN(iqn string) *servedVolume {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, v := range g.volumes {
		if v.cfg.IQN == iqn {
			return v
		}
	}
	return g.volumeOfSnapshotIQNLocked(iqn) // snapshots redirect like their volume
}

// Volume returns a volume's storage, for tests and the management API.
func (g *Group) Volume(name string) (*Volume, error) {
	v, err := g.volume(name)
	if err != nil {
		return nil, err
	}
	return v.store, nil
}

// PageMap says which member holds which page of a volume: what the
// management API publishes for slice-aware hosts.
func (g *Group) PageMap(name string) (PageMap, error) {
	v, err := g.volume(name)
	if err != nil {
		return PageMap{}, err
	}
	return v.store.PageMap(), nil
}

// CreateVolume adds a volume whose pages go to every online member, with
// the spec's CHAP secret or a fresh one, and serves it at once.
func (g *Group) CreateVolume(vs VolumeSpec) (VolumeConfig, error) {
	g.mu.Lock()
	cfg := g.cfg
	vc := cfg.newVolume(vs)
	cfg.Volumes = append(slices.Clip(cfg.Volumes), vc)
	err := cfg.Validate()
	g.mu.Unlock()
	if err != nil {
		return VolumeConfig{}, err
	}
	if err := g.writeCHAPSecret(vc.Name, vs.CHAPSecret); err != nil {
		return VolumeConfig{}, err
	}
	if err := g.addVolume(vc); err != nil {
		return VolumeConfig{}, err
	}
	return vc, g.updateConfig(func(c *Config) error {
		c.Volumes = append(c.Volumes, vc)
		return nil
	})
}

// ResizeVolume changes a volume's size. A volume shrinks only when
// shrink says so, since that discards the data past the new end. Every
// nexus then sees CAPACITY DATA HAS CHANGED.
func (g *Group) ResizeVolume(name string, size int64, shrink bool) error {
	v, err := g.volume(name)
	if err != nil {
		return err
	}
	if size < v.store.Size() && !shrink {
		return fmt.Errorf("volume %s: %d bytes is smaller than its %d; shrinking discards data, so ask for it explicitly", name, size, v.store.Size())
	}
	if err := v.disk.Resize(size); err != nil {
		return err
	}
	return g.updateVolume(name, func(vc *VolumeConfig) { vc.Size = size })
}

// SetAccess replaces a volume's access control records. Sessions already
// logged in stay; new logins are checked against the new records.
func (g *Group) SetAccess(name string, acl AccessList) error {
	if err := acl.Validate(); err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	v, err := g.volume(name)
	if err != nil {
		return err
	}
	if acl.RequiresCHAP() != v.cfg.Access.RequiresCHAP() {
		// The target's CHAP requirement is fixed while it is served.
		return errors.New("changing whether a volume requires CHAP needs a restart of the group; edit group.json while it is down")
	}
	return g.updateVolume(name, func(vc *VolumeConfig) {
		vc.Access = acl
		v.cfg.Access = acl
	})
}

// updateVolume changes one volume's configuration and saves it.
func (g *Group) updateVolume(name string, change func(*VolumeConfig)) error {
	return g.updateConfig(func(c *Config) error {
		_, i, ok := c.volume(name)
		if !ok {
			return fmt.Errorf("no volume %q", name)
		}
		change(&c.Volumes[i])
		return nil
	})
}

// updateConfig changes the configuration under the group's mutex and
// writes it to group.json.
func (g *Group) updateConfig(change func(*Config) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cfg
	c.Volumes = slices.Clone(c.Volumes)
	c.Members = slices.Clone(c.Members)
	if err := change(&c); err != nil {
		return err
	}
	if err := saveConfig(g.dir, c); err != nil {
		return err
	}
	g.cfg = c
	return nil
}
