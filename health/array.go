package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/vss"
)

// arrayResults is what the groups said, merged over all groups.
type arrayResults struct {
	portMember    map[string]int   // member port (host:port) -> member number
	volumeMembers map[string][]int // hitkit volume name -> members holding it
}

// groupCheck is one group's answers, gathered off the report so that a
// group that does not answer in time can be left behind.
type groupCheck struct {
	report      GroupReport
	findings    []Finding
	portMember  map[string]int
	volMembers  map[string][]int
	volumeArray map[string]*VolumeArray
}

func (g *groupCheck) add(state State, check, subject, message string) {
	g.findings = append(g.findings, Finding{State: state, Check: check, Subject: subject, Message: message})
}

// checkArrays asks each group behind the volumes (those connected with
// its management API) about its members, ports, snapshot reserves and
// snapshots, all groups at once. A group that has not answered when ctx
// ends is UNKNOWN.
func checkArrays(ctx context.Context, r *Report, vols []daemon.VolumeInfo, opts Options) arrayResults {
	res := arrayResults{portMember: map[string]int{}, volumeMembers: map[string][]int{}}
	byGroup := map[string][]daemon.VolumeInfo{}
	var keys []string
	for _, v := range vols {
		if v.GroupFingerprint == "" {
			continue
		}
		key := v.GroupAPI + " " + v.GroupFingerprint
		if byGroup[key] == nil {
			keys = append(keys, key)
		}
		byGroup[key] = append(byGroup[key], v)
	}
	sort.Strings(keys)
	done := make([]chan *groupCheck, len(keys))
	for i, key := range keys {
		done[i] = make(chan *groupCheck, 1)
		go func() { done[i] <- checkGroup(ctx, byGroup[key], vols, opts) }()
	}
	for i, key := range keys {
		api := byGroup[key][0].GroupAPI
		var g *groupCheck
		select {
		case g = <-done[i]:
		case <-ctx.Done():
			r.Groups = append(r.Groups, GroupReport{API: api})
			r.add(Unknown, CheckArray, "group "+api, "no answer from the management API within the run's timeout")
			continue
		}
		r.Groups = append(r.Groups, g.report)
		r.Findings = append(r.Findings, g.findings...)
		for port, m := range g.portMember {
			res.portMember[port] = m
		}
		for name, ms := range g.volMembers {
			res.volumeMembers[name] = ms
		}
		for i := range r.Volumes {
			if va := g.volumeArray[r.Volumes[i].Name]; va != nil {
				r.Volumes[i].Array = va
			}
		}
	}
	return res
}

// checkGroup asks one group about the volumes connected through it; all
// is the list of every connected volume, to recognise the snapshots this
// host has connected itself.
func checkGroup(ctx context.Context, vols, all []daemon.VolumeInfo, opts Options) *groupCheck {
	api := vols[0].GroupAPI
	g := &groupCheck{report: GroupReport{API: api}, portMember: map[string]int{}, volMembers: map[string][]int{}, volumeArray: map[string]*VolumeArray{}}
	subject := "group " + api
	var password []byte
	var err error
	if opts.GroupPassword != nil {
		password, err = opts.GroupPassword(ctx, vols[0])
	} else {
		err = errors.New("no source of the group admin password")
	}
	if err != nil {
		g.add(Unknown, CheckArray, subject, fmt.Sprintf("the array is not checked: %v", err))
		return g
	}
	c, err := groupapi.Dial(api, vols[0].GroupFingerprint, password)
	if err != nil {
		g.add(Warning, CheckArray, subject, fmt.Sprintf("management API unreachable: %v", err))
		return g
	}
	defer c.Close()
	if !g.members(c, subject) {
		return g
	}
	groupVols, err := c.Volumes()
	if err != nil {
		g.add(Warning, CheckArray, subject, fmt.Sprintf("listing volumes: %v", err))
		return g
	}
	for _, v := range vols {
		g.volume(c, v, groupVols, all, opts.Limits, opts.StateDir)
	}
	return g
}

// members checks that every member is online and every port up.
func (g *groupCheck) members(c *groupapi.Client, subject string) bool {
	grp, err := c.Group()
	if err != nil {
		g.add(Warning, CheckArray, subject, fmt.Sprintf("management API: %v", err))
		return false
	}
	members, err := c.Members()
	if err != nil {
		g.add(Warning, CheckArray, subject, fmt.Sprintf("listing members: %v", err))
		return false
	}
	g.report.Name, g.report.Reachable = grp.Name, true
	ports := 0
	for _, m := range members {
		if m.State == "uninitialized" {
			continue // an array waiting for the setup wizard, not in the group yet
		}
		g.report.Members++
		ms := fmt.Sprintf("group %s member %d", grp.Name, m.Number)
		if m.State == "online" {
			g.report.MembersOK++
		} else {
			g.add(Warning, CheckArray, ms, fmt.Sprintf("member %s is %s", cmp.Or(m.Name, strconv.Itoa(m.Number)), m.State))
		}
		for _, p := range m.Ports {
			ports++
			g.portMember[p.Address] = m.Number
			if p.State != "up" {
				g.report.PortsDown++
				g.add(Warning, CheckArray, ms+" port "+p.Address, fmt.Sprintf("port is %s (%d sessions)", p.State, p.Sessions))
			}
		}
	}
	if g.report.MembersOK == g.report.Members && g.report.PortsDown == 0 {
		g.add(OK, CheckArray, "group "+grp.Name, fmt.Sprintf("reachable at %s: %d members online, %d ports up", g.report.API, g.report.Members, ports))
	}
	return true
}

