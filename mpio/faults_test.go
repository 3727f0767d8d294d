package mpio

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/initiator"
)

// TestOpen checks what Open sets up: four sessions from two sources,
// spread by the group's redirects over member ports, one WWID.
func TestOpen(t *testing.T) {
	d := openDevice(t, labConfig(t))
	st := d.Status()
	if st.WWID == "" || st.Size != labVolumeSize || len(st.Paths) != 4 {
		t.Fatalf("status %+v", st)
	}
	ports := map[string]bool{}
	for _, p := range st.Paths {
		if p.State != StateActive || p.Remote == "" || p.Remote == lab.g.GroupAddr() {
			t.Fatalf("path %+v: want active on a member port", p)
		}
		if !strings.HasPrefix(p.Local, p.Source+":") {
			t.Fatalf("path %d: local address %q, want %s:port", p.ID, p.Local, p.Source)
		}
		ports[p.Remote] = true
	}
	if len(ports) < 2 {
		t.Errorf("four sessions all on %v; want the group to spread them", ports)
	}
	if st.Paths[0].Source != "127.0.0.2" || st.Paths[1].Source != "127.0.0.3" {
		t.Errorf("sources %q %q, want the two source addresses in turn", st.Paths[0].Source, st.Paths[1].Source)
	}
}

