package array

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/disk"
	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

// forwardFixture is one volume over members 1 and 2, page by page, with
// a forwarder for each member and a measurable forwarding latency.
type forwardFixture struct {
	vol     *servedVolume
	members map[int]*Member
	latency atomic.Int64
}

const fwdLatency = 30 * time.Millisecond

func newForwardFixture(t *testing.T) *forwardFixture {
	t.Helper()
	store := openTestVolume(t, t.TempDir(), 64*testPage, 1, 2)
	d, err := disk.New(store, disk.Identity{Serial: "fwd"}, disk.Options{ThinProvisioning: true, NoPowerOnAttention: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &forwardFixture{members: map[int]*Member{}}
	f.latency.Store(int64(fwdLatency))
	f.vol = &servedVolume{store: store, disk: d}
	for _, n := range []int{1, 2} {
		m := &Member{cfg: MemberConfig{Number: n}}
		f.members[n] = m
		f.vol.addUnit(m, &f.latency)
	}
	f.vol.lead = (*f.vol.units.Load())[1]
	return f
}

// run sends a command through member m's port 1 and returns how long it took.
func (f *forwardFixture) run(t *testing.T, m int, cdb []byte, data []byte) time.Duration {
	t.Helper()
	r := &target.Request{Nexus: target.Nexus{TPGT: portTPGT(m, 1)}, CDB: cdb, DataOut: data, ExpectedDataIn: 1 << 20}
	start := time.Now()
	resp := f.vol.Execute(context.Background(), r)
	if resp.Status != scsi.StatusGood {
		t.Fatalf("command %x: status %#x sense %x", cdb[0], resp.Status, resp.Sense)
	}
	return time.Since(start)
}

func blocksPerPage() uint32 { return testPage / 512 }

func TestForwardingCountsForeignPagesOnly(t *testing.T) {
	f := newForwardFixture(t)
	page1 := blocksPerPage() // page 1 belongs to member 2
	read := func(lba uint32, n uint16) []byte { c := scsi.Read10(lba, n, false); return c.Bytes() }

	// Member 1 reading its own page 0: not forwarded, no latency.
	if d := f.run(t, 1, read(0, 8), nil); d >= fwdLatency {
		t.Errorf("a local read took %v", d)
	}
	if f.members[1].Forwarded() != 0 || f.vol.forwarded.Load() != 0 {
		t.Fatal("a read of an owned page was counted as forwarded")
	}
	// Member 1 reading page 1: forwarded once, with the latency.
	if d := f.run(t, 1, read(page1, 8), nil); d < fwdLatency {
		t.Errorf("a forwarded read took only %v", d)
	}
	// Member 2 reading page 1: its own.
	f.run(t, 2, read(page1+8, 8), nil)
	// Member 2 writing across pages 1 and 2: page 2 is member 1's.
	w := scsi.Write16(uint64(2*page1-1), 2, false)
	f.run(t, 2, w.Bytes(), make([]byte, 1024))
	if got := f.members[1].Forwarded(); got != 1 {
		t.Errorf("member 1 forwarded %d commands; want 1", got)
	}
	if got := f.members[2].Forwarded(); got != 1 {
		t.Errorf("member 2 forwarded %d commands; want 1", got)
	}
	if got := f.vol.forwarded.Load(); got != 2 {
		t.Errorf("the volume counted %d forwarded commands; want 2", got)
	}
}

func TestForwardingUnmapAndWriteSame(t *testing.T) {
	f := newForwardFixture(t)
	page1 := uint64(blocksPerPage())
	// UNMAP of one range on page 1, through member 2: local.
	params := scsi.UnmapParams([]scsi.Extent{{LBA: page1, Blocks: 8}})
	u := scsi.Unmap(uint16(len(params)))
	f.run(t, 2, u.Bytes(), params)
	if f.vol.forwarded.Load() != 0 {
		t.Fatal("a local UNMAP was forwarded")
	}
	// ...and through member 1: forwarded.
	f.run(t, 1, u.Bytes(), params)
	if f.members[1].Forwarded() != 1 {
		t.Fatal("a foreign UNMAP was not forwarded")
	}
	// WRITE SAME(16) with 0 blocks means "to the end": it touches
	// everyone's pages.
	ws := make([]byte, 16)
	ws[0], ws[1] = opWriteSame16, 0x08 // UNMAP bit
	binary.BigEndian.PutUint64(ws[2:], 0)
	ranges := blockRanges(&target.Request{CDB: ws}, 1000)
	if len(ranges) != 1 || ranges[0].blocks != 1000 {
		t.Fatalf("WRITE SAME to the end decodes as %v", ranges)
	}
}

func TestBlockRangesIgnoresJunk(t *testing.T) {
	for _, cdb := range [][]byte{nil, {opRead10}, {opRead16, 0, 0}, {scsi.OpInquiry, 0, 0, 0, 96, 0}} {
		if r := blockRanges(&target.Request{CDB: cdb}, 100); len(r) != 0 {
			t.Errorf("blockRanges(%x) = %v", cdb, r)
		}
	}
	// An LBA far past the end must not be forwarded, nor overflow.
	f := newForwardFixture(t)
	c := scsi.Read16(1<<63, 8, false)
	r := &target.Request{Nexus: target.Nexus{TPGT: portTPGT(1, 1)}, CDB: c.Bytes(), ExpectedDataIn: 4096}
	f.vol.Execute(context.Background(), r)
	if f.vol.forwarded.Load() != 0 {
		t.Fatal("an out-of-range read was forwarded")
	}
}
