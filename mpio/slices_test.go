package mpio

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/scsi"
)

func TestCommandLBA(t *testing.T) {
	for _, tc := range []struct {
		cdb  scsi.CDB
		lba  uint64
		isIO bool
	}{
		{scsi.Read10(1234, 8, false), 1234, true},
		{scsi.Write10(0xfffffffe, 1, true), 0xfffffffe, true},
		{scsi.Read16(1<<40, 8, false), 1 << 40, true},
		{scsi.Write16(77, 8, false), 77, true},
		{scsi.TestUnitReady(), 0, false},
		{scsi.SynchronizeCache10(5, 1, false), 0, false},
	} {
		lba, ok := commandLBA(tc.cdb.Bytes())
		if ok != tc.isIO || lba != tc.lba {
			t.Errorf("CDB % x: got %d, %v; want %d, %v", tc.cdb.Bytes(), lba, ok, tc.lba, tc.isIO)
		}
	}
}

// slicePaths are four fake paths, two logged in at each of members 1 and 2.
func slicePaths(s *selector) []*path {
	ps := fakePaths(4)
	for i, p := range ps {
		p.member.Store(int32(s.pages.memberOf([]string{"m1a:3260", "m2a:3260", "m1b:3260", "m2b:3260"}[i])))
	}
	return ps
}

func testPageMap() *PageMap {
	return &PageMap{
		PageSize: 1 << 20, Members: []int{1, 2},
		Ports: map[int][]string{1: {"m1a:3260", "m1b:3260"}, 2: {"m2a:3260", "m2b:3260"}},
	}
}

func TestSelectorSliceAware(t *testing.T) {
	for _, policy := range []Policy{PolicyRoundRobin, PolicyLQD, PolicyFailover} {
		s := &selector{policy: policy, pages: testPageMap()}
		s.blockSize.Store(512)
		ps := slicePaths(s)
		// Paths 1 and 3 are on member 1, 2 and 4 on member 2.
		want := map[int]int{1: 1, 3: 1, 2: 2, 4: 2}
		used := map[int]int{}
		for range 400 {
			off := rand.Int64N(64 << 20)
			lba := uint64(off / 512)
			cdb := scsi.Read10(uint32(lba), 8, false)
			if rand.IntN(2) == 0 {
				cdb = scsi.Write16(lba, 8, false)
			}
			p := s.pickFor(ps, initiator.Command{CDB: cdb})
			owner := 1 + int(off>>20)%2
			if p == nil || want[p.id] != owner {
				t.Fatalf("%s: offset %d (member %d) went to path %v", policy, off, owner, p)
			}
			used[p.id]++
		}
		if policy != PolicyFailover && len(used) != 4 {
			t.Errorf("%s: paths used %v, want all four", policy, used)
		}
		// With member 2's paths down, its I/O goes to member 1's.
		ps[1].state.Store(int32(stateFailed))
		ps[3].state.Store(int32(stateFailed))
		if p := s.pickFor(ps, initiator.Command{CDB: scsi.Read10(1<<20/512, 8, false)}); p == nil || want[p.id] != 1 {
			t.Fatalf("%s: with member 2 down, got path %v", policy, p)
		}
		// Commands other than READ and WRITE ignore the map.
		ps[1].state.Store(int32(stateUp))
		ps[3].state.Store(int32(stateUp))
		seen := map[int]bool{}
		for range 40 {
			seen[s.pickFor(ps, initiator.Command{CDB: scsi.TestUnitReady()}).id] = true
		}
		if policy == PolicyRoundRobin && len(seen) != 4 {
			t.Errorf("%s: TEST UNIT READY went to %v, want every path", policy, seen)
		}
	}
}

func TestSelectorNoPageMap(t *testing.T) {
	s := &selector{policy: PolicyRoundRobin}
	s.blockSize.Store(512)
	ps := fakePaths(3)
	got := map[int]int{}
	for range 300 {
		got[s.pickFor(ps, initiator.Command{CDB: scsi.Read10(0, 8, false)}).id]++
	}
	if got[1] != 100 || got[2] != 100 || got[3] != 100 {
		t.Fatalf("picks %v, want 100 each", got)
	}
}

// forwarded is the group's count of I/Os forwarded between members.
func forwarded(t testing.TB) uint64 {
	var n uint64
	for _, m := range lab.g.Members() {
		n += m.Forwarded()
	}
	return n
}

// TestLabSliceAware reads random blocks of vol1 with and without the
// group's page map, and counts the I/Os the group had to forward between
// members.
func TestLabSliceAware(t *testing.T) {
	g := startLab(t)
	pm, err := g.PageMap("vol1")
	if err != nil {
		t.Fatal(err)
	}
	pages := &PageMap{PageSize: pm.PageSize, Members: pm.Members, Ports: map[int][]string{}}
	for _, m := range g.Members() {
		for _, p := range m.Ports() {
			pages.Ports[m.Number()] = append(pages.Ports[m.Number()], p.Addr)
		}
	}
	if len(pm.Members) < 2 {
		t.Skipf("vol1 is on %d member(s): nothing to forward", len(pm.Members))
	}
	const ios = 2000
	run := func(routed bool) uint64 {
		cfg := labConfig(t)
		cfg.Sessions = 2 * len(pm.Members)
		if routed {
			cfg.PageMap = pages
		}
		d := openDevice(t, cfg)
		members := map[int]bool{}
		for _, p := range d.Status().Paths {
			members[pages.memberOf(p.Remote)] = true
		}
		if len(members) < len(pm.Members) {
			t.Logf("sessions reach members %v of %v", members, pm.Members)
		}
		before := forwarded(t)
		buf := make([]byte, 4096)
		rng := rand.New(rand.NewPCG(1, 2))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for range ios {
			off := rng.Int64N(d.Size()/4096) * 4096
			if _, err := d.LogicalUnit().ReadAtContext(ctx, buf, off); err != nil {
				t.Fatal(err)
			}
		}
		n := forwarded(t) - before
		d.Close()
		return n
	}
	off := run(false)
	on := run(true)
	t.Logf("forwarded I/Os over %d random 4 KiB reads: routing off %d, on %d", ios, off, on)
	if on*20 >= ios {
		t.Errorf("routing on: %d of %d I/Os forwarded, want under 5%%", on, ios)
	}
	if off <= on {
		t.Errorf("routing off forwarded %d, on %d: want more without routing", off, on)
	}
}