// TestFaults injects each fault under a verify workload on a fresh device:
// the application sees no error, and the paths come back.
func TestFaults(t *testing.T) {
	startLab(t)
	for _, tc := range []struct {
		name  string
		fault func(t *testing.T, on PathStatus) array.FaultRequest
	}{
		{"port down", func(t *testing.T, on PathStatus) array.FaultRequest {
			return array.FaultRequest{Kind: array.FaultPortDown, Port: on.Remote}
		}},
		{"blackhole", func(t *testing.T, on PathStatus) array.FaultRequest {
			return array.FaultRequest{Kind: array.FaultBlackhole, Port: on.Remote}
		}},
		{"control-module failover", func(t *testing.T, on PathStatus) array.FaultRequest {
			return array.FaultRequest{Kind: array.FaultFailover, Member: member(t, on.Remote), Duration: array.Duration(2 * time.Second)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer clearFaults(t)
			d := openDevice(t, labConfig(t))
			w := startWorkload(d)
			defer w.finish(t)
			w.progress(t, 20, 10*time.Second)
			victim := activePath(t, d)
			w.resetSlowest()
			inject(t, tc.fault(t, victim))
			detect := waitFor(t, 4*time.Second, "path "+victim.Remote+" failed", func() bool {
				return pathByID(d, victim.ID).Errors > victim.Errors
			})
			back := waitFor(t, 10*time.Second, "every path back in service", func() bool { return allActive(d) })
			w.progress(t, 50, 10*time.Second)
			t.Logf("%s on %s: path failed after %v, all paths back after %v, longest verify round %v; %s",
				tc.name, victim.Remote, detect.Round(time.Millisecond), (detect + back).Round(time.Millisecond),
				w.stall().Round(time.Millisecond), describe(d))
			if moved := pathByID(d, victim.ID).Remote; tc.name != "control-module failover" && moved == victim.Remote {
				t.Errorf("path %d is back on %s, the faulty port", victim.ID, moved)
			}
		})
	}
}

// TestLogoutRequest asks every session of the volume to log out: the paths
// drain and log in again, and no I/O fails and no path fails.
func TestLogoutRequest(t *testing.T) {
	d := openDevice(t, labConfig(t))
	w := startWorkload(d)
	defer w.finish(t)
	w.progress(t, 20, 10*time.Second)
	before := totalErrors(d)
	inject(t, array.FaultRequest{Kind: array.FaultLogoutRequest, Volume: "vol1", Within: array.Duration(2 * time.Second)})
	// Each path logs in again: wait until the group has seen a fresh
	// login from every one, i.e. its sessions are all younger than now.
	since := time.Now()
	waitFor(t, 10*time.Second, "every session renewed", func() bool {
		n := 0
		for _, s := range lab.g.Status().Sessions {
			if s.Volume == "vol1" && s.Since.After(since) {
				n++
			}
		}
		return n >= 4
	})
	w.progress(t, 50, 10*time.Second)
	if !allActive(d) {
		t.Fatalf("paths not all back: %s", describe(d))
	}
	if after := totalErrors(d); after != before {
		t.Errorf("path errors went from %d to %d: a logout request must not fail a path; %s", before, after, describe(d))
	}
}

// allPortsDown takes down every member port and the group IP.
func allPortsDown(t *testing.T) {
	t.Helper()
	inject(t, array.FaultRequest{Kind: array.FaultPortDown, Port: lab.g.GroupAddr()})
	for _, m := range lab.g.Members() {
		for _, p := range m.Ports() {
			inject(t, array.FaultRequest{Kind: array.FaultPortDown, Port: p.Addr})
		}
	}
}

// TestAllPathsDown: with every port down for less than the no-path
// timeout, I/O waits and resumes without an error; with a short no-path
// timeout, it fails with ErrNoPath.
func TestAllPathsDown(t *testing.T) {
	t.Run("queued until the paths return", func(t *testing.T) {
		defer clearFaults(t)
		cfg := labConfig(t)
		cfg.NoPathTimeout = 20 * time.Second
		d := openDevice(t, cfg)
		w := startWorkload(d)
		defer w.finish(t)
		w.progress(t, 20, 10*time.Second)
		w.resetSlowest()
		down := time.Now()
		allPortsDown(t)
		waitFor(t, 4*time.Second, "every path failed", func() bool {
			for _, p := range d.Status().Paths {
				if p.State != StateFailed && p.State != StateReinstating {
					return false
				}
			}
			return true
		})
		stalled := w.rounds.Load()
		time.Sleep(1500 * time.Millisecond)
		if w.rounds.Load() > stalled+workers {
			t.Errorf("I/O kept completing with every port down")
		}
		clearFaults(t)
		outage := time.Since(down)
		w.progress(t, 50, 15*time.Second)
		t.Logf("outage of %v: longest verify round %v; %s", outage.Round(time.Millisecond), w.stall().Round(time.Millisecond), describe(d))
	})
	t.Run("fails after the no-path timeout", func(t *testing.T) {
		defer clearFaults(t)
		cfg := labConfig(t)
		cfg.NoPathTimeout = time.Second
		d := openDevice(t, cfg)
		allPortsDown(t)
		waitFor(t, 4*time.Second, "every path failed", func() bool { return d.sel.pick(d.paths) == nil })
		start := time.Now()
		_, err := d.ReadAt(make([]byte, 4096), 0)
		took := time.Since(start)
		if !errors.Is(err, ErrNoPath) || !strings.Contains(err.Error(), "no usable path") {
			t.Fatalf("err = %v, want ErrNoPath", err)
		}
		if took < 900*time.Millisecond || took > 5*time.Second {
			t.Errorf("failed after %v, want about the 1 s no-path timeout", took)
		}
		t.Logf("with every port down: %v after %v", err, took.Round(time.Millisecond))
	})
}

// TestWWIDMismatch: a path that reaches another volume is refused.
func TestWWIDMismatch(t *testing.T) {
	g := startLab(t)
	vols := g.Config().Volumes
	cfg := Config{
		Session: initiator.Config{Portal: g.GroupAddr(), TargetName: vols[1].IQN},
		Paths: []PathSpec{
			{SourceAddr: "127.0.0.2"},
			{SourceAddr: "127.0.0.3", TargetName: vols[2].IQN},
		},
		Log: testLog(t),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := Open(ctx, cfg)
	if err == nil {
		d.Close()
		t.Fatal("Open accepted two paths to different volumes")
	}
	if !strings.Contains(err.Error(), "refusing to multipath two different units") || !strings.Contains(err.Error(), "127.0.0.3") {
		t.Fatalf("err = %v, want a clear refusal naming the path", err)
	}
	t.Logf("refused: %v", err)
	// The same two paths to one volume are fine.
	cfg.Paths[1].TargetName = ""
	openDevice(t, cfg)
}
