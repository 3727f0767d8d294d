package mpio

import (
	"context"
	"testing"
	"time"

	"github.com/hitkit/hitkit/initiator"
)

// fakePaths are paths with no network behind them: enough for the
// selector, which reads only state, session presence and queue depth.
func fakePaths(n int) []*path {
	var ps []*path
	for i := range n {
		p := newPath(nil, i+1, PathSpec{})
		p.sess.Store(&initiator.Session{})
		p.state.Store(int32(stateUp))
		ps = append(ps, p)
	}
	return ps
}

func countPicks(s *selector, ps []*path, n int) map[int]int {
	got := map[int]int{}
	for range n {
		if p := s.pick(ps); p != nil {
			got[p.id]++
		} else {
			got[0]++
		}
	}
	return got
}

func TestSelectorRoundRobin(t *testing.T) {
	ps := fakePaths(3)
	s := &selector{policy: PolicyRoundRobin}
	if got := countPicks(s, ps, 300); got[1] != 100 || got[2] != 100 || got[3] != 100 {
		t.Fatalf("picks %v, want 100 each", got)
	}
	ps[1].state.Store(int32(stateFailed))
	if got := countPicks(s, ps, 300); got[2] != 0 || got[1]+got[3] != 300 || got[1] < 100 || got[3] < 100 {
		t.Fatalf("picks %v, want the failed path 2 skipped and the others shared", got)
	}
}

func TestSelectorFailover(t *testing.T) {
	ps := fakePaths(3)
	s := &selector{policy: PolicyFailover}
	if got := countPicks(s, ps, 10); got[1] != 10 {
		t.Fatalf("picks %v, want all on path 1", got)
	}
	ps[0].state.Store(int32(stateReinstating))
	if got := countPicks(s, ps, 10); got[2] != 10 {
		t.Fatalf("picks %v, want all on path 2 while 1 is down", got)
	}
}

func TestSelectorLeastQueueDepth(t *testing.T) {
	ps := fakePaths(3)
	s := &selector{policy: PolicyLQD}
	ps[0].outstanding.Store(5)
	ps[1].outstanding.Store(1)
	ps[2].outstanding.Store(3)
	if got := countPicks(s, ps, 20); got[2] != 20 {
		t.Fatalf("picks %v, want the least busy path 2", got)
	}
	for _, p := range ps {
		p.outstanding.Store(0)
	}
	if got := countPicks(s, ps, 30); got[1] != 10 || got[2] != 10 || got[3] != 10 {
		t.Fatalf("picks %v, want idle paths shared evenly", got)
	}
}

func TestSelectorDrainingOnlyAsLastResort(t *testing.T) {
	ps := fakePaths(2)
	s := &selector{policy: PolicyLQD}
	ps[0].state.Store(int32(stateDraining))
	if got := countPicks(s, ps, 10); got[2] != 10 {
		t.Fatalf("picks %v, want the path that is not draining", got)
	}
	ps[1].state.Store(int32(stateFailed))
	if got := countPicks(s, ps, 10); got[1] != 10 {
		t.Fatalf("picks %v, want the draining path when it is the only one", got)
	}
	ps[0].state.Store(int32(stateFailed))
	if got := countPicks(s, ps, 3); got[0] != 3 {
		t.Fatalf("picks %v, want none", got)
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": PolicyLQD, "lqd": PolicyLQD, "rr": PolicyRoundRobin, "failover": PolicyFailover} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePolicy("fastest"); err == nil {
		t.Error("ParsePolicy accepted an unknown policy")
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(250*time.Millisecond, 5*time.Second)
	var last time.Duration
	for i := range 8 {
		d := b.next()
		base := min(250*time.Millisecond<<i, 5*time.Second)
		if d < base*8/10 || d > base*12/10 {
			t.Fatalf("attempt %d waits %v, want %v ± 20 %%", i+1, d, base)
		}
		last = d
	}
	if last < 4*time.Second {
		t.Fatalf("backoff stopped at %v, want about 5 s", last)
	}
	b.reset()
	if d := b.next(); d > 300*time.Millisecond {
		t.Fatalf("after reset waits %v", d)
	}
}

func TestLoginLimiterSpacesLogins(t *testing.T) {
	l := newLoginLimiter(50 * time.Millisecond)
	start := time.Now()
	for range 4 {
		if err := l.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 140*time.Millisecond || took > 2*time.Second {
		t.Fatalf("four logins took %v, want them about 50 ms apart", took)
	}
}

// TestPoliciesOnLab drives each policy through the lab and checks where
// the commands went.
func TestPoliciesOnLab(t *testing.T) {
	startLab(t)
	run := func(t *testing.T, policy Policy) Status {
		cfg := labConfig(t)
		cfg.Policy = policy
		d := openDevice(t, cfg)
		w := startWorkload(d)
		w.progress(t, 200, 10*time.Second)
		w.finish(t)
		return d.Status()
	}
	t.Run("rr spreads", func(t *testing.T) {
		st := run(t, PolicyRoundRobin)
		var total uint64
		for _, p := range st.Paths {
			total += p.Completed
		}
		for _, p := range st.Paths {
			if p.Completed < total/8 {
				t.Errorf("path %d did %d of %d commands; want about a quarter", p.ID, p.Completed, total)
			}
		}
	})
	t.Run("failover keeps one active", func(t *testing.T) {
		st := run(t, PolicyFailover)
		for _, p := range st.Paths[1:] {
			if p.Completed > 10 || p.State != StateStandby {
				t.Errorf("path %d: %d commands, state %s; want standby and idle", p.ID, p.Completed, p.State)
			}
		}
		if st.Paths[0].State != StateActive {
			t.Errorf("path 1 is %s, want active", st.Paths[0].State)
		}
	})
	t.Run("lqd uses every path", func(t *testing.T) {
		st := run(t, PolicyLQD)
		for _, p := range st.Paths {
			if p.Completed == 0 {
				t.Errorf("path %d did nothing", p.ID)
			}
		}
	})
}
