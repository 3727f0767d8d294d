// Package disk is the lab array's SCSI direct-access block device: an
// SBC-3 logical unit over a Backend, for the iSCSI target in array/target.
//
// A Disk answers the commands Linux, VMware-style initiators and the
// libiscsi conformance suite send to a disk: INQUIRY and its VPD pages,
// READ CAPACITY, READ, WRITE, VERIFY, WRITE AND VERIFY, COMPARE AND WRITE,
// WRITE SAME, UNMAP, GET LBA STATUS, MODE SENSE/SELECT, REPORT SUPPORTED
// OPERATION CODES, and persistent reservations. It keeps per-nexus unit
// attentions (power on, capacity change, mode change, reservations).
//
// Execute is safe for concurrent use. Reads and writes of different
// stripes run in parallel; COMPARE AND WRITE excludes other I/O only on
// the stripes it touches. The DataIn slice of a Response is freshly
// allocated and belongs to the caller.
package disk

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

// Options shapes a Disk. The zero value is a writable, thick 512-byte
// disk with write-back caching off, announcing itself with a power-on unit
// attention to every new nexus.
type Options struct {
	// BlockSize is the logical block length: 512 (the default) or 4096.
	BlockSize int
	// ReadOnly fails every command that would change the medium with
	// DATA PROTECT, WRITE PROTECTED.
	ReadOnly bool
	// ThinProvisioning enables UNMAP and WRITE SAME with UNMAP, and
	// reports LBPME, LBPU, LBPWS, LBPWS10 and LBPRZ.
	ThinProvisioning bool
	// WriteCache sets WCE in the caching mode page: writes may sit in the
	// backend's cache until SYNCHRONIZE CACHE or FUA. Without it every
	// write is synced before it completes.
	WriteCache bool
	// MaxTransferLength and OptimalTransferLength are in blocks, for VPD
	// page 0xb0. Zero MaxTransferLength means 8 MiB worth of blocks;
	// zero OptimalTransferLength is not reported.
	MaxTransferLength     uint32
	OptimalTransferLength uint32
	// MaxWriteSameLength bounds WRITE SAME, in blocks; zero means 4 Mi.
	MaxWriteSameLength uint32
	// NoPowerOnAttention skips the POWER ON, RESET OR BUS DEVICE RESET
	// unit attention that each new nexus otherwise sees first, as from a
	// real array. Tests that do not want to clear it set this.
	NoPowerOnAttention bool
}

const (
	defaultMaxTransferBytes = 32 << 20 // as the target engine's DefaultMaxTransfer
	defaultMaxWriteSame     = 4 << 20
	// maxCompareAndWrite is the largest COMPARE AND WRITE, in blocks; the
	// NUMBER OF LOGICAL BLOCKS field is one byte.
	maxCompareAndWrite = 255
	// maxUnmapDescriptors is what fits a 16-bit parameter list length.
	maxUnmapDescriptors = (0xffff - 8) / 16
	// holeGranularity is the size of the holes a filesystem punches: the
	// optimal unmap granularity reported in VPD page 0xb0.
	holeGranularity = 4096
)

// Disk is a SCSI direct-access logical unit; it implements target.Unit.
type Disk struct {
	backend    Backend
	id         Identity
	opts       Options
	blockSize  int64
	blockShift uint
	blocks     atomic.Uint64 // capacity in logical blocks

	commands *commandSet
	stripes  stripeLocks
	ua       unitAttentions
	mode     modeState
	pr       reservations
	stats    counters
}

var _ target.Unit = (*Disk)(nil)

// New makes a Disk over backend, whose size is the capacity (rounded down
// to whole blocks).
func New(backend Backend, id Identity, opts Options) (*Disk, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = 512
	}
	if opts.BlockSize != 512 && opts.BlockSize != 4096 {
		return nil, fmt.Errorf("disk: block size %d: want 512 or 4096", opts.BlockSize)
	}
	if opts.MaxTransferLength == 0 {
		opts.MaxTransferLength = uint32(defaultMaxTransferBytes / opts.BlockSize)
	}
	if opts.MaxWriteSameLength == 0 {
		opts.MaxWriteSameLength = defaultMaxWriteSame
	}
	id, err := id.normalized()
	if err != nil {
		return nil, err
	}
	d := &Disk{
		backend:    backend,
		id:         id,
		opts:       opts,
		blockSize:  int64(opts.BlockSize),
		blockShift: uint(bits.TrailingZeros(uint(opts.BlockSize))),
	}
	if n := backend.Size() >> d.blockShift; n > 0 {
		d.blocks.Store(uint64(n))
	} else {
		return nil, fmt.Errorf("disk: backend of %d bytes holds no %d-byte block", backend.Size(), opts.BlockSize)
	}
	d.commands = newCommandSet(opts)
	d.ua.powerOn = !opts.NoPowerOnAttention
	d.mode.init(opts)
	return d, nil
}

// Blocks is the capacity in logical blocks.
func (d *Disk) Blocks() uint64 { return d.blocks.Load() }

