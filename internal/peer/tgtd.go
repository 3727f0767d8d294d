package peer

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartTgtd starts Debian's tgtd with one target whose data is on LUN 1.
func StartTgtd(t testing.TB, o Options) *Target {
	t.Helper()
	Require(t, "tgtd", "tgtadm")
	tg := newTarget(t, "tgtd", o)
	tg.IQN = "iqn.2026-11.org.hitkit.peer:tgtd." + strconv.Itoa(FreePort(t))
	tg.LUN = 1
	// The control id names tgtd's management socket, and tgtd refuses ids
	// above 32767. The first port is unique among running tests, so its
	// residue is too, barring a rare clash.
	port, _ := strconv.Atoi(tg.Portal()[strings.LastIndexByte(tg.Portal(), ':')+1:])
	tg.ctlID = 1 + port%32767
	tg.startTgtd()
	return tg
}

func (tg *Target) startTgtd() {
	// tgtd keeps only the last --iscsi portal= option, so the others are
	// added through tgtadm once it runs.
	tg.start("tgtd", "-f", "-C", strconv.Itoa(tg.ctlID), "--iscsi", "portal="+tg.Portals[0])
	tg.waitTgtadm()
	for _, p := range tg.Portals[1:] {
		tg.tgtadm("--op", "new", "--mode", "portal", "--param", "portal="+p)
	}
	tg.tgtadm("--op", "new", "--mode", "target", "--tid", "1", "-T", tg.IQN)
	tg.tgtadm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", tg.Backing)
	tg.tgtadm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
	if o := tg.opts; o.CHAPUser != "" {
		tg.tgtadm("--op", "new", "--mode", "account", "--user", o.CHAPUser, "--password", o.CHAPSecret)
		tg.tgtadm("--op", "bind", "--mode", "account", "--tid", "1", "--user", o.CHAPUser)
		if o.MutualUser != "" {
			tg.tgtadm("--op", "new", "--mode", "account", "--user", o.MutualUser, "--password", o.MutualSecret)
			tg.tgtadm("--op", "bind", "--mode", "account", "--tid", "1", "--user", o.MutualUser, "--outgoing")
		}
	}
	tg.waitListening()
}

func (tg *Target) waitTgtadm() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := exec.Command("tgtadm", "-C", strconv.Itoa(tg.ctlID), "--mode", "sys", "--op", "show").Run()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tg.t.Fatalf("tgtd did not come up: %v\n%s", err, tg.logTail(2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tg *Target) tgtadm(args ...string) {
	tg.t.Helper()
	run(tg.t, "tgtadm", append([]string{"-C", strconv.Itoa(tg.ctlID), "--lld", "iscsi"}, args...)...)
}
