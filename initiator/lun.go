package initiator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hitkit/hitkit/scsi"
)

// Executor runs SCSI commands: a Session, or a multipath device that
// spreads them over sessions.
type Executor interface {
	Execute(ctx context.Context, cmd Command) (Result, error)
}

// LogicalUnit is a SCSI block device reached through an Executor. It is
// safe for concurrent use.
type LogicalUnit struct {
	exec      Executor
	lun       uint64
	blockSize int
	blocks    uint64
	maxIO     int // bytes per READ or WRITE
	thin      bool
	limits    scsi.BlockLimits
}

const (
	defaultMaxIO = 1 << 20
	// retries of a command that failed with a condition that clears by
	// itself, such as a unit attention after a reset or reinstatement.
	maxRetries = 8
)

// OpenLogicalUnit checks that the unit is ready and reads its capacity.
func OpenLogicalUnit(ctx context.Context, exec Executor, lun int) (*LogicalUnit, error) {
	if lun < 0 || lun > scsi.MaxLUN {
		return nil, fmt.Errorf("LUN %d is outside 0..16383", lun)
	}
	l := &LogicalUnit{exec: exec, lun: scsi.EncodeLUN(uint16(lun)), maxIO: defaultMaxIO}
	if err := l.do(ctx, scsi.TestUnitReady(), nil, nil); err != nil {
		return nil, fmt.Errorf("LUN %d: TEST UNIT READY: %w", lun, err)
	}
	capacity, err := l.readCapacity(ctx)
	if err != nil {
		return nil, fmt.Errorf("LUN %d: %w", lun, err)
	}
	if capacity.BlockLength < 512 || capacity.BlockLength > 1<<16 || capacity.BlockLength&(capacity.BlockLength-1) != 0 {
		return nil, fmt.Errorf("LUN %d: unsupported block length %d", lun, capacity.BlockLength)
	}
	l.blockSize, l.blocks, l.thin = int(capacity.BlockLength), capacity.Blocks(), capacity.ThinProvisioned
	if bl, err := l.vpd(ctx, scsi.VPDBlockLimits); err == nil {
		l.limits, _ = scsi.ParseBlockLimits(bl)
		if m := int(l.limits.MaxTransferLength) * l.blockSize; m > 0 && m < l.maxIO {
			l.maxIO = m
		}
	}
	return l, nil
}

func (l *LogicalUnit) readCapacity(ctx context.Context) (scsi.Capacity, error) {
	buf := make([]byte, 32)
	err := l.do(ctx, scsi.ReadCapacity16(32), buf, nil)
	if err == nil {
		return scsi.ParseReadCapacity16(buf)
	}
	var se *scsi.Error
	if !errors.As(err, &se) {
		return scsi.Capacity{}, fmt.Errorf("READ CAPACITY (16): %w", err)
	}
	buf = buf[:8]
	if err := l.do(ctx, scsi.ReadCapacity10(), buf, nil); err != nil {
		return scsi.Capacity{}, fmt.Errorf("READ CAPACITY (10): %w", err)
	}
	return scsi.ParseReadCapacity10(buf)
}

// do runs one command, turning its status into an error and retrying the
// conditions that clear by themselves.
func (l *LogicalUnit) do(ctx context.Context, cdb scsi.CDB, read, write []byte) error {
	cmd := Command{LUN: l.lun, CDB: cdb, ReadBuf: read, WriteBuf: write}
	for attempt := 0; ; attempt++ {
		res, err := l.exec.Execute(ctx, cmd)
		if err != nil {
			return err
		}
		if res.Response != 0 {
			err = fmt.Errorf("target failed the command (iSCSI response %d)", res.Response)
		} else {
			err = scsi.NewError(res.Status, res.Sense)
		}
		if err == nil {
			return l.checkResidual(cdb, read, res)
		}
		if attempt >= maxRetries || !scsi.IsRetryable(err) {
			return err
		}
		if !scsi.IsUnitAttention(err) {
			if err := sleepCtx(ctx, time.Duration(attempt+1)*10*time.Millisecond); err != nil {
				return err
			}
		}
	}
}

