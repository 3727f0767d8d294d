package disk

import "context"

const (
	bitUnmap = 0x08
	bitNDOB  = 0x01 // WRITE SAME (16) only: no Data-Out, write zeroes
)

// writeSame is WRITE SAME (10) and (16): one block of Data-Out written to
// every block of the range. A length of zero means up to the end of the
// medium (WSNZ is zero). With the UNMAP bit the range is deallocated and
// reads back as zeroes (LBPRZ), whatever the block sent: that is what
// libiscsi's WriteSame.UnmapUntilEnd checks and what Linux's target does
// (Linux initiators only ever send zeroes with UNMAP).
func (d *Disk) writeSame(c *call) ([]byte, error) {
	e := ioExtent(c.cdb)
	if err := d.checkExtent(e); err != nil {
		return nil, err
	}
	if e.blocks == 0 {
		e.blocks = d.blocks.Load() - e.lba
	}
	if e.blocks > uint64(d.opts.MaxWriteSameLength) {
		return nil, errInvalidField(lengthField(c.cdb), -1)
	}
	unmap := c.cdb[1]&bitUnmap != 0
	if unmap && !d.opts.ThinProvisioning {
		return nil, errInvalidField(1, 3)
	}
	if err := d.checkWritable(); err != nil {
		return nil, err
	}
	block, err := d.writeSameBlock(c)
	if err != nil || e.blocks == 0 {
		return nil, err
	}
	off, n := d.bytes(e)
	switch {
	case unmap:
		err = d.unmapRange(c.ctx, off, n)
	case block == nil:
		err = d.writeZeroes(c.ctx, off, n)
	default:
		err = d.fill(c.ctx, off, n, block)
	}
	if err != nil {
		return nil, err
	}
	if !unmap {
		d.stats.wrote(n)
	}
	return nil, d.syncIf(false)
}

// writeSameBlock is the block to write, or nil for zeroes.
func (d *Disk) writeSameBlock(c *call) ([]byte, error) {
	if len(c.cdb) == 16 && c.cdb[1]&bitNDOB != 0 {
		return nil, nil
	}
	if int64(len(c.req.DataOut)) != d.blockSize {
		return nil, errDataOutLength()
	}
	if allZero(c.req.DataOut) {
		return nil, nil
	}
	return c.req.DataOut, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// writeZeroes uses the backend's own way when it has one.
func (d *Disk) writeZeroes(ctx context.Context, off, n int64) error {
	zw, ok := d.backend.(ZeroWriter)
	if !ok {
		return d.fill(ctx, off, n, make([]byte, d.blockSize))
	}
	if ctx.Err() != nil {
		return errTaskAborted()
	}
	s := stripesOf(off, n)
	d.stripes.rlock(s)
	err := zw.WriteZeroes(off, n)
	d.stripes.runlock(s)
	if err != nil {
		return errMedium(true, err)
	}
	return nil
}

// fill writes block over [off, off+n) a chunk at a time. The write cache
// setting is applied once, by the caller, not per chunk.
func (d *Disk) fill(ctx context.Context, off, n int64, block []byte) error {
	buf := getBuffer(int(min(n, maxChunk/int64(len(block))*int64(len(block)))))
	defer putBuffer(buf)
	for i := 0; i < len(*buf); i += len(block) {
		copy((*buf)[i:], block)
	}
	for n > 0 {
		chunk := (*buf)[:min(n, int64(len(*buf)))]
		if err := d.writeAt(ctx, chunk, off, false); err != nil {
			return err
		}
		off += int64(len(chunk))
		n -= int64(len(chunk))
	}
	return nil
}
