package health

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/mpio"
)

// up says whether a path can carry commands: draining paths finish theirs
// and come back at once, as the array asked.
func up(s mpio.State) bool {
	return s == mpio.StateActive || s == mpio.StateStandby || s == mpio.StateDraining
}

// since is a counter's growth since the last run. A counter below its
// old value belongs to a newer device (hitkitd restarted), which counted
// from zero since.
func since(now, before uint64, known bool) uint64 {
	if !known || now < before {
		return now
	}
	return now - before
}

// way is how a path leaves the host, as the user chose it, named as mpio
// names a path's binding.
func way(p mpio.PathStatus) string {
	if p.NIC == "" && p.Source == "" {
		return "default route"
	}
	return mpio.PathSpec{Device: p.NIC, SourceAddr: p.Source}.String()
}

func pathSubject(volume string, p mpio.PathStatus) string {
	return fmt.Sprintf("%s path %d (%s)", volume, p.ID, way(p))
}

// checkVolume judges a volume's paths: all down is CRITICAL (I/O waits,
// then fails); one down, flapping, or with errors since the last run is
// WARNING. It also compares, per NIC
// or source address, the sessions planned with those up.
func checkVolume(r *Report, v daemon.VolumeInfo, prev VolumeMemory, sameDaemon bool, lim Limits) VolumeReport {
	vr := VolumeReport{Name: v.Name, Target: v.Target, WWID: v.WWID, PathsTotal: len(v.Paths), GroupAPI: v.GroupAPI}
	known := sameDaemon && prev.WWID == v.WWID && prev.Paths != nil
	var lastFailure string
	var lastAt time.Time
	for _, p := range v.Paths {
		before, seen := prev.Paths[p.ID]
		pr := PathReport{
			ID: p.ID, Source: p.Source, NIC: p.NIC, Remote: p.Remote, Member: p.Member,
			State: string(p.State), Up: up(p.State),
			Errors: p.Errors, ErrorsNew: since(p.Errors, before.Errors, known && seen),
			Reinstated: p.Reinstated, ReinstatedNew: since(p.Reinstated, before.Reinstated, known && seen),
			LatencyAvgUs: p.LatencyAvgUs, LatencySamples: p.LatencySamples, LatencyMaxUs: p.LatencyMaxUs,
		}
		vr.Paths = append(vr.Paths, pr)
		vr.ErrorsNew += pr.ErrorsNew
		if pr.Up {
			vr.PathsUp++
		}
		if p.LastFailure != "" && p.LastFailureAt.After(lastAt) {
			lastFailure, lastAt = p.LastFailure, p.LastFailureAt
		}
		judgePath(r, v.Name, p, pr, lim)
	}
	switch {
	case vr.PathsTotal == 0 || vr.PathsUp == 0:
		msg := fmt.Sprintf("no usable path: all %d paths are down; I/O waits for the no-path timeout, then fails", vr.PathsTotal)
		if lastFailure != "" {
			msg += " (last failure: " + lastFailure + ")"
		}
		r.add(Critical, CheckVolume, v.Name, msg)
	case vr.PathsUp < vr.PathsTotal:
		r.add(Warning, CheckVolume, v.Name, fmt.Sprintf("degraded: %d of %d paths up; I/O runs on the others", vr.PathsUp, vr.PathsTotal))
	default:
		r.add(OK, CheckVolume, v.Name, fmt.Sprintf("%d of %d paths up, %d errors since the last run", vr.PathsUp, vr.PathsTotal, vr.ErrorsNew))
	}
	checkWays(r, v)
	return vr
}

func judgePath(r *Report, volume string, p mpio.PathStatus, pr PathReport, lim Limits) {
	subject := pathSubject(volume, p)
	switch {
	case !pr.Up:
		msg := string(p.State)
		if p.LastFailure != "" {
			msg += ": " + p.LastFailure
		}
		r.add(Warning, CheckPath, subject, msg)
	case pr.ReinstatedNew >= lim.FlapCount:
		r.add(Warning, CheckPath, subject, fmt.Sprintf("flapping: failed and logged in again %d times since the last run (last failure: %s)",
			pr.ReinstatedNew, p.LastFailure))
	case pr.ErrorsNew > 0:
		// The application saw nothing, but a path that failed is worth
		// a look: once, until a run sees no new error.
		r.add(Warning, CheckPath, subject, fmt.Sprintf("%s again, after %d errors since the last run (last failure: %s)", p.State, pr.ErrorsNew, p.LastFailure))
	default:
		r.add(OK, CheckPath, subject, fmt.Sprintf("%s on %s", p.State, p.Remote))
	}
}

