package array

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Setup steps, in order, as SetupOptions.Progress hears them.
const (
	StepValidating  = "validating"
	StepNetwork     = "configuring network"
	StepRAID        = "initialising RAID"
	StepForming     = "forming the group"
	StepJoining     = "joining the group"
	StepRebalancing = "rebalancing volumes"
	StepDone        = "done"
)

// DefaultRAIDDelay is how long a member takes to initialise its RAID.
const DefaultRAIDDelay = 3 * time.Second

// SetupOptions tune SetUpMember.
type SetupOptions struct {
	// RAIDDelay simulates initialising the member's RAID; tests shorten it.
	RAIDDelay time.Duration
	// Progress hears each step with how far the whole setup is, 0 to 100.
	Progress func(step string, percent int)
}

// SetupResult says where a member that was set up now serves.
type SetupResult struct {
	GroupName      string
	GroupAddr      string // the group IP's iSCSI portal, host:port
	ManagementAddr string // host:port
	Member         int
	MemberName     string
	Capacity       int64 // usable bytes, after RAID
}

// SetUpMember initialises an uninitialised member as the setup wizard
// asks: it checks the request (CheckSetup), configures the member's
// network, initialises its RAID, then forms a group on it (create) or
// adds it to the site's group and spreads every volume's pages over all
// online members (join). One setup runs at a time on a site.
//
// Nothing reaches group.json until the member is in the group, so a
// setup that fails, or a lab killed before that point, leaves the member
// uninitialised and the request can be sent again. A create commits in
// one write of group.json at its end; a join commits with its first
// rebalanced volume (or at its end when there are no volumes).
func (g *Group) SetUpMember(ctx context.Context, r SetupRequest, o SetupOptions) (SetupResult, error) {
	report := o.Progress
	if report == nil {
		report = func(string, int) {}
	}
	g.setupMu.Lock()
	defer g.setupMu.Unlock()
	report(StepValidating, 0)
	if err := g.CheckSetup(r); err != nil {
		return SetupResult{}, err
	}
	report(StepNetwork, 5)
	mc := g.setupMemberConfig(r)
	report(StepRAID, 10)
	if err := initRAID(ctx, o.RAIDDelay, func(pct int) { report(StepRAID, 10+pct*30/100) }); err != nil {
		return SetupResult{}, fmt.Errorf("initialising RAID: %w", err)
	}
	log := g.log.WithFields(logrus.Fields{"member": r.Member, "member_name": r.Name, "group_ip": r.GroupIP.String(), "raid": r.RAID})
	var err error
	if r.Create {
		report(StepForming, 40)
		err = g.formGroup(r, mc)
	} else {
		report(StepJoining, 40)
		err = g.joinGroup(ctx, mc, func(pct int) { report(StepRebalancing, 50+pct*49/100) })
	}
	if err != nil {
		log.WithError(err).Error("member setup failed")
		return SetupResult{}, err
	}
	log.WithField("group_name", r.GroupName).Info("member set up")
	report(StepDone, 100)
	g.mu.Lock()
	defer g.mu.Unlock()
	return SetupResult{
		GroupName: g.cfg.Name, GroupAddr: g.cfg.GroupAddr(), ManagementAddr: g.cfg.ManagementAddr(),
		Member: mc.Number, MemberName: mc.Name, Capacity: mc.UsableCapacity(),
	}, nil
}

// setupMemberConfig is the member as the request configures it.
func (g *Group) setupMemberConfig(r SetupRequest) MemberConfig {
	g.mu.Lock()
	defer g.mu.Unlock()
	mc := g.cfg.Members[r.Member-1]
	mc.Name, mc.Initialized, mc.Ports = r.Name, true, g.cfg.SetupPortsPerMember()
	mc.IP, mc.Gateway, mc.RAID = r.IP, r.Gateway, r.RAID
	return mc
}

// initRAID waits out the simulated RAID initialisation, reporting its
// progress every tenth of it.
func initRAID(ctx context.Context, d time.Duration, progress func(int)) error {
	const ticks = 10
	for i := 1; i <= ticks; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d / ticks):
		}
		progress(i * 100 / ticks)
	}
	return nil
}

