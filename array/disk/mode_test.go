package disk

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hitkit/hitkit/scsi"
)

func TestModeSenseAllPages(t *testing.T) {
	d := newTestDisk(t, mib, Options{WriteCache: true})
	b := d.good(modeSense6(false, pcCurrent, pageAll, 0, 255), nil)
	if int(b[0])+1 != len(b) || b[2] != 0x10 || b[3] != 8 {
		t.Fatalf("header % x for %d bytes", b[:4], len(b))
	}
	desc := b[4:12]
	if binary.BigEndian.Uint32(desc) != 2048 || binary.BigEndian.Uint32(desc[4:])&0xffffff != 512 {
		t.Fatalf("block descriptor % x", desc)
	}
	pages := splitPages(t, b[12:])
	if len(pages) != 3 || pages[0][0] != pageCaching || pages[1][0] != pageControl || pages[2][0] != pageInfoException {
		t.Fatalf("pages %x", pages)
	}
	if pages[0][2]&0x04 == 0 {
		t.Fatal("WCE clear with WriteCache")
	}
	// The control page on its own equals the one in all pages.
	ctl := d.good(modeSense6(true, pcCurrent, pageControl, 0, 255), nil)
	if !bytes.Equal(ctl[4:], pages[1]) {
		t.Fatal("control page differs between the two requests")
	}
	if got := d.good(modeSense6(false, pcCurrent, pageAll, 0, 4), nil); len(got) != 4 {
		t.Fatalf("allocation length 4: %d bytes", len(got))
	}
	if got := d.good(modeSense6(false, pcCurrent, pageAll, 0xff, 255), nil); !bytes.Equal(got, b) {
		t.Fatal("all pages and subpages differs from all pages")
	}
}

func TestModeSensePageControl(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	ch := d.good(modeSense6(true, pcChangeable, pageAll, 0, 255), nil)
	pages := splitPages(t, ch[4:])
	if pages[0][2] != 0x04 || pages[1][4] != 0x08 || !allZero(pages[2][2:]) {
		t.Fatalf("changeable masks %x", pages)
	}
	def := d.good(modeSense6(true, pcDefault, pageCaching, 0, 255), nil)
	if def[4+2]&0x04 != 0 {
		t.Fatal("default WCE set without WriteCache")
	}
	d.fails(modeSense6(true, pcSaved, pageAll, 0, 255), nil, scsi.KeyIllegalRequest, 0x39, 0)
	d.fails(modeSense6(true, pcCurrent, 0x19, 0, 255), nil, scsi.KeyIllegalRequest, 0x24, 0)
	d.fails(modeSense6(true, pcCurrent, pageCaching, 1, 255), nil, scsi.KeyIllegalRequest, 0x24, 0)
}

func TestModeSense10LongLBA(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	cdb := []byte{scsi.OpModeSense10, 0x10, pageCaching, 0, 0, 0, 0, 0, 255, 0}
	b := d.good(cdb, nil)
	if int(binary.BigEndian.Uint16(b))+2 != len(b) || b[4]&0x01 == 0 || binary.BigEndian.Uint16(b[6:]) != 16 {
		t.Fatalf("header % x", b[:8])
	}
	if binary.BigEndian.Uint64(b[8:]) != 2048 || binary.BigEndian.Uint32(b[20:]) != 512 {
		t.Fatalf("long descriptor % x", b[8:24])
	}
}

// TestModeSelectRoundTrip sets SWP, which write-protects the disk, then
// clears it: the MODE SENSE data goes back as the MODE SELECT list.
func TestModeSelectRoundTrip(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	ms := d.good(modeSense6(false, pcCurrent, pageControl, 0, 255), nil)
	ms[0] = 0 // mode data length is reserved in MODE SELECT
	ms[4+8+4] |= 0x08
	d.good(modeSelect6(uint8(len(ms))), ms)
	if got := d.good(modeSense6(true, pcCurrent, pageControl, 0, 255), nil); got[2]&0x80 == 0 || got[4+4]&0x08 == 0 {
		t.Fatalf("SWP not set: % x", got)
	}
	d.fails(cdb10(scsi.OpWrite10, 0, 0, 1), make([]byte, 512), scsi.KeyDataProtect, 0x27, 0)
	ms[4+8+4] &^= 0x08
	d.good(modeSelect6(uint8(len(ms))), ms)
	d.good(cdb10(scsi.OpWrite10, 0, 0, 1), make([]byte, 512))
}

func TestModeSelectErrors(t *testing.T) {
	d := newTestDisk(t, mib, Options{})
	page := modeSenseCurrent(t, d.Disk, pageCaching)
	list := func(p []byte) []byte { return append([]byte{0, 0, 0, 0}, p...) }
	d.good(modeSelect6(0), nil)

	notChangeable := bytes.Clone(page)
	notChangeable[2] |= 0x01 // RCD
	d.fails(modeSelect6(uint8(4+len(page))), list(notChangeable), scsi.KeyIllegalRequest, 0x26, 0)

	d.fails(modeSelect6(uint8(4+len(page))), list(page[:len(page)-2]), scsi.KeyIllegalRequest, 0x1a, 0)
	wrongLength := bytes.Clone(page)
	wrongLength[1] = 0x10
	d.fails(modeSelect6(uint8(4+len(page)-2)), list(wrongLength[:len(page)-2]), scsi.KeyIllegalRequest, 0x26, 0)

	unknown := []byte{0x19, 2, 0, 0}
	d.fails(modeSelect6(uint8(4+len(unknown))), list(unknown), scsi.KeyIllegalRequest, 0x26, 0)

	withDesc := []byte{0, 0, 0, 8, 0, 0, 0x08, 0, 0, 0, 0x10, 0} // block length 4096
	d.fails(modeSelect6(uint8(len(withDesc))), withDesc, scsi.KeyIllegalRequest, 0x26, 0)

	sp := modeSelect6(uint8(4 + len(page)))
	sp[1] |= 0x01
	d.fails(sp, list(page), scsi.KeyIllegalRequest, 0x24, 0)
	noPF := modeSelect6(uint8(4 + len(page)))
	noPF[1] = 0
	d.fails(noPF, list(page), scsi.KeyIllegalRequest, 0x24, 0)
	d.fails(modeSelect6(uint8(4+len(page))), list(page)[:3], scsi.KeyIllegalRequest, 0x1a, 0)
}

func splitPages(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 || 2+int(b[1]) > len(b) {
			t.Fatalf("malformed mode pages % x", b)
		}
		out = append(out, b[:2+int(b[1])])
		b = b[2+int(b[1]):]
	}
	return out
}
