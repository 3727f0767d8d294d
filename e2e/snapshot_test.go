package e2e

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/scsi"
)

// readUnit reads a whole logical unit in 1 MiB pieces.
func readUnit(t *testing.T, lu *initiator.LogicalUnit) []byte {
	t.Helper()
	out := make([]byte, lu.Size())
	for off := int64(0); off < lu.Size(); off += 1 << 20 {
		if _, err := lu.ReadAt(out[off:min(off+1<<20, lu.Size())], off); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	return out
}

// Snapshots taken while a host writes through an iSCSI session hold
// exactly the writes that completed before them; each one, set online,
// reads back those bytes through its own target at the group IP, refuses
// writes with DATA PROTECT, and takes no login once offline. Restoring
// the volume under the connected session logs the session out; it logs
// in again by itself and reads the snapshot's bytes. A write past a full
// reserve under the refuse policy fails with SPACE ALLOCATION FAILED.
func TestLabSnapshotsThroughISCSI(t *testing.T) {
	l := startGroup(t)
	if err := l.g.SetSnapshotPolicy("vol1", array.MaxSnapshotReserve, array.ReserveRefuse); err != nil {
		t.Fatal(err)
	}
	_, lu := dialUnit(t, l.config())
	size := lu.Size()

	var mu sync.Mutex // orders each write and its shadow copy against snapshots
	shadow := make([]byte, size)
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(7, 7))
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			n := 512 * (1 + rng.Int64N(512))
			off := 512 * rng.Int64N((size-n)/512)
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			mu.Lock()
			_, err := lu.WriteAt(p, off)
			copy(shadow[off:], p)
			mu.Unlock()
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	want := map[string][]byte{}
	var names []string
	for range 4 {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		s, err := l.g.CreateSnapshot("vol1", "", "")
		want[s.Name] = bytes.Clone(shadow)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, s.Name)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("host write: %v", err)
	}
	live := bytes.Clone(shadow)

	on, off := true, false
	for _, name := range names {
		s, err := l.g.SetSnapshot("vol1", name, &on, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := l.config()
		cfg.TargetName = s.IQN
		sess, slu := dialUnit(t, cfg)
		if got := readUnit(t, slu); !bytes.Equal(got, want[name]) {
			t.Fatalf("snapshot %s read through iSCSI differs from the volume when it was taken", name)
		}
		_, err = slu.WriteAt(make([]byte, 4096), 0)
		var se *scsi.Error
		if !errors.As(err, &se) || !se.HasSense || se.Sense.Key != scsi.KeyDataProtect || se.Sense.ASC != 0x27 {
			t.Fatalf("write to a read-only snapshot: %v, want DATA PROTECT, WRITE PROTECTED", err)
		}
		sess.Close()
		if _, err := l.g.SetSnapshot("vol1", name, &off, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = initiator.Dial(ctx, cfg)
		cancel()
		if !errors.Is(err, &initiator.LoginError{Status: iscsi.LoginTargetRemoved}) {
			t.Fatalf("login to an offline snapshot: %v, want target removed", err)
		}
	}

	cb, size2, err := l.g.ChangedBlocks("vol1", names[0], "")
	if err != nil || size2 != size || len(cb) == 0 {
		t.Fatalf("changed blocks: %d extents, %v", len(cb), err)
	}
	var changed int64
	for _, e := range cb {
		changed += e.Length
	}
	// Every byte outside the changed extents is the same in the first
	// snapshot and the live volume.
	merged := bytes.Clone(want[names[0]])
	for _, e := range cb {
		copy(merged[e.Offset:e.Offset+e.Length], live[e.Offset:e.Offset+e.Length])
	}
	if !bytes.Equal(merged, live) {
		t.Fatal("bytes outside the changed extents differ between the snapshot and the volume")
	}
	t.Logf("changed since %s: %d extents, %d of %d bytes", names[0], len(cb), changed, size)

	if err := l.g.RestoreVolume("vol1", names[1]); err != nil {
		t.Fatal(err)
	}
	if got := readUnit(t, lu); !bytes.Equal(got, want[names[1]]) {
		t.Fatal("the restored volume read through the session differs from the snapshot")
	}

	// A full reserve under the refuse policy: the host's write fails with
	// SPACE ALLOCATION FAILED WRITE PROTECT, and the volume keeps its bytes.
	for _, name := range names {
		if err := l.g.DeleteSnapshot("vol1", name); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.g.SetSnapshotPolicy("vol1", 1, array.ReserveRefuse); err != nil {
		t.Fatal(err)
	}
	if _, err := l.g.CreateSnapshot("vol1", "full", ""); err != nil {
		t.Fatal(err)
	}
	_, err = lu.WriteAt(make([]byte, 2<<20), 0)
	var se *scsi.Error
	if !errors.As(err, &se) || !se.HasSense || se.Sense.Key != scsi.KeyDataProtect || se.Sense.ASC != 0x27 || se.Sense.ASCQ != 0x07 {
		t.Fatalf("write past a full reserve: %v, want DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT", err)
	}
	if got := readUnit(t, lu); !bytes.Equal(got, want[names[1]]) {
		t.Fatal("a refused write changed the volume")
	}
}
