package mpio

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/blockdev"
)

func requireTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed (Debian packages: fio, libnbd-bin)", n)
		}
	}
}

func serveNBD(t *testing.T, d *Device) *blockdev.NBDServer {
	t.Helper()
	srv, err := blockdev.ServeNBD(d, filepath.Join(t.TempDir(), "mpio.nbd"), blockdev.NBDOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestFioOverNBDWithPortDown serves the device over NBD and runs fio's
// write-and-verify workload while a member port goes down: fio must see
// no error and every block must verify.
func TestFioOverNBDWithPortDown(t *testing.T) {
	requireTool(t, "fio")
	defer clearFaults(t)
	d := openDevice(t, labConfig(t))
	srv := serveNBD(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "fio", "--name=mpio", "--ioengine=nbd", "--uri="+srv.URI(),
		"--rw=randwrite", "--verify=crc32c", "--bs=16k", "--size=16m", "--offset_increment=16m",
		"--iodepth=16", "--numjobs=2", "--verify_state_save=0", "--output-format=json")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	victim := activePath(t, d)
	inject(t, array.FaultRequest{Kind: array.FaultPortDown, Port: victim.Remote})
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fio: %v\n%s", err, out.String())
	}
	var res struct {
		Jobs []struct {
			Name  string `json:"jobname"`
			Error int    `json:"error"`
			Read  struct {
				IOs int64 `json:"total_ios"`
			} `json:"read"`
			Write struct {
				IOs int64 `json:"total_ios"`
			} `json:"write"`
		} `json:"jobs"`
	}
	start := bytes.IndexByte(out.Bytes(), '{')
	if start < 0 || json.Unmarshal(out.Bytes()[start:], &res) != nil || len(res.Jobs) != 2 {
		t.Fatalf("fio output:\n%s", out.String())
	}
	for _, j := range res.Jobs {
		if j.Error != 0 || j.Write.IOs == 0 || j.Read.IOs == 0 {
			t.Errorf("fio job %s: error %d, %d writes, %d verify reads", j.Name, j.Error, j.Write.IOs, j.Read.IOs)
		}
	}
	if pathByID(d, victim.ID).Errors == victim.Errors {
		t.Logf("note: fio finished before the port-down reached path %d", victim.ID)
	}
	t.Logf("fio: %d+%d writes verified with port %s down; %s", res.Jobs[0].Write.IOs, res.Jobs[1].Write.IOs, victim.Remote, describe(d))
}

// TestNBDCopyRoundTrip copies a file into the device and back out with
// nbdcopy, an independent NBD client.
func TestNBDCopyRoundTrip(t *testing.T) {
	requireTool(t, "nbdcopy")
	d := openDevice(t, labConfig(t))
	srv := serveNBD(t, d)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	data := make([]byte, d.Size())
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, args := range [][]string{{"--flush", in, srv.URI()}, {srv.URI(), out}} {
		if b, err := exec.CommandContext(ctx, "nbdcopy", args...).CombinedOutput(); err != nil {
			t.Fatalf("nbdcopy %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	back, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data) {
		t.Fatal("bytes copied out differ from the bytes copied in")
	}
}

// TestCloseLeaksNothing opens a device, fails a path so that reinstatement
// runs, closes it, and checks that no goroutine of mpio or of the
// initiator's sessions is left.
func TestCloseLeaksNothing(t *testing.T) {
	defer clearFaults(t)
	d := openDevice(t, labConfig(t))
	w := startWorkload(d)
	w.progress(t, 20, 10*time.Second)
	inject(t, array.FaultRequest{Kind: array.FaultPortDown, Port: activePath(t, d).Remote})
	w.progress(t, 20, 10*time.Second)
	w.finish(t)
	if err := d.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if _, err := d.ReadAt(make([]byte, 4096), 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("read after Close: %v, want the device closed", err)
	}
	var stacks string
	waitFor(t, 5*time.Second, "no mpio or initiator goroutine left", func() bool {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "hitkit/mpio.(") && !strings.Contains(stacks, "hitkit/initiator.(")
	})
}
