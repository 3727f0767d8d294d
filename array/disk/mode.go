package disk

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/hitkit/hitkit/scsi"
)

// Mode pages: caching (WCE changeable), control (SWP changeable), and
// informational exceptions (reporting off). Nothing can be saved.

const (
	pageCaching       = 0x08
	pageControl       = 0x0a
	pageInfoException = 0x1c
	pageAll           = 0x3f

	opModeSelect10 = 0x55
)

// Page control values of MODE SENSE.
const (
	pcCurrent    = 0
	pcChangeable = 1
	pcDefault    = 2
	pcSaved      = 3
)

// modePages is every page, in the order MODE SENSE returns them.
var modePages = []uint8{pageCaching, pageControl, pageInfoException}

type modeState struct {
	mu         sync.Mutex // serialises MODE SELECT
	wce, swp   atomic.Bool
	defaultWCE bool
}

func (m *modeState) init(o Options) {
	m.defaultWCE = o.WriteCache
	m.wce.Store(o.WriteCache)
}

func (m *modeState) writeCacheEnabled() bool    { return m.wce.Load() }
func (m *modeState) softwareWriteProtect() bool { return m.swp.Load() }

// page builds one mode page as page control pc asks.
func (m *modeState) page(code uint8, pc uint8) []byte {
	switch code {
	case pageCaching:
		p := make([]byte, 20)
		p[0], p[1] = pageCaching, 0x12
		switch {
		case pc == pcChangeable:
			p[2] = 0x04
		case pc == pcCurrent && m.wce.Load(), pc == pcDefault && m.defaultWCE:
			p[2] = 0x04 // WCE
		}
		return p
	case pageControl:
		p := make([]byte, 12)
		p[0], p[1] = pageControl, 0x0a
		if pc == pcChangeable {
			p[4] = 0x08
			return p
		}
		p[3] = 0x10 // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
		if pc == pcCurrent && m.swp.Load() {
			p[4] |= 0x08 // SWP
		}
		binary.BigEndian.PutUint16(p[8:], 0xffff) // BUSY TIMEOUT PERIOD: unlimited
		return p
	case pageInfoException:
		p := make([]byte, 12)
		p[0], p[1] = pageInfoException, 0x0a
		if pc != pcChangeable {
			p[2] = 0x08 // DEXCPT: no informational exceptions
		}
		return p
	}
	return nil
}

func (d *Disk) modeSense(c *call) ([]byte, error) {
	ten := c.cdb[0] == scsi.OpModeSense10
	dbd := c.cdb[1]&0x08 != 0
	llbaa := ten && c.cdb[1]&0x10 != 0
	pc, code, sub := c.cdb[2]>>6, c.cdb[2]&0x3f, c.cdb[3]
	alloc := int(c.cdb[4])
	if ten {
		alloc = int(binary.BigEndian.Uint16(c.cdb[7:]))
	}
	if pc == pcSaved {
		return nil, errSavingNotSupported()
	}
	pages, err := d.modeSensePages(code, sub, pc)
	if err != nil {
		return nil, err
	}
	var desc []byte
	if !dbd {
		desc = d.blockDescriptor(llbaa, pc)
	}
	out := d.modeHeader(ten, llbaa && !dbd, len(desc))
	out = append(append(out, desc...), pages...)
	if ten {
		binary.BigEndian.PutUint16(out, uint16(len(out)-2))
	} else {
		out[0] = byte(len(out) - 1)
	}
	return truncate(out, alloc), nil
}

func (d *Disk) modeSensePages(code, sub, pc uint8) ([]byte, error) {
	if code == pageAll {
		if sub != 0 && sub != 0xff {
			return nil, errInvalidField(3, -1)
		}
		var b []byte
		for _, p := range modePages {
			b = append(b, d.mode.page(p, pc)...)
		}
		return b, nil
	}
	p := d.mode.page(code, pc)
	if p == nil {
		return nil, errInvalidField(2, 5)
	}
	if sub != 0 {
		return nil, errInvalidField(3, -1)
	}
	return p, nil
}

// modeHeader is the mode parameter header; the caller fills in the mode
// data length. The device-specific parameter carries WP and DPOFUA.
func (d *Disk) modeHeader(ten, longLBA bool, descLen int) []byte {
	dsp := byte(0x10) // DPOFUA
	if d.writeProtected() {
		dsp |= 0x80
	}
	if !ten {
		return []byte{0, 0, dsp, byte(descLen)}
	}
	h := []byte{0, 0, 0, dsp, 0, 0, 0, 0}
	if longLBA {
		h[4] = 0x01
	}
	binary.BigEndian.PutUint16(h[6:], uint16(descLen))
	return h
}