// volume checks one volume's snapshot reserve and online snapshots.
func (g *groupCheck) volume(c *groupapi.Client, v daemon.VolumeInfo, groupVols []groupapi.Volume, all []daemon.VolumeInfo, lim Limits, stateDir string) {
	var gv *groupapi.Volume
	for i := range groupVols {
		if groupVols[i].IQN == v.Target {
			gv = &groupVols[i]
		}
	}
	if gv == nil {
		g.add(Warning, CheckArray, v.Name, fmt.Sprintf("the group has no volume with the target name %s", v.Target))
		return
	}
	g.volMembers[v.Name] = gv.Members
	va := &VolumeArray{Name: gv.Name, ReserveUsedPct: -1}
	g.volumeArray[v.Name] = va
	g.reserve(c, v.Name, gv, va, lim)
	g.snapshots(c, v.Name, gv, va, all, stateDir)
}

// notProvided says the group does not offer an endpoint at all.
func notProvided(err error) bool {
	var se *groupapi.StatusError
	return errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusNotImplemented)
}

func (g *groupCheck) reserve(c *groupapi.Client, name string, gv *groupapi.Volume, va *VolumeArray, lim Limits) {
	subject := name + " snapshot reserve"
	pol, err := c.SnapshotPolicy(gv.Name)
	switch {
	case notProvided(err):
		g.add(OK, CheckReserve, subject, "the group reports no snapshot reserve")
		return
	case err != nil:
		g.add(Unknown, CheckReserve, subject, fmt.Sprintf("reading the snapshot policy: %v", err))
		return
	}
	va.ReservePercent, va.ReserveUsed = pol.ReservePercent, pol.ReserveUsed
	reserve := gv.Size * int64(pol.ReservePercent) / 100
	if reserve <= 0 {
		g.add(OK, CheckReserve, subject, "no snapshot reserve (0 %): no snapshot can be taken")
		return
	}
	pct := 100 * float64(pol.ReserveUsed) / float64(reserve)
	va.ReserveUsedPct = pct
	msg := fmt.Sprintf("%.0f %% of the reserve used (%d of %d MiB, policy %s)", pct, pol.ReserveUsed>>20, reserve>>20, pol.WhenFull)
	switch {
	case pct >= lim.ReserveCritical && pol.WhenFull == groupapi.ReserveRefuse:
		g.add(Critical, CheckReserve, subject, msg+": when it is full, writes to the volume fail; grow the reserve or delete snapshots")
	case pct >= lim.ReserveWarning:
		consequence := "the oldest snapshots will be deleted"
		if pol.WhenFull == groupapi.ReserveRefuse {
			consequence = "when it is full, writes to the volume fail"
		}
		g.add(Warning, CheckReserve, subject, msg+": "+consequence+"; grow the reserve or delete snapshots")
	default:
		g.add(OK, CheckReserve, subject, msg)
	}
}

// snapshots reports the snapshots left online by mistake, as
// vss.OnlineSnapshots finds them: online with no live record of a mount or
// backup on this host, or recorded by a mount or backup whose process is
// gone. A snapshot this host has connected through hitkitd by hand is
// online on purpose too.
func (g *groupCheck) snapshots(c *groupapi.Client, name string, gv *groupapi.Volume, va *VolumeArray, all []daemon.VolumeInfo, stateDir string) {
	subject := name + " snapshots"
	snaps, err := c.Snapshots(gv.Name)
	switch {
	case notProvided(err):
		g.add(OK, CheckSnapshots, subject, "the group reports no snapshots")
		return
	case err != nil:
		g.add(Unknown, CheckSnapshots, subject, fmt.Sprintf("listing snapshots: %v", err))
		return
	}
	va.Snapshots = len(snaps)
	iqn := map[string]string{}
	for _, s := range snaps {
		iqn[s.Name] = s.IQN
		if s.Online {
			va.SnapshotsOnline++
		}
	}
	strays, err := vss.OnlineSnapshots(c, stateDir, gv.Name)
	if err != nil {
		g.add(Unknown, CheckSnapshots, subject, fmt.Sprintf("looking for stray snapshots: %v", err))
		return
	}
	reported := 0
	for _, s := range strays {
		if here := connectedAs(all, iqn[s.Snapshot]); here != "" && s.Record == nil {
			g.add(OK, CheckSnapshots, name+" snapshot "+s.Snapshot, "online, connected here as volume "+here)
			continue
		}
		reported++
		g.add(Warning, CheckSnapshots, name+" snapshot "+s.Snapshot, s.Reason+": hitkit snapshot cleanup sets it offline")
	}
	if reported == 0 {
		g.add(OK, CheckSnapshots, subject, fmt.Sprintf("%d snapshot(s), %d online, none left online by mistake", len(snaps), va.SnapshotsOnline))
	}
}

// connectedAs is the name of the hitkitd volume logged in to target iqn.
func connectedAs(vols []daemon.VolumeInfo, iqn string) string {
	for _, v := range vols {
		if v.Target == iqn {
			return v.Name
		}
	}
	return ""
}
