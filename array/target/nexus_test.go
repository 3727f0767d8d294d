package target_test

import (
	"sync"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/target"
)

// nexusRecorder is a unit that records the nexuses reported lost.
type nexusRecorder struct {
	target.Unit
	mu   sync.Mutex
	lost []target.Nexus
}

func (r *nexusRecorder) NexusLost(n target.Nexus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost = append(r.lost, n)
}

func (r *nexusRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lost)
}

// When a session ends, the target's units hear that its nexus is gone.
func TestNexusLostOnLogout(t *testing.T) {
	rec := &nexusRecorder{}
	l := newLab(t, target.Config{Logger: quietLogger()}, func(tg *target.Target) {
		rec.Unit, _ = tg.Unit(0)
		tg.SetLUN(0, rec)
	})
	c := dialRaw(t, l.portal.Addr)
	c.mustLogin(loginOpts{target: testIQN})
	if rec.count() != 0 {
		t.Fatal("a nexus was reported lost while its session lives")
	}
	c.logout()
	waitFor(t, 5*time.Second, "NexusLost after logout", func() bool { return rec.count() == 1 })
	if n := rec.lost[0]; n.TargetName != testIQN || n.InitiatorName == "" {
		t.Fatalf("lost nexus %+v", n)
	}
}