// blockDescriptor is the short (8-byte) or, with LLBAA, long (16-byte)
// block descriptor. Nothing in it is changeable.
func (d *Disk) blockDescriptor(long bool, pc uint8) []byte {
	blocks, size := d.blocks.Load(), uint32(d.blockSize)
	if pc == pcChangeable {
		blocks, size = 0, 0
	}
	if long {
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b, blocks)
		binary.BigEndian.PutUint32(b[12:], size)
		return b
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, uint32(min(blocks, 0xffffffff)))
	binary.BigEndian.PutUint32(b[4:], size&0xffffff)
	return b
}

// modeSelect applies the changeable bits of the pages sent: WCE and SWP.
// Any other difference from the current values, a page of the wrong
// length, or a block descriptor with another block length is refused
// before anything changes. Other nexuses see MODE PARAMETERS CHANGED.
func (d *Disk) modeSelect(c *call) ([]byte, error) {
	ten := c.cdb[0] == opModeSelect10
	paramLen := int(c.cdb[4])
	if ten {
		paramLen = int(binary.BigEndian.Uint16(c.cdb[7:]))
	}
	if c.cdb[1]&0x01 != 0 { // SP: nothing can be saved
		return nil, errInvalidField(1, 0)
	}
	if paramLen == 0 {
		return nil, nil
	}
	if c.cdb[1]&0x10 == 0 { // PF: only the SPC page format is understood
		return nil, errInvalidField(1, 4)
	}
	if len(c.req.DataOut) < paramLen {
		return nil, errParamListLength()
	}
	p := c.req.DataOut[:paramLen]

	d.mode.mu.Lock()
	defer d.mode.mu.Unlock()
	wce, swp, err := d.parseModeSelect(p, ten)
	if err != nil {
		return nil, err
	}
	changed := d.mode.wce.Swap(wce) != wce
	changed = d.mode.swp.Swap(swp) != swp || changed
	if changed {
		n := c.nexus()
		d.ua.raiseAll(uaModeChanged, &n)
	}
	return nil, nil
}

// parseModeSelect returns the WCE and SWP a MODE SELECT parameter list
// asks for. The caller holds d.mode.mu.
func (d *Disk) parseModeSelect(p []byte, ten bool) (wce, swp bool, err error) {
	hdr := 4
	descLen := 0
	if ten {
		hdr = 8
	}
	if len(p) < hdr {
		return false, false, errParamListLength()
	}
	if ten {
		descLen = int(binary.BigEndian.Uint16(p[6:]))
	} else {
		descLen = int(p[3])
	}
	if hdr+descLen > len(p) {
		return false, false, errParamListLength()
	}
	if err := d.checkBlockDescriptors(p[hdr:hdr+descLen], hdr, ten && p[4]&0x01 != 0); err != nil {
		return false, false, err
	}
	wce, swp = d.mode.wce.Load(), d.mode.swp.Load()
	for off := hdr + descLen; off < len(p); {
		if off+2 > len(p) {
			return false, false, errParamListLength()
		}
		code, n := p[off]&0x3f, int(p[off+1])
		if p[off]&0x40 != 0 { // SPF: no subpages here
			return false, false, errInvalidParam(off, 6)
		}
		if off+2+n > len(p) {
			return false, false, errParamListLength()
		}
		if err := d.checkModePage(p[off:off+2+n], off); err != nil {
			return false, false, err
		}
		switch code {
		case pageCaching:
			wce = p[off+2]&0x04 != 0
		case pageControl:
			swp = p[off+4]&0x08 != 0
		}
		off += 2 + n
	}
	return wce, swp, nil
}

// checkModePage refuses a page this unit lacks, one of the wrong length,
// and any change to a bit that is not changeable.
func (d *Disk) checkModePage(page []byte, off int) error {
	cur := d.mode.page(page[0]&0x3f, pcCurrent)
	if cur == nil {
		return errInvalidParam(off, 5)
	}
	if len(page) != len(cur) {
		return errInvalidParam(off+1, -1)
	}
	mask := d.mode.page(page[0]&0x3f, pcChangeable)
	for i := 2; i < len(page); i++ {
		if (page[i]^cur[i])&^mask[i] != 0 {
			return errInvalidParam(off+i, -1)
		}
	}
	return nil
}

func (d *Disk) checkBlockDescriptors(b []byte, off int, long bool) error {
	size := 8
	if long {
		size = 16
	}
	if len(b)%size != 0 {
		return errParamListLength()
	}
	for i := 0; i < len(b); i += size {
		length := binary.BigEndian.Uint32(b[i+size-4:]) & 0xffffff
		if long {
			length = binary.BigEndian.Uint32(b[i+12:])
		}
		if length != uint32(d.blockSize) {
			return errInvalidParam(off+i+size-3, -1)
		}
	}
	return nil
}
