package vss

import (
	"strings"
	"testing"

	"github.com/hitkit/hitkit/daemon"
)

func TestParseMountinfo(t *testing.T) {
	const info = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
97 22 7:3 / /mnt/my\040data rw,relatime shared:50 - ext4 /dev/loop3 rw
98 22 7:3 /sub /srv/bind ro,relatime - ext4 /dev/loop3 rw
`
	ms, err := parseMountinfo(strings.NewReader(info))
	if err != nil || len(ms) != 3 {
		t.Fatalf("%+v, %v", ms, err)
	}
	m := ms[1]
	if m.Major != 7 || m.Minor != 3 || m.Point != "/mnt/my data" || m.FSType != "ext4" || m.Source != "/dev/loop3" || m.ReadOnly() {
		t.Errorf("%+v", m)
	}
	if !ms[2].ReadOnly() || ms[2].Root != "/sub" {
		t.Errorf("%+v", ms[2])
	}
	for _, bad := range []string{"nonsense\n", "1 2 x:y / / rw - ext4 a rw\n", "1 2 8:1 / / rw\n"} {
		if _, err := parseMountinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSnapshotDevice(t *testing.T) {
	if n := SnapshotDevice("vol1", "vol1-20261126-150405.123"); n != "snap.vol1-20261126-150405.123" {
		t.Errorf("got %q", n)
	}
	long := SnapshotDevice("vol1", strings.Repeat("x", 80))
	odd := SnapshotDevice("vol1", "a b/c")
	for _, n := range []string{long, odd} {
		if !daemon.ValidName(n) || !strings.HasPrefix(n, "snap.") {
			t.Errorf("%q is not a valid device name", n)
		}
	}
	if long == odd {
		t.Error("two snapshots share a device name")
	}
}

func TestScheduleIntervals(t *testing.T) {
	for every, want := range map[string][2]string{
		"15m": {"*/15 * * * *", "*:0/15"}, "1h": {"0 */1 * * *", "0/1:00"}, "6h": {"0 */6 * * *", "0/6:00"},
		"24h": {"0 0 * * *", "daily"}, "hourly": {"0 * * * *", "hourly"}, "weekly": {"0 0 * * 0", "weekly"},
	} {
		cron, cal, err := Schedule{Every: every}.interval()
		if err != nil || cron != want[0] || cal != want[1] {
			t.Errorf("%s: %q %q %v", every, cron, cal, err)
		}
	}
	for _, bad := range []string{"7m", "5h", "90s", "2d", "", "-1h"} {
		if _, _, err := (Schedule{Every: bad}).interval(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	s := Schedule{Volume: "vol1", Every: "daily", Hitkit: "/opt/hit kit/hitkit", Args: []string{"--state-dir", "/var/lib/x%y"}}
	text, err := s.Cron()
	if err != nil || !strings.Contains(text, `root '/opt/hit kit/hitkit' snapshot create --state-dir '/var/lib/x\%y' vol1`) {
		t.Errorf("%s %v", text, err)
	}
	if _, err := (Schedule{Volume: "v; rm -rf /", Every: "daily", Hitkit: "/bin/hitkit"}).Cron(); err == nil {
		t.Error("a volume name with a shell command accepted")
	}
}

// TestRecordLive: a record stands while its process runs, and not for
// another process that got the same PID later.
func TestRecordLive(t *testing.T) {
	r := newRecord(UseBackup)
	if r.PIDStart == 0 || !r.Live() {
		t.Fatalf("this process's record is not live: %+v", r)
	}
	r.PIDStart++
	if r.Live() {
		t.Error("a record of a reused PID is live")
	}
	state := t.TempDir()
	r = newRecord(UseMount)
	r.Volume, r.Snapshot, r.Path, r.PID = "vol1", "s/1", "/nowhere", 1<<22+1
	if err := saveRecord(state, r); err != nil {
		t.Fatal(err)
	}
	recs, err := Records(state)
	if err != nil || len(recs) != 1 || recs[0].Snapshot != "s/1" || recs[0].Live() {
		t.Fatalf("%+v, %v", recs, err)
	}
	if err := removeRecord(state, recs[0]); err != nil {
		t.Fatal(err)
	}
	if recs, _ := Records(state); len(recs) != 0 {
		t.Fatalf("left: %+v", recs)
	}
}