// formGroup founds the site's group on member mc: passwords, the group
// IP, the member's ports, the services that need a group, and last
// group.json. Any failure undoes what was done.
func (g *Group) formGroup(r SetupRequest, mc MemberConfig) (err error) {
	secrets := map[string]string{AdminPasswordFile(g.dir): r.AdminPassword, MembershipPasswordFile(g.dir): r.MembershipPassword}
	for path, secret := range secrets {
		if err := writeSecret(path, secret); err != nil {
			return err
		}
	}
	if _, err := ensureSecret(MutualCHAPFile(g.dir)); err != nil {
		return err
	}
	g.mu.Lock()
	old := g.cfg
	c := old
	c.Members = slices.Clone(old.Members)
	c.Name, c.GroupIP, c.Members[mc.Number-1] = r.GroupName, r.GroupIP, mc
	m := g.members[mc.Number-1]
	g.cfg = c
	g.groupPort.Addr = c.GroupAddr()
	m.cfg, m.ports, m.state = mc, memberPorts(mc, c.BaseIP), MemberOnline
	ports := append([]*Port{g.groupPort}, m.ports...)
	g.mu.Unlock()

	var listening []string
	var started []Service
	defer func() {
		if err == nil {
			return
		}
		for i := len(started) - 1; i >= 0; i-- {
			started[i].Close()
		}
		for _, addr := range listening {
			g.srv.RemovePortal(addr)
		}
		g.mu.Lock()
		g.cfg, g.groupPort.Addr = old, ""
		m.cfg, m.ports, m.state = old.Members[mc.Number-1], nil, MemberUninitialized
		g.mu.Unlock()
	}()
	for _, p := range ports {
		if _, err := g.srv.AddPortal(p.Addr, p.TPGT); err != nil {
			return fmt.Errorf("listening on %s: %w", p, err)
		}
		listening = append(listening, p.Addr)
	}
	for _, s := range g.groupServices {
		if err := s.Start(g); err != nil {
			return fmt.Errorf("starting %T: %w", s, err)
		}
		started = append(started, s)
	}
	if err := g.updateConfig(func(*Config) error { return nil }); err != nil {
		return fmt.Errorf("saving group.json: %w", err)
	}
	g.mu.Lock()
	g.services = append(g.services, started...)
	g.mu.Unlock()
	return nil
}

// joinGroup adds member mc to the site's group: its ports serve, every
// volume gets a forwarder for it, and the volumes are rebalanced over all
// online members.
func (g *Group) joinGroup(ctx context.Context, mc MemberConfig, progress func(int)) error {
	g.mu.Lock()
	m := g.members[mc.Number-1]
	ports := memberPorts(mc, g.cfg.BaseIP)
	g.mu.Unlock()
	for i, p := range ports {
		if _, err := g.srv.AddPortal(p.Addr, p.TPGT); err != nil {
			for _, q := range ports[:i] {
				g.srv.RemovePortal(q.Addr)
			}
			return fmt.Errorf("listening on %s: %w", p, err)
		}
	}
	g.mu.Lock()
	c := g.cfg
	c.Members = slices.Clone(c.Members)
	c.Members[mc.Number-1] = mc
	g.cfg = c
	m.cfg, m.ports, m.state = mc, ports, MemberOnline
	g.mu.Unlock()
	// From here on the member is in the group: volumes created now
	// include it, and the first save of group.json records it.
	rebalanceErr := g.rebalance(ctx, progress)
	if err := g.updateConfig(func(*Config) error { return nil }); err != nil {
		return errors.Join(rebalanceErr, fmt.Errorf("saving group.json: %w", err))
	}
	if rebalanceErr != nil {
		return fmt.Errorf("member %d joined, but rebalancing stopped: %w; the volumes keep their data and serve from their current members", mc.Number, rebalanceErr)
	}
	return nil
}

// addUnit gives member m a forwarder of v, unless it has one. Execute
// reads the map without a lock, so the map is replaced, never changed.
func (v *servedVolume) addUnit(m *Member, latency *atomic.Int64) {
	for {
		old := v.units.Load()
		next := map[int]*forwarder{}
		if old != nil {
			if _, ok := (*old)[m.Number()]; ok {
				return
			}
			maps.Copy(next, *old)
		}
		next[m.Number()] = &forwarder{member: m, vol: v, latency: latency}
		if v.units.CompareAndSwap(old, &next) {
			return
		}
	}
}

// AnnounceSetup tells the group where uninitialised members' setup
// endpoints answer, so that Status shows them. The setup service calls
// it when it starts; info must not call back into the group.
func (g *Group) AnnounceSetup(info func(member int) (endpoint, fingerprint string, ok bool)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setupInfo = info
}

// secretEqual compares a password with the stored one in constant time,
// whatever their lengths.
func secretEqual(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
