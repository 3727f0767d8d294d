package mgmt_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/groupapi"
)

func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func (f *fixture) volumeBytes(t *testing.T, name string) []byte {
	t.Helper()
	v, err := f.g.Volume(name)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, v.Size())
	if _, err := v.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) write(t *testing.T, name string, p []byte, off int64) {
	t.Helper()
	v, err := f.g.Volume(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

func eventKinds(t *testing.T, c *groupapi.Client) []string {
	t.Helper()
	ev, err := c.Events()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

func statusOf(err error) int {
	var se *groupapi.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// Every snapshot endpoint through the Go client: create (named and
// unnamed), list, get, online, read-write, offline, policy, changed
// blocks, restore, delete, volume delete; and the events they record.
func TestSnapshotEndpoints(t *testing.T) {
	f := start(t)
	c := f.dial(t)
	vol, err := c.Volume("vol1")
	if err != nil {
		t.Fatal(err)
	}

	p, err := c.SnapshotPolicy("vol1")
	if err != nil || p.ReservePercent != array.DefaultSnapshotReserve || p.WhenFull != groupapi.ReserveDeleteOldest || p.ReserveUsed != 0 {
		t.Fatalf("default policy %+v, %v", p, err)
	}

	f.write(t, "vol1", randomData(3<<20, 1), 1<<20)
	img1 := f.volumeBytes(t, "vol1")
	s1, err := c.CreateSnapshot("vol1", groupapi.CreateSnapshot{Name: "s1", Description: "before the upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Name != "s1" || s1.Volume != "vol1" || s1.Size != vol.Size || s1.IQN != vol.IQN+":s1" || s1.Online || !s1.ReadOnly ||
		s1.Description != "before the upgrade" || s1.Reserve != 0 || time.Since(s1.Created) > time.Minute {
		t.Fatalf("created %+v", s1)
	}

	// Known extents after s1: the changed blocks cover them, rounded
	// out to the granularity, and nothing else.
	extents := []groupapi.Extent{{Offset: 0, Length: 4096}, {Offset: 5 << 20, Length: 1 << 20}, {Offset: 9<<20 + 100, Length: 1}}
	for i, e := range extents {
		f.write(t, "vol1", randomData(int(e.Length), uint64(10+i)), e.Offset)
	}
	cb, err := c.ChangedBlocks("vol1", "s1", "")
	if err != nil {
		t.Fatal(err)
	}
	const g = array.SnapshotChunk
	want := []groupapi.Extent{{Offset: 0, Length: g}, {Offset: 5 << 20, Length: 1 << 20}, {Offset: 9 << 20, Length: g}}
	if cb.Granularity != g || cb.Size != vol.Size || cb.From != "s1" || cb.To != "" || !reflect.DeepEqual(cb.Extents, want) {
		t.Fatalf("changes s1..live: %+v, want extents %+v", cb, want)
	}

	s2, err := c.CreateSnapshot("vol1", groupapi.CreateSnapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s2.Name, "vol1-") || len(s2.Name) != len("vol1-20060102-150405.000") {
		t.Fatalf("default name %q", s2.Name)
	}
	f.write(t, "vol1", randomData(512, 20), 7<<20)
	if cb, err = c.ChangedBlocks("vol1", "s1", s2.Name); err != nil || !reflect.DeepEqual(cb.Extents, want) || cb.To != s2.Name {
		t.Fatalf("changes s1..s2: %+v, %v", cb, err)
	}
	if cb, err = c.ChangedBlocks("vol1", s2.Name, ""); err != nil || !reflect.DeepEqual(cb.Extents, []groupapi.Extent{{Offset: 7 << 20, Length: g}}) {
		t.Fatalf("changes s2..live: %+v, %v", cb, err)
	}

	list, err := c.Snapshots("vol1")
	if err != nil || len(list) != 2 || list[0].Name != "s1" || list[1].Name != s2.Name || list[0].Reserve != 1<<20+2*g {
		t.Fatalf("list %+v, %v", list, err)
	}
	if got, err := c.Snapshot("vol1", "s1"); err != nil || got.Reserve != list[0].Reserve || got.IQN != s1.IQN {
		t.Fatalf("get %+v, %v", got, err)
	}

	on := true
	s, err := c.SetSnapshot("vol1", "s1", groupapi.SetSnapshot{Online: &on})
	if err != nil || !s.Online || !s.ReadOnly {
		t.Fatalf("online: %+v, %v", s, err)
	}
	if _, ok := f.g.Server().Target(s1.IQN); !ok {
		t.Fatal("an online snapshot has no target")
	}
	if s, err = c.SetSnapshot("vol1", "s1", groupapi.SetSnapshot{ReadWrite: &on}); err != nil || !s.Online || s.ReadOnly {
		t.Fatalf("read-write: %+v, %v", s, err)
	}
	off := false
	if s, err = c.SetSnapshot("vol1", "s1", groupapi.SetSnapshot{Online: &off}); err != nil || s.Online || !s.ReadOnly {
		t.Fatalf("offline: %+v, %v", s, err)
	}
	if _, ok := f.g.Server().Target(s1.IQN); ok {
		t.Fatal("an offline snapshot still has a target")
	}

	np, err := c.SetSnapshotPolicy("vol1", groupapi.SnapshotPolicy{ReservePercent: 50, WhenFull: groupapi.ReserveRefuse, ReserveUsed: 12345})
	if err != nil || np.ReservePercent != 50 || np.WhenFull != groupapi.ReserveRefuse || np.ReserveUsed != list[0].Reserve+list[1].Reserve {
		t.Fatalf("set policy: %+v, %v", np, err)
	}
	if cfg := f.g.Config().Volumes[0]; cfg.SnapshotReserve == nil || *cfg.SnapshotReserve != 50 || cfg.SnapshotWhenFull != groupapi.ReserveRefuse {
		t.Fatalf("policy not saved: %+v", cfg)
	}

	rv, err := c.RestoreVolume("vol1", "s1")
	if err != nil || rv.Name != "vol1" || rv.Size != vol.Size {
		t.Fatalf("restore: %+v, %v", rv, err)
	}
	if got := f.volumeBytes(t, "vol1"); !bytes.Equal(got, img1) {
		t.Fatal("the restored volume differs from the snapshot")
	}

	if err := c.DeleteSnapshot("vol1", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot("vol1", "s1"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("deleted snapshot: %v, want 404", err)
	}

	kinds := eventKinds(t, c)
	for _, k := range []string{"snapshot-created", "snapshot-online", "snapshot-offline", "snapshot-policy-changed", "volume-restored", "snapshot-deleted"} {
		if !slices.Contains(kinds, k) {
			t.Fatalf("no %s event in %v", k, kinds)
		}
	}

	if code, b := f.request(t, "DELETE", "/api/v1/volumes/vol1?force=true", "", "basic"); code != http.StatusNoContent {
		t.Fatalf("delete volume: %d %s", code, b)
	}
	if _, err := c.Volume("vol1"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("deleted volume: %v", err)
	}
	if _, err := c.Snapshots("vol1"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("snapshots of a deleted volume: %v", err)
	}
	if kinds := eventKinds(t, c); kinds[len(kinds)-1] != "volume-deleted" {
		t.Fatalf("events %v end without volume-deleted", kinds)
	}
}

// A full reserve: under refuse, a new snapshot is refused with 507 and
// the event says why; under delete-oldest, the event names the snapshot
// the policy deleted.
func TestSnapshotReserveFullEvents(t *testing.T) {
	f := start(t)
	c := f.dial(t)
	if _, err := c.SetSnapshotPolicy("vol1", groupapi.SnapshotPolicy{ReservePercent: 1, WhenFull: groupapi.ReserveRefuse}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSnapshot("vol1", groupapi.CreateSnapshot{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	v, _ := f.g.Volume("vol1")
	if _, err := v.WriteAt(randomData(2<<20, 1), 0); !errors.Is(err, array.ErrReserveFull) {
		t.Fatalf("a write past a 1%% reserve: %v", err)
	}
	if _, err := v.WriteAt(randomData(640<<10, 1), 0); err != nil { // 10 chunks fit in 655 KiB
		t.Fatal(err)
	}
	if _, err := v.WriteAt(randomData(512, 1), 1<<20); err == nil {
		t.Fatal("a write past the full reserve succeeded")
	}
	if _, err := c.CreateSnapshot("vol1", groupapi.CreateSnapshot{Name: "b"}); statusOf(err) != http.StatusInsufficientStorage {
		t.Fatalf("a snapshot with a full reserve: %v, want 507", err)
	}
	waitEvent(t, c, "snapshot-reserve-full", "refused")

	if _, err := c.SetSnapshotPolicy("vol1", groupapi.SnapshotPolicy{ReservePercent: 1, WhenFull: groupapi.ReserveDeleteOldest}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt(randomData(512, 1), 1<<20); err != nil {
		t.Fatalf("a write under delete-oldest: %v", err)
	}
	waitEvent(t, c, "snapshot-reserve-full", "deleted the oldest snapshot a")
	if list, _ := c.Snapshots("vol1"); len(list) != 0 {
		t.Fatalf("snapshots left: %+v", list)
	}
}

// waitEvent waits, a bounded time, for an event whose detail has text:
// the group reports reserve events as they happen, apart from requests.
func waitEvent(t *testing.T, c *groupapi.Client, kind, text string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ev, err := c.Events()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ev {
			if e.Kind == kind && e.Volume == "vol1" && strings.Contains(e.Detail, text) {
				return
			}
		}
	}
	ev, _ := c.Events()
	t.Fatalf("no %s event saying %q: %+v", kind, text, ev)
}

// Bad input to the snapshot endpoints is answered 4xx with a JSON error
// and changes nothing.
func TestSnapshotBadRequests(t *testing.T) {
	f := start(t)
	c := f.dial(t)
	if _, err := c.CreateSnapshot("vol1", groupapi.CreateSnapshot{Name: "s1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSnapshot("vol1", groupapi.CreateSnapshot{Name: "s2"}); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot()
	beforeSnaps, _ := c.Snapshots("vol1")
	const snaps = "/api/v1/volumes/vol1/snapshots"
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"create: bad name", "POST", snaps, `{"name":"Bad Name"}`, 400},
		{"create: name too long", "POST", snaps, `{"name":"` + strings.Repeat("a", 64) + `"}`, 400},
		{"create: unknown field", "POST", snaps, `{"name":"x","when":"now"}`, 400},
		{"create: malformed", "POST", snaps, `{"name":`, 400},
		{"create: empty body", "POST", snaps, ``, 400},
		{"create: long description", "POST", snaps, `{"name":"x","description":"` + strings.Repeat("d", 2000) + `"}`, 400},
		{"create: duplicate", "POST", snaps, `{"name":"s1"}`, 409},
		{"create: missing volume", "POST", "/api/v1/volumes/nosuch/snapshots", `{"name":"x"}`, 404},
		{"create: bad volume name", "POST", "/api/v1/volumes/NO/snapshots", `{"name":"x"}`, 400},
		{"list: missing volume", "GET", "/api/v1/volumes/nosuch/snapshots", ``, 404},
		{"get: missing", "GET", snaps + "/nosuch", ``, 404},
		{"get: bad name", "GET", snaps + "/Bad", ``, 400},
		{"set: nothing", "PATCH", snaps + "/s1", `{}`, 400},
		{"set: read-write offline", "PATCH", snaps + "/s1", `{"read_write":true}`, 400},
		{"set: read-write going offline", "PATCH", snaps + "/s1", `{"online":false,"read_write":true}`, 400},
		{"set: not a bool", "PATCH", snaps + "/s1", `{"online":"yes"}`, 400},
		{"set: missing", "PATCH", snaps + "/nosuch", `{"online":true}`, 404},
		{"delete: missing", "DELETE", snaps + "/nosuch", ``, 404},
		{"delete: bad name", "DELETE", snaps + "/a%2Fb", ``, 400},
		{"policy: negative", "PUT", "/api/v1/volumes/vol1/snapshot-policy", `{"reserve_percent":-1,"when_full":"refuse"}`, 400},
		{"policy: over 200", "PUT", "/api/v1/volumes/vol1/snapshot-policy", `{"reserve_percent":201,"when_full":"refuse"}`, 400},
		{"policy: bad when_full", "PUT", "/api/v1/volumes/vol1/snapshot-policy", `{"reserve_percent":50,"when_full":"panic"}`, 400},
		{"policy: no when_full", "PUT", "/api/v1/volumes/vol1/snapshot-policy", `{"reserve_percent":50}`, 400},
		{"policy: unknown field", "PUT", "/api/v1/volumes/vol1/snapshot-policy", `{"reserve_percent":50,"when_full":"refuse","x":1}`, 400},
		{"policy: missing volume", "GET", "/api/v1/volumes/nosuch/snapshot-policy", ``, 404},
		{"changes: no from", "GET", "/api/v1/volumes/vol1/changes", ``, 400},
		{"changes: missing from", "GET", "/api/v1/volumes/vol1/changes?from=nosuch", ``, 404},
		{"changes: missing to", "GET", "/api/v1/volumes/vol1/changes?from=s1&to=nosuch", ``, 404},
		{"changes: backwards", "GET", "/api/v1/volumes/vol1/changes?from=s2&to=s1", ``, 400},
		{"changes: bad name", "GET", "/api/v1/volumes/vol1/changes?from=S1", ``, 400},
		{"restore: no snapshot", "POST", "/api/v1/volumes/vol1/restore", `{}`, 400},
		{"restore: missing snapshot", "POST", "/api/v1/volumes/vol1/restore", `{"snapshot":"nosuch"}`, 404},
		{"restore: bad name", "POST", "/api/v1/volumes/vol1/restore", `{"snapshot":"a/b"}`, 400},
		{"restore: missing volume", "POST", "/api/v1/volumes/nosuch/restore", `{"snapshot":"s1"}`, 404},
		{"wrong method", "PUT", snaps, `{}`, 405},
		{"wrong method on changes", "POST", "/api/v1/volumes/vol1/changes", `{}`, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := f.request(t, tc.method, tc.path, tc.body, "basic")
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, b)
			}
			t.Log(wantJSONError(t, b))
			if after := f.snapshot(); !reflect.DeepEqual(before, after) {
				t.Fatalf("the group changed:\nbefore %+v\nafter  %+v", before, after)
			}
			if list, _ := c.Snapshots("vol1"); !reflect.DeepEqual(list, beforeSnaps) {
				t.Fatalf("the snapshots changed: %+v", list)
			}
		})
	}
	if code, b := f.request(t, "GET", snaps, "", "none"); code != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d %s", code, b)
	}
}