// checkResidual turns a short data transfer into an error for the commands
// whose length matters: a short read of blocks would hand stale buffer
// bytes to the caller.
func (l *LogicalUnit) checkResidual(cdb scsi.CDB, read []byte, res Result) error {
	if res.Residual == 0 || read == nil {
		return nil
	}
	switch cdb.Bytes()[0] {
	case scsi.OpRead10, scsi.OpRead16:
		return fmt.Errorf("short read: the target sent %d of %d bytes", len(read)-res.Residual, len(read))
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Size is the capacity in bytes.
func (l *LogicalUnit) Size() int64 { return int64(l.blocks) * int64(l.blockSize) }

// BlockSize is the logical block length in bytes.
func (l *LogicalUnit) BlockSize() int { return l.blockSize }

// ErrUnaligned is an I/O that does not start and end on block boundaries.
var ErrUnaligned = errors.New("I/O offset and length must be multiples of the block size")

func (l *LogicalUnit) checkRange(n int, off int64) error {
	bs := int64(l.blockSize)
	if off%bs != 0 || int64(n)%bs != 0 {
		return ErrUnaligned
	}
	if off < 0 || off+int64(n) > l.Size() {
		return fmt.Errorf("I/O of %d bytes at offset %d is beyond the end of the unit (%d bytes)", n, off, l.Size())
	}
	return nil
}

// ReadAt reads len(p) bytes at off, both multiples of the block size.
func (l *LogicalUnit) ReadAt(p []byte, off int64) (int, error) {
	return l.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext is ReadAt with a context.
func (l *LogicalUnit) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	return l.transfer(ctx, p, off, false, false)
}

// WriteAt writes p at off, both multiples of the block size.
func (l *LogicalUnit) WriteAt(p []byte, off int64) (int, error) {
	return l.WriteAtContext(context.Background(), p, off, false)
}

// WriteAtContext is WriteAt with a context; fua makes the write durable
// before it completes.
func (l *LogicalUnit) WriteAtContext(ctx context.Context, p []byte, off int64, fua bool) (int, error) {
	return l.transfer(ctx, p, off, true, fua)
}

func (l *LogicalUnit) transfer(ctx context.Context, p []byte, off int64, write, fua bool) (int, error) {
	if err := l.checkRange(len(p), off); err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		chunk := p[done:min(len(p), done+l.maxIO)]
		lba := uint64(off+int64(done)) / uint64(l.blockSize)
		blocks := uint32(len(chunk) / l.blockSize)
		var err error
		if write {
			err = l.do(ctx, scsi.WriteCDB(lba, blocks, fua), nil, chunk)
		} else {
			err = l.do(ctx, scsi.ReadCDB(lba, blocks, fua), chunk, nil)
		}
		if err != nil {
			return done, err
		}
		done += len(chunk)
	}
	return done, nil
}

// TestUnitReady asks whether the unit can take commands.
func (l *LogicalUnit) TestUnitReady(ctx context.Context) error {
	return l.do(ctx, scsi.TestUnitReady(), nil, nil)
}

// ReportLuns lists the logical units behind a session's target (REPORT
// LUNS, sent to LUN 0 as SPC requires of every target).
func ReportLuns(ctx context.Context, exec Executor) ([]int, error) {
	l := &LogicalUnit{exec: exec}
	buf := make([]byte, 16<<10)
	if err := l.do(ctx, scsi.ReportLuns(uint32(len(buf))), buf, nil); err != nil {
		return nil, fmt.Errorf("REPORT LUNS: %w", err)
	}
	luns, err := scsi.ParseReportLuns(buf)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(luns))
	for i, n := range luns {
		out[i] = int(n)
	}
	return out, nil
}

// Sync makes every completed write durable (SYNCHRONIZE CACHE).
func (l *LogicalUnit) Sync() error { return l.SyncContext(context.Background()) }

// SyncContext is Sync with a context.
func (l *LogicalUnit) SyncContext(ctx context.Context) error {
	err := l.do(ctx, scsi.SynchronizeCache16(0, 0, false), nil, nil)
	var se *scsi.Error
	if errors.As(err, &se) && se.Sense.Key == scsi.KeyIllegalRequest {
		err = l.do(ctx, scsi.SynchronizeCache10(0, 0, false), nil, nil)
	}
	return err
}

// ErrUnmapUnsupported is an Unmap on a unit that is not thin provisioned.
var ErrUnmapUnsupported = errors.New("the logical unit does not support UNMAP")

// Unmap releases the blocks of [off, off+length).
func (l *LogicalUnit) Unmap(off, length int64) error {
	if !l.thin {
		return ErrUnmapUnsupported
	}
	if err := l.checkRange(int(length), off); err != nil {
		return err
	}
	bs := int64(l.blockSize)
	lba, blocks := uint64(off/bs), uint64(length/bs)
	perDesc := uint64(1<<32 - 1)
	if m := l.limits.MaxUnmapLBACount; m > 0 {
		perDesc = uint64(m)
	}
	for blocks > 0 {
		n := min(blocks, perDesc)
		params := scsi.UnmapParams([]scsi.Extent{{LBA: lba, Blocks: uint32(n)}})
		if err := l.do(context.Background(), scsi.Unmap(uint16(len(params))), nil, params); err != nil {
			return err
		}
		lba, blocks = lba+n, blocks-n
	}
	return nil
}

// Identity is what a logical unit says about itself.
type Identity struct {
	Vendor, Product, Revision string
	Serial                    string
	WWID                      string
	Designators               []scsi.Designator
}

// Identify reads standard INQUIRY data and the serial number and device
// identification VPD pages.
func (l *LogicalUnit) Identify(ctx context.Context) (Identity, error) {
	buf := make([]byte, 96)
	if err := l.do(ctx, scsi.Inquiry(false, 0, uint16(len(buf))), buf, nil); err != nil {
		return Identity{}, fmt.Errorf("INQUIRY: %w", err)
	}
	std, err := scsi.ParseStandardInquiry(buf)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Vendor: std.Vendor, Product: std.Product, Revision: std.Revision}
	if page, err := l.vpd(ctx, scsi.VPDUnitSerial); err == nil {
		id.Serial, _ = scsi.ParseUnitSerial(page)
	}
	page, err := l.vpd(ctx, scsi.VPDDeviceIdentification)
	if err != nil {
		return id, fmt.Errorf("INQUIRY VPD 0x83: %w", err)
	}
	if id.Designators, err = scsi.ParseDeviceIdentification(page); err != nil {
		return id, err
	}
	id.WWID = scsi.WWID(id.Designators)
	return id, nil
}

// vpd reads a VPD page, growing the buffer when the page is longer.
func (l *LogicalUnit) vpd(ctx context.Context, page uint8) ([]byte, error) {
	buf := make([]byte, 255)
	for {
		if err := l.do(ctx, scsi.Inquiry(true, page, uint16(len(buf))), buf, nil); err != nil {
			return nil, err
		}
		n := 4 + int(buf[2])<<8 + int(buf[3])
		if n <= len(buf) {
			return buf[:n], nil
		}
		if len(buf) >= 0xffff {
			return nil, fmt.Errorf("VPD page 0x%02x is longer than 64 KiB", page)
		}
		buf = make([]byte, min(n, 0xffff))
	}
}
