package mpio

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
)

// fioJob is what the tests read of one job in fio's JSON output.
type fioJob struct {
	Name  string `json:"jobname"`
	Error int    `json:"error"`
	Read  struct {
		IOs int64 `json:"total_ios"`
	} `json:"read"`
	Write struct {
		IOs int64 `json:"total_ios"`
	} `json:"write"`
}

// fioVerify runs fio's nbd engine against uri: two jobs each write 16 MiB
// at random with crc32c checksums and read it all back to verify. Once I/O
// has started (started reports it), it calls during, then waits for fio,
// bounded by a minute, and fails the test unless both jobs verified their
// blocks without an error.
func fioVerify(t *testing.T, uri string, started func() bool, during func()) []fioJob {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "fio", "--name=mpio", "--ioengine=nbd", "--uri="+uri,
		"--rw=randwrite", "--verify=crc32c", "--do_verify=1", "--bs=16k", "--size=16m", "--offset_increment=16m",
		"--iodepth=16", "--numjobs=2", "--verify_state_save=0", "--output-format=json")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Poll for the first completions, for at most 10 s.
	for i := 0; i < 2000 && !started(); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	during()
	if err := <-done; err != nil {
		t.Fatalf("fio: %v\n%s", err, out.String())
	}
	var res struct {
		Jobs []fioJob `json:"jobs"`
	}
	start := bytes.IndexByte(out.Bytes(), '{')
	if start < 0 || json.Unmarshal(out.Bytes()[start:], &res) != nil || len(res.Jobs) != 2 {
		t.Fatalf("fio output:\n%s", out.String())
	}
	for _, j := range res.Jobs {
		if j.Error != 0 || j.Write.IOs == 0 || j.Read.IOs < j.Write.IOs {
			t.Errorf("fio job %s: error %d, %d writes, %d verify reads", j.Name, j.Error, j.Write.IOs, j.Read.IOs)
		}
	}
	return res.Jobs
}

func completed(d *Device) uint64 {
	var n uint64
	for _, p := range d.Status().Paths {
		n += p.Completed
	}
	return n
}

// TestFioFaults runs fio's write-and-verify workload over the device's NBD
// export on a fresh device for each fault, injected once fio's I/O is
// under way: fio must report no error, every block must verify, and the
// paths must come back once the fault is cleared.
func TestFioFaults(t *testing.T) {
	requireTool(t, "fio")
	startLab(t)
	for _, tc := range []struct {
		name   string
		noPath time.Duration
		// fault injects the fault on the device's active path; it returns
		// after the fault has been cleared, or leaves it for clearFaults.
		fault func(t *testing.T, d *Device, on PathStatus)
		// hits says whether the fault reached the device, checked after fio.
		hits func(d *Device, on PathStatus, since time.Time) bool
	}{
		{"blackhole", 0, func(t *testing.T, d *Device, on PathStatus) {
			inject(t, array.FaultRequest{Kind: array.FaultBlackhole, Port: on.Remote})
		}, pathFailed},
		{"control-module failover", 0, func(t *testing.T, d *Device, on PathStatus) {
			inject(t, array.FaultRequest{Kind: array.FaultFailover, Member: member(t, on.Remote), Duration: array.Duration(2 * time.Second)})
		}, pathFailed},
		{"logout request", 0, func(t *testing.T, d *Device, on PathStatus) {
			inject(t, array.FaultRequest{Kind: array.FaultLogoutRequest, Volume: "vol1", Within: array.Duration(2 * time.Second)})
		}, func(d *Device, on PathStatus, since time.Time) bool {
			for _, s := range lab.g.Status().Sessions {
				if s.Volume == "vol1" && s.Since.After(since) {
					return true
				}
			}
			return false
		}},
		{"all ports down 1.5s", 20 * time.Second, func(t *testing.T, d *Device, on PathStatus) {
			allPortsDown(t)
			time.Sleep(1500 * time.Millisecond)
			clearFaults(t)
		}, pathFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer clearFaults(t)
			cfg := labConfig(t)
			if tc.noPath != 0 {
				cfg.NoPathTimeout = tc.noPath
			}
			d := openDevice(t, cfg)
			srv := serveNBD(t, d)
			base := completed(d)
			var victim PathStatus
			var since time.Time
			begin := time.Now()
			jobs := fioVerify(t, srv.URI(), func() bool { return completed(d) > base+32 }, func() {
				victim, since = activePath(t, d), time.Now()
				tc.fault(t, d, victim)
			})
			took := time.Since(begin)
			if !tc.hits(d, victim, since) {
				t.Errorf("the fault did not reach the device while fio ran: %s", describe(d))
			}
			clearFaults(t)
			back := waitFor(t, 15*time.Second, "every path back in service", func() bool { return allActive(d) })
			t.Logf("%s on %s: fio verified %d+%d writes in %v, no error; all paths back %v later; %s",
				tc.name, victim.Remote, jobs[0].Write.IOs, jobs[1].Write.IOs, took.Round(time.Millisecond),
				back.Round(time.Millisecond), describe(d))
		})
	}
}

func pathFailed(d *Device, on PathStatus, _ time.Time) bool {
	return pathByID(d, on.ID).Errors > on.Errors
}
