package array

import (
	"strconv"
	"time"

	"github.com/hitkit/hitkit/array/target"
	"github.com/sirupsen/logrus"
)

// redirectLogin is the group IP at work: a Normal login there is
// answered with a redirect (status 0x0101) to the member port that
// carries the fewest sessions, among the online members that hold the
// volume's pages. A login at a member port is served where it is.
//
// Ports that are down, or blackholed, are skipped. A real group could
// not see a dead switch, but a lab that sends new logins into one only
// slows tests down; existing sessions still suffer the blackhole.
func (g *Group) redirectLogin(info target.LoginInfo) (string, bool) {
	if info.Portal.TPGT != groupTPGT {
		return "", false
	}
	v := g.volumeByIQN(info.TargetName)
	if v == nil {
		return "", false // the engine refuses it: no such target
	}
	p := g.leastBusyPort(v)
	log := g.log.WithFields(logrus.Fields{"initiator": info.InitiatorName, "volume": v.cfg.Name, "remote": info.Remote.String()})
	if p == nil {
		log.Warn("no member port is up; serving the login at the group IP")
		return "", false
	}
	log.WithField("port", p.Addr).Info("redirecting login")
	return p.Addr + "," + strconv.Itoa(int(p.TPGT)), true
}

// leastBusyPort picks the port for a new session of v. Redirects of the
// last few seconds count as sessions, since initiators that log in
// several sessions at once come back before any of them shows up; ties
// go to the lowest member and port.
func (g *Group) leastBusyPort(v *servedVolume) *Port {
	sessions := map[string]int{}
	for _, s := range g.srv.Sessions() {
		if s.Type == "Normal" {
			sessions[s.Portal.Addr]++
		}
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var best *Port
	bestLoad := 0
	for _, n := range v.cfg.Members {
		m := g.members[n-1]
		if m.state != MemberOnline {
			continue
		}
		for _, p := range m.ports {
			if p.down || p.blackholed {
				continue
			}
			load := sessions[p.Addr] + g.redirects.count(p.Addr, now)
			if best == nil || load < bestLoad {
				best, bestLoad = p, load
			}
		}
	}
	if best != nil {
		g.redirects.add(best.Addr, now)
	}
	return best
}

// redirectMemory is how long a redirect counts as a session to come.
const redirectMemory = 2 * time.Second

// recentRedirects remembers when logins were sent to each port.
type recentRedirects map[string][]time.Time

func (r *recentRedirects) add(addr string, now time.Time) {
	if *r == nil {
		*r = recentRedirects{}
	}
	(*r)[addr] = append((*r)[addr], now)
}

// count forgets redirects older than redirectMemory and counts the rest.
func (r recentRedirects) count(addr string, now time.Time) int {
	times := r[addr]
	i := 0
	for i < len(times) && now.Sub(times[i]) > redirectMemory {
		i++
	}
	if i > 0 {
		r[addr] = append(times[:0], times[i:]...)
	}
	return len(times) - i
}

// targetAddresses is what SendTargets reports: the group IP for every
// volume to a discovery session at the group IP, so that hosts always
// come back through it; a member port reports itself.
func (g *Group) targetAddresses(_ string, p target.PortalInfo) []string {
	if p.TPGT == groupTPGT {
		return []string{g.groupPort.Addr + "," + strconv.Itoa(groupTPGT)}
	}
	return []string{p.String()}
}
