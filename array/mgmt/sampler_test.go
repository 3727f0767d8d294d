package mgmt

import (
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/target"
)

// TestSamplerSessionsComeAndGo checks that a TSIH reused by a new session
// counts from zero, and that a logout does not make rates negative.
func TestSamplerSessionsComeAndGo(t *testing.T) {
	var list []target.SessionInfo
	p := newSampler(func() []target.SessionInfo { return list })
	sess := func(tsih uint16, since time.Time, cmds, nanos uint64) target.SessionInfo {
		return target.SessionInfo{TSIH: tsih, Type: "Normal", ISID: "x", TargetName: "iqn.v", Portal: target.PortalInfo{Addr: "a:3260"},
			Since: since, Commands: cmds, BytesOut: cmds * 4096, CommandNanos: nanos}
	}
	t0 := time.Unix(1000, 0)
	list = []target.SessionInfo{sess(1, t0, 100, 0)}
	p.sample(t0)
	list = []target.SessionInfo{sess(1, t0, 300, 200*50000)}
	p.sample(t0.Add(time.Second))
	ports, vols := p.rates()
	if r := ports["a:3260"]; r.IOPS != 200 || r.AvgLatencyUs != 50 || vols["iqn.v"] != r {
		t.Fatalf("rates %+v %+v", ports, vols)
	}
	// TSIH 1 logs out; a new session gets TSIH 1 and does 10 commands.
	list = []target.SessionInfo{sess(1, t0.Add(time.Second), 10, 10*1000)}
	p.sample(t0.Add(2 * time.Second))
	ports, _ = p.rates()
	if r := ports["a:3260"]; r.IOPS != 10 || r.AvgLatencyUs != 1 {
		t.Fatalf("after reuse %+v", r)
	}
	list = nil
	p.sample(t0.Add(3 * time.Second))
	p.sample(t0.Add(4 * time.Second))
	ports, _ = p.rates()
	if len(ports) != 0 || len(p.ports) != 0 || len(p.last) != 0 {
		t.Fatalf("idle: rates %+v, kept %v %v", ports, p.ports, p.last)
	}
}
