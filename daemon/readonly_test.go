package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadOnlyConnect: a read-only connect gives a read-only loop device
// that refuses writes and still reads the volume; Request hands back how
// the volume was connected.
func TestReadOnlyConnect(t *testing.T) {
	lab := startLab(t)
	rd := startDaemon(t, t.TempDir(), t.TempDir())
	rw := rd.connect(t, lab.request("rw"))
	want := bytes.Repeat([]byte("read-only check "), 256)
	f, err := os.OpenFile(rw.Link, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(want, 0); err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.client.Disconnect(context.Background(), "rw"); err != nil {
		t.Fatal(err)
	}

	r := lab.request("ro")
	r.ReadOnly = true
	ro := rd.connect(t, r)
	if b, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(ro.BlockDevice), "ro")); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("loop device read-only flag %q", b)
	}
	if f, err := os.OpenFile(ro.Link, os.O_RDWR, 0); err == nil {
		_, werr := f.WriteAt(want, 0)
		f.Close()
		if werr == nil {
			t.Fatal("a write to the read-only device succeeded")
		}
	}
	got := make([]byte, len(want))
	f, err = os.Open(ro.Link)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %q, %v", got[:16], err)
	}

	req, err := rd.client.Request(context.Background(), "ro")
	if err != nil || !req.ReadOnly || req.Target != lab.vol1.IQN || req.CHAPSecret != lab.secret {
		t.Fatalf("Request = %+v, %v", req, err)
	}
	if _, err := rd.client.Request(context.Background(), "nope"); err == nil {
		t.Error("Request of a volume that is not connected")
	}
}
