package disk

import (
	"bytes"
	"context"
)

// The data path: READ, WRITE, WRITE AND VERIFY, VERIFY, PRE-FETCH and
// SYNCHRONIZE CACHE. Handlers check the extent first (LBA range and
// transfer limits), then write protection, then the Data-Out length; a
// zero-length transfer is a success that touches nothing.

const (
	bitFUA = 0x08
	bitDPO = 0x10
)

// checkTransfer is checkExtent plus MAXIMUM TRANSFER LENGTH.
func (d *Disk) checkTransfer(e extent, lengthByte int) error {
	if err := d.checkExtent(e); err != nil {
		return err
	}
	if e.blocks > uint64(d.opts.MaxTransferLength) {
		return errInvalidField(lengthByte, -1)
	}
	return nil
}

// lengthField is where the transfer length sits, for sense pointers.
func lengthField(cdb []byte) int {
	switch len(cdb) {
	case 6:
		return 4
	case 10:
		return 7
	case 12:
		return 6
	}
	return 10
}

// fua reports Force Unit Access; 6-byte CDBs have no such bit.
func fua(cdb []byte) bool { return len(cdb) > 6 && cdb[1]&bitFUA != 0 }

func (d *Disk) writeProtected() bool { return d.opts.ReadOnly || d.mode.softwareWriteProtect() }

func (d *Disk) checkWritable() error {
	if d.writeProtected() {
		return errWriteProtected()
	}
	return nil
}

// dataOut is the first n bytes of the command's Data-Out, which must
// all be there. More (an overflow the target reports) is ignored.
func dataOut(c *call, n int64) ([]byte, error) {
	if int64(len(c.req.DataOut)) < n {
		return nil, errDataOutLength()
	}
	return c.req.DataOut[:n], nil
}

// writePayload is the data a WRITE or WRITE AND VERIFY writes: the first n
// bytes of Data-Out. When the initiator sent less (its expected transfer
// length is short of the CDB's, an iSCSI overflow), the command is
// truncated to the whole blocks that did arrive, as FCP-4 and libiscsi's
// residual tests have it; a partial block fails the command with nothing
// written.
func (d *Disk) writePayload(c *call, n int64) ([]byte, error) {
	have := int64(len(c.req.DataOut))
	switch {
	case have >= n:
		return c.req.DataOut[:n], nil
	case have%d.blockSize == 0:
		return c.req.DataOut, nil
	}
	return nil, errDataOutLength()
}

func (d *Disk) read(c *call) ([]byte, error) {
	e := ioExtent(c.cdb)
	if err := d.checkTransfer(e, lengthField(c.cdb)); err != nil {
		return nil, err
	}
	if e.blocks == 0 {
		return nil, nil
	}
	off, n := d.bytes(e)
	buf := make([]byte, n)
	if err := d.readAt(c.ctx, buf, off); err != nil {
		return nil, err
	}
	d.stats.read(n)
	return buf, nil
}

func (d *Disk) write(c *call) ([]byte, error) {
	e := ioExtent(c.cdb)
	data, err := d.writeData(c, e)
	if err != nil || len(data) == 0 {
		return nil, err
	}
	off, _ := d.bytes(e)
	if err := d.writeAt(c.ctx, data, off, fua(c.cdb)); err != nil {
		return nil, err
	}
	d.stats.wrote(int64(len(data)))
	return nil, nil
}

// writeData checks a write command and returns its data: none for a
// transfer of zero blocks, less than asked for when less was sent.
func (d *Disk) writeData(c *call, e extent) ([]byte, error) {
	if err := d.checkTransfer(e, lengthField(c.cdb)); err != nil {
		return nil, err
	}
	if err := d.checkWritable(); err != nil {
		return nil, err
	}
	if e.blocks == 0 {
		return nil, nil
	}
	_, n := d.bytes(e)
	c.dataOutLength = n
	return d.writePayload(c, n)
}

// writeAndVerify writes, makes the data durable, and with BYTCHK reads it
// back and compares.
func (d *Disk) writeAndVerify(c *call) ([]byte, error) {
	e := ioExtent(c.cdb)
	data, err := d.writeData(c, e)
	if err != nil || len(data) == 0 {
		return nil, err
	}
	off, _ := d.bytes(e)
	if err := d.writeAt(c.ctx, data, off, true); err != nil {
		return nil, err
	}
	d.stats.wrote(int64(len(data)))
	if c.cdb[1]&0x02 == 0 {
		return nil, nil
	}
	return nil, d.compare(c.ctx, off, data, false)
}