// checkWays compares, for each NIC or source address, the sessions that
// the plan puts there with those up: all of one NIC's sessions down while
// others are up points at that NIC, its cable or its switch.
func checkWays(r *Report, v daemon.VolumeInfo) {
	planned, upNow := map[string]int{}, map[string]int{}
	var ways []string
	for _, p := range v.Paths {
		w := way(p)
		if planned[w] == 0 {
			ways = append(ways, w)
		}
		planned[w]++
		if up(p.State) {
			upNow[w]++
		}
	}
	anyUp := false
	for _, n := range upNow {
		anyUp = anyUp || n > 0
	}
	for _, w := range ways {
		subject := v.Name + " via " + w
		msg := fmt.Sprintf("%d of %d sessions up", upNow[w], planned[w])
		switch {
		case upNow[w] == 0 && anyUp && len(ways) > 1:
			// Only this way out is dead: the NIC or what is behind it.
			r.add(Warning, CheckNIC, subject, msg+": the other NICs work; check this one, its cable and its switch")
		case upNow[w] < planned[w]:
			r.add(Warning, CheckNIC, subject, msg)
		default:
			r.add(OK, CheckNIC, subject, msg)
		}
	}
}

// checkMembers compares the sessions on each member that holds the
// volume with the share it should carry. A member without a session has
// its part of the volume forwarded by the others: slower, and a sign of
// dead ports. The members come from hitkitd's page map, or from the group.
func checkMembers(r *Report, v daemon.VolumeInfo, vr *VolumeReport, arrays arrayResults) {
	members := v.Members
	if len(members) == 0 {
		members = arrays.volumeMembers[v.Name]
	}
	if len(members) == 0 {
		return // neither a page map nor the group: nothing to compare
	}
	sessions := map[int]int{}
	for i, p := range v.Paths {
		m := p.Member
		if m == 0 {
			m = arrays.portMember[p.Remote]
		}
		vr.Paths[i].Member = m
		if up(p.State) && m != 0 {
			sessions[m]++
		}
	}
	want := max(1, len(v.Paths)/len(members))
	for _, m := range members {
		subject := fmt.Sprintf("%s member %d", v.Name, m)
		switch n := sessions[m]; {
		case n == 0:
			r.add(Warning, CheckMember, subject, fmt.Sprintf("holds part of the volume but no session reaches it (want %d): the group forwards its I/O", want))
		default:
			r.add(OK, CheckMember, subject, fmt.Sprintf("%d session(s), %d planned", n, want))
		}
	}
}

// checkLatency flags the paths much slower than the volume's others: a
// port, cable or switch in trouble shows up there before it fails.
func checkLatency(r *Report, vr *VolumeReport, lim Limits) {
	var measured []PathReport
	for _, p := range vr.Paths {
		if p.Up && p.LatencyAvgUs > 0 && p.LatencySamples >= lim.LatencySamples {
			measured = append(measured, p)
		}
	}
	if len(measured) < 2 {
		return // nothing to compare with
	}
	floor := float64(lim.LatencyFloor) / float64(time.Microsecond)
	var spread []string
	outliers := 0
	for _, p := range measured {
		var others []float64
		for _, o := range measured {
			if o.ID != p.ID {
				others = append(others, o.LatencyAvgUs)
			}
		}
		med := median(others)
		spread = append(spread, fmt.Sprintf("%d: %s", p.ID, ms(p.LatencyAvgUs)))
		if p.LatencyAvgUs > lim.LatencyFactor*med && p.LatencyAvgUs-med > floor {
			outliers++
			r.add(Warning, CheckLatency, fmt.Sprintf("%s path %d (%s)", vr.Name, p.ID, p.Remote),
				fmt.Sprintf("slow: %s on average, %.0fx the volume's other paths (%s); slowest %s in the last 10 s",
					ms(p.LatencyAvgUs), p.LatencyAvgUs/max(med, 1), ms(med), ms(p.LatencyMaxUs)))
		}
	}
	if outliers == 0 {
		r.add(OK, CheckLatency, vr.Name, "average latency per path: "+strings.Join(spread, ", "))
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(us float64) string { return fmt.Sprintf("%.2f ms", us/1000) }
