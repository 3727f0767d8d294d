package vss

import (
	"slices"
	"testing"
	"time"

	"github.com/hitkit/hitkit/groupapi"
)

// TestPruneable: only hitkit's snapshots of the kind are candidates,
// oldest first, beyond the newest keep; online and spared ones stay.
func TestPruneable(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	snap := func(name string, minute int, desc string, online bool) groupapi.Snapshot {
		return groupapi.Snapshot{Name: name, Created: t0.Add(time.Duration(minute) * time.Minute), Description: desc, Online: online}
	}
	backup := description(KindBackup, "h", "/mnt")
	create := description(KindCreate, "h", "")
	// Listed out of order: pruneable sorts by creation time.
	snaps := []groupapi.Snapshot{
		snap("b3", 3, backup, false),
		snap("b1", 1, backup, false),
		snap("foreign", 0, "nightly by another tool", false),
		snap("c1", 0, create, false),
		snap("b2", 2, backup, true),
		snap("b0", -1, backup, false),
		snap("b4", 4, backup, false),
	}
	for _, tc := range []struct {
		keep  int
		spare []string
		want  []string
	}{
		{keep: 5, want: nil},
		{keep: 2, want: []string{"b0", "b1"}},       // b2 is online
		{keep: 1, want: []string{"b0", "b1", "b3"}}, // b2 is online
		{keep: 1, spare: []string{"b0"}, want: []string{"b1", "b3"}},
		{keep: 0, spare: []string{"b4"}, want: []string{"b0", "b1", "b3"}},
	} {
		if got := pruneable(snaps, KindBackup, tc.keep, tc.spare); !slices.Equal(got, tc.want) {
			t.Errorf("keep %d, spare %v: %v, want %v", tc.keep, tc.spare, got, tc.want)
		}
	}
	if got := pruneable(snaps, KindCreate, 0, nil); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("kind create: %v", got)
	}
}