// verify with BYTCHK 00b checks only the range (the medium is a file that
// is always readable); 01b compares the Data-Out with the medium; 11b
// compares every block with the single block sent.
func (d *Disk) verify(c *call) ([]byte, error) {
	e := ioExtent(c.cdb)
	if err := d.checkTransfer(e, lengthField(c.cdb)); err != nil {
		return nil, err
	}
	bytchk := c.cdb[1] >> 1 & 0x03
	if bytchk == 0x02 {
		return nil, errInvalidField(1, 2)
	}
	if bytchk == 0 || e.blocks == 0 {
		return nil, nil
	}
	off, n := d.bytes(e)
	if bytchk == 0x03 {
		block, err := dataOut(c, d.blockSize)
		if err != nil {
			return nil, err
		}
		return nil, d.compare(c.ctx, off, bytes.Repeat(block, int(e.blocks)), false)
	}
	want, err := dataOut(c, n)
	if err != nil {
		return nil, err
	}
	return nil, d.compare(c.ctx, off, want, false)
}

// prefetch has nothing to do: there is no cache to fill beyond the
// backend's own.
func (d *Disk) prefetch(c *call) ([]byte, error) {
	return nil, d.checkExtent(ioExtent(c.cdb))
}

// synchronizeCache syncs the whole backend whatever the range (which is
// still checked). IMMED is honoured by simply being quick enough.
func (d *Disk) synchronizeCache(c *call) ([]byte, error) {
	if err := d.checkExtent(ioExtent(c.cdb)); err != nil {
		return nil, err
	}
	if err := d.backend.Sync(); err != nil {
		return nil, errMedium(true, err)
	}
	return nil, nil
}

// readAt reads under shared stripe locks.
func (d *Disk) readAt(ctx context.Context, p []byte, off int64) error {
	if ctx.Err() != nil {
		return errTaskAborted()
	}
	s := stripesOf(off, int64(len(p)))
	d.stripes.rlock(s)
	_, err := d.backend.ReadAt(p, off)
	d.stripes.runlock(s)
	if err != nil {
		return errMedium(false, err)
	}
	return nil
}

// writeAt writes under shared stripe locks; with FUA, or with the write
// cache off, the data is synced before the command completes. The caller
// counts the command in the stats, once however many chunks it takes.
func (d *Disk) writeAt(ctx context.Context, p []byte, off int64, fua bool) error {
	if ctx.Err() != nil {
		return errTaskAborted()
	}
	s := stripesOf(off, int64(len(p)))
	d.stripes.rlock(s)
	_, err := d.backend.WriteAt(p, off)
	d.stripes.runlock(s)
	if err != nil {
		return errMedium(true, err)
	}
	return d.syncIf(fua)
}

func (d *Disk) syncIf(fua bool) error {
	if !fua && d.mode.writeCacheEnabled() {
		return nil
	}
	if err := d.backend.Sync(); err != nil {
		return errMedium(true, err)
	}
	return nil
}

// compare reads the medium at off and compares it with want, a chunk at
// a time. A difference is MISCOMPARE with the offset of the first
// differing byte. The caller holds the stripe locks when locked is set.
func (d *Disk) compare(ctx context.Context, off int64, want []byte, locked bool) error {
	buf := getBuffer(min(len(want), maxChunk))
	defer putBuffer(buf)
	for done := 0; done < len(want); {
		if ctx.Err() != nil {
			return errTaskAborted()
		}
		chunk := (*buf)[:min(len(want)-done, len(*buf))]
		var err error
		if locked {
			_, err = d.backend.ReadAt(chunk, off+int64(done))
			if err != nil {
				err = errMedium(false, err)
			}
		} else {
			err = d.readAt(ctx, chunk, off+int64(done))
		}
		if err != nil {
			return err
		}
		if i := firstDifference(chunk, want[done:done+len(chunk)]); i >= 0 {
			return errMiscompare(uint64(done + i))
		}
		done += len(chunk)
	}
	return nil
}

func firstDifference(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