// BlockSize is the logical block length in bytes.
func (d *Disk) BlockSize() int { return int(d.blockSize) }

// Resize changes the capacity to size bytes (rounded down to whole
// blocks). A backend that is a Resizer is resized first; any other must
// already hold size bytes. Every nexus then sees CAPACITY DATA HAS
// CHANGED once.
func (d *Disk) Resize(size int64) error {
	if size < d.blockSize {
		return fmt.Errorf("disk: cannot resize to %d bytes: less than one block", size)
	}
	if r, ok := d.backend.(Resizer); ok {
		if err := r.Resize(size); err != nil {
			return fmt.Errorf("disk: resize: %w", err)
		}
	} else if have := d.backend.Size(); have < size {
		return fmt.Errorf("disk: backend holds %d bytes, cannot grow to %d", have, size)
	}
	d.blocks.Store(uint64(size >> d.blockShift))
	d.ua.raiseAll(uaCapacityChanged, nil)
	return nil
}

// Reset is a LOGICAL UNIT RESET as the unit sees it: every nexus gets the
// POWER ON, RESET OR BUS DEVICE RESET unit attention next. Persistent
// reservations survive it, as SPC requires.
func (d *Disk) Reset() { d.ua.reset() }

// NexusLost forgets the unit attentions pending for a nexus whose session
// ended; reservations, which outlive sessions, stay.
func (d *Disk) NexusLost(n target.Nexus) { d.ua.forget(n) }

// Execute runs one command; see target.Unit.
func (d *Disk) Execute(ctx context.Context, r *target.Request) target.Response {
	c := &call{ctx: ctx, req: r}
	data, err := d.execute(c)
	if err != nil {
		// A write refused for its Data-Out still reports the residual.
		r := errorResponse(ctx, err)
		r.DataOutLength = uint32(c.dataOutLength)
		return r
	}
	return target.Response{Status: scsi.StatusGood, DataIn: data, DataOutLength: uint32(c.dataOutLength)}
}

// execute checks a command in the order SAM and SPC give: unit attention,
// then the CDB itself, then reservations; then runs it.
func (d *Disk) execute(c *call) ([]byte, error) {
	r := c.req
	if len(r.CDB) == 0 {
		return nil, errInvalidOpcode()
	}
	cmd, lookupErr := d.commands.lookup(r.CDB)
	if !reportsPastAttention(r.CDB[0]) {
		if code, ok := d.ua.take(r.Nexus); ok {
			return nil, unitAttention(code)
		}
	}
	if lookupErr != nil {
		return nil, lookupErr
	}
	if err := cmd.checkCDB(r.CDB); err != nil {
		return nil, err
	}
	if d.pr.conflicts(r.Nexus, cmd.access) {
		return nil, errReservationConflict()
	}
	c.cdb = r.CDB[:len(cmd.usage)]
	return cmd.run(d, c)
}

// call is one command on its way through a handler.
type call struct {
	ctx context.Context
	req *target.Request
	cdb []byte
	// dataOutLength is how many bytes of Data-Out a write's CDB describes,
	// so that the target can report a residual against what was sent.
	dataOutLength int64
}

func (c *call) nexus() target.Nexus { return c.req.Nexus }

// errorResponse turns a handler's error into the status the initiator
// sees. A handler returns cmdErrors; anything else is a bug or a
// cancellation.
func errorResponse(ctx context.Context, err error) target.Response {
	var r interface{ response() target.Response }
	switch {
	case errors.As(err, &r):
		return r.response()
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return target.Response{Status: scsi.StatusTaskAborted}
	}
	// INTERNAL TARGET FAILURE
	return checkCondition(scsi.KeyHardwareError, 0x44, 0x00).response()
}

// Stats are a disk's counters since it was made.
type Stats struct {
	ReadOps    uint64 `json:"read_ops"`
	ReadBytes  uint64 `json:"read_bytes"`
	WriteOps   uint64 `json:"write_ops"`
	WriteBytes uint64 `json:"write_bytes"`
	UnmapOps   uint64 `json:"unmap_ops"`
	UnmapBytes uint64 `json:"unmap_bytes"`
}

type counters struct {
	readOps, readBytes, writeOps, writeBytes, unmapOps, unmapBytes atomic.Uint64
}

// Stats returns the counters. Each is read atomically; the set is not a
// snapshot across counters.
func (d *Disk) Stats() Stats {
	s := &d.stats
	return Stats{
		ReadOps: s.readOps.Load(), ReadBytes: s.readBytes.Load(),
		WriteOps: s.writeOps.Load(), WriteBytes: s.writeBytes.Load(),
		UnmapOps: s.unmapOps.Load(), UnmapBytes: s.unmapBytes.Load(),
	}
}

func (s *counters) read(n int64) {
	s.readOps.Add(1)
	s.readBytes.Add(uint64(n))
}

func (s *counters) wrote(n int64) {
	s.writeOps.Add(1)
	s.writeBytes.Add(uint64(n))
}

func (s *counters) unmapped(n int64) {
	s.unmapOps.Add(1)
	s.unmapBytes.Add(uint64(n))
}
