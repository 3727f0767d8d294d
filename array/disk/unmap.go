package disk

import (
	"context"
	"encoding/binary"
)

// unmap is UNMAP: a parameter list of block descriptors to deallocate.
// Every descriptor is checked before any is applied, so a bad list
// changes nothing.
func (d *Disk) unmap(c *call) ([]byte, error) {
	if err := d.checkWritable(); err != nil {
		return nil, err
	}
	paramLen := int(binary.BigEndian.Uint16(c.cdb[7:]))
	if paramLen == 0 {
		return nil, nil
	}
	exts, err := d.unmapExtents(c.req.DataOut[:min(paramLen, len(c.req.DataOut))], paramLen)
	if err != nil {
		return nil, err
	}
	for _, e := range exts {
		off, n := d.bytes(e)
		if err := d.unmapRange(c.ctx, off, n); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// unmapExtents parses an UNMAP parameter list (SBC-3 5.28.2): an 8-byte
// header, then 16-byte descriptors of LBA, block count and 4 reserved
// bytes. A descriptor area that is not a multiple of 16 has its partial
// last descriptor ignored.
func (d *Disk) unmapExtents(p []byte, paramLen int) ([]extent, error) {
	if paramLen < 8 || len(p) < 8 {
		return nil, errParamListLength()
	}
	descLen := int(binary.BigEndian.Uint16(p[2:]))
	descLen = min(descLen, len(p)-8)
	count := descLen / 16
	if count > maxUnmapDescriptors {
		return nil, errInvalidParam(2, -1)
	}
	exts := make([]extent, 0, count)
	var total uint64
	for i := range count {
		desc := p[8+16*i:]
		e := extent{binary.BigEndian.Uint64(desc), uint64(binary.BigEndian.Uint32(desc[8:]))}
		if err := d.checkExtent(e); err != nil {
			return nil, err
		}
		if total += e.blocks; total > 0xffffffff {
			return nil, errInvalidParam(8+16*i+8, -1) // past MAXIMUM UNMAP LBA COUNT
		}
		if e.blocks > 0 {
			exts = append(exts, e)
		}
	}
	return exts, nil
}

// unmapRange deallocates under shared stripe locks.
func (d *Disk) unmapRange(ctx context.Context, off, n int64) error {
	if ctx.Err() != nil {
		return errTaskAborted()
	}
	s := stripesOf(off, n)
	d.stripes.rlock(s)
	err := d.backend.Unmap(off, n)
	d.stripes.runlock(s)
	if err != nil {
		return errMedium(true, err)
	}
	d.stats.unmapped(n)
	return nil
}
