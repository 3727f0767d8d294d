package disk

import "encoding/binary"

// compareAndWrite is COMPARE AND WRITE: the Data-Out holds the blocks to
// compare, then the blocks to write. The whole command runs with its
// stripes locked exclusively, so no other command on the disk sees or
// changes the blocks between the compare and the write. On a miscompare
// nothing is written.
func (d *Disk) compareAndWrite(c *call) ([]byte, error) {
	e := extent{binary.BigEndian.Uint64(c.cdb[2:]), uint64(c.cdb[13])}
	if err := d.checkExtent(e); err != nil {
		return nil, err
	}
	if e.blocks > maxCompareAndWrite || e.blocks > uint64(d.opts.MaxTransferLength) {
		return nil, errInvalidField(13, -1)
	}
	off, n := d.bytes(e)
	// The Data-Out must be exactly both halves: anything else means the
	// NUMBER OF LOGICAL BLOCKS is not what the initiator meant (libiscsi
	// asks for 256 blocks, which the one-byte field cannot say).
	if int64(len(c.req.DataOut)) != 2*n {
		return nil, errInvalidField(13, -1)
	}
	if err := d.checkWritable(); err != nil {
		return nil, err
	}
	if e.blocks == 0 {
		return nil, nil
	}
	verify, data := c.req.DataOut[:n], c.req.DataOut[n:]

	if c.ctx.Err() != nil {
		return nil, errTaskAborted()
	}
	s := stripesOf(off, n)
	d.stripes.lock(s)
	defer d.stripes.unlock(s)
	if err := d.compare(c.ctx, off, verify, true); err != nil {
		return nil, err
	}
	if _, err := d.backend.WriteAt(data, off); err != nil {
		return nil, errMedium(true, err)
	}
	d.stats.wrote(n)
	return nil, d.syncIf(fua(c.cdb))
}
