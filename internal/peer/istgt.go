package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// StartIstgt starts Debian's istgt with one target whose data is on LUN 0.
func StartIstgt(t testing.TB, o Options) *Target {
	t.Helper()
	Require(t, "istgt")
	tg := newTarget(t, "istgt", o)
	tg.IQN = "iqn.2026-11.org.hitkit.peer:istgt" + strconv.Itoa(FreePort(t))
	tg.LUN = 0
	tg.writeIstgtConfig()
	tg.startIstgt()
	return tg
}

func (tg *Target) startIstgt() {
	tg.start("istgt", "-c", tg.conf, "-D")
	tg.waitListening()
}

// writeIstgtConfig writes istgt.conf and auth.conf. The CHAP secrets in
// auth.conf are the test's throwaway ones; the file is mode 0600.
func (tg *Target) writeIstgtConfig() {
	o := tg.opts
	auth := "None"
	if o.CHAPUser != "" {
		auth = "CHAP"
		if o.MutualUser != "" {
			auth = "CHAP Mutual"
		}
	}
	var portals strings.Builder
	for i, p := range tg.Portals {
		fmt.Fprintf(&portals, "  Portal DA%d %s\n", i+1, p)
	}
	authLine := ""
	if o.CHAPUser != "" {
		authLine = fmt.Sprintf("  Auth %q %q", o.CHAPUser, o.CHAPSecret)
		if o.MutualUser != "" {
			authLine += fmt.Sprintf(" %q %q", o.MutualUser, o.MutualSecret)
		}
	}
	authFile := filepath.Join(tg.dir, "auth.conf")
	tg.conf = filepath.Join(tg.dir, "istgt.conf")
	mustWrite(tg.t, authFile, "[AuthGroup1]\n  Comment \"test users\"\n"+authLine+"\n")
	mustWrite(tg.t, tg.conf, fmt.Sprintf(`[Global]
  NodeBase "iqn.2026-11.org.hitkit.peer"
  PidFile %s
  AuthFile %s
  MediaDirectory %s
  LogFacility "local7"
  Timeout 30
  NopInInterval 20
  DiscoveryAuthMethod Auto
  MaxSessions 16
  MaxConnections 4
  MaxR2T 32
  MaxOutstandingR2T 16
  DefaultTime2Wait 2
  DefaultTime2Retain 60
  FirstBurstLength 262144
  MaxBurstLength 1048576
  MaxRecvDataSegmentLength 262144
  InitialR2T Yes
  ImmediateData Yes
  DataPDUInOrder Yes
  DataSequenceInOrder Yes
  ErrorRecoveryLevel 0
[UnitControl]
  AuthMethod None
[PortalGroup1]
%s[InitiatorGroup1]
  InitiatorName "ALL"
  Netmask 127.0.0.0/8
[LogicalUnit1]
  TargetName %s
  Mapping PortalGroup1 InitiatorGroup1
  AuthMethod %s
  AuthGroup AuthGroup1
  UseDigest Auto
  UnitType Disk
  QueueDepth 64
  LUN0 Storage %s Auto
`, filepath.Join(tg.dir, "istgt.pid"), authFile, tg.dir, portals.String(), tg.IQN, auth, tg.Backing))
}

func mustWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
