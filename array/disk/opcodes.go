package disk

import (
	"encoding/binary"
	"math/bits"

	"github.com/hitkit/hitkit/scsi"
)

// Opcodes and service actions the scsi package does not name.
const (
	opRead6              = 0x08
	opWrite6             = 0x0a
	opStartStopUnit      = 0x1b
	opWriteAndVerify10   = 0x2e
	opPrefetch10         = 0x34
	opCompareAndWrite    = 0x89
	opWriteAndVerify16   = 0x8e
	opPrefetch16         = 0x90
	opWriteAndVerify12   = 0xae
	opVerify12           = 0xaf
	saReportSupportedTMF = 0x0d
)

// access is how a command touches the medium, for reservations.
type access uint8

const (
	accessAlways access = iota // allowed whatever the reservation
	accessRead
	accessWrite
)

// command is one operation code (and service action) this unit runs.
type command struct {
	name   string
	sa     uint8 // with hasSA
	hasSA  bool
	access access
	// usage is the CDB usage data REPORT SUPPORTED OPERATION CODES
	// returns: the opcode, then a mask of the bits the unit looks at. Its
	// length is the CDB length, and a CDB with any other bit set is
	// refused with INVALID FIELD IN CDB, pointing at the bit. That is how
	// reserved bits, RDPROTECT and friends (no protection information),
	// NACA (no ACA) and the like are refused in one place.
	usage []byte
	run   func(*Disk, *call) ([]byte, error)
}

// checkCDB refuses a CDB that is short or sets a bit outside the usage
// mask. The service action bits are checked by the lookup.
func (cmd *command) checkCDB(cdb []byte) error {
	if len(cdb) < len(cmd.usage) {
		return errInvalidField(0, -1)
	}
	for i := 1; i < len(cmd.usage); i++ {
		mask := cmd.usage[i]
		if i == 1 && cmd.hasSA {
			mask |= 0x1f
		}
		if bad := cdb[i] &^ mask; bad != 0 {
			return errInvalidField(i, bits.Len8(bad)-1)
		}
	}
	return nil
}

func (d *Disk) testUnitReady(*call) ([]byte, error) { return nil, nil }

// startStopUnit accepts any valid request and changes nothing: like the
// arrays it imitates, the unit stays ready for every other initiator.
func (d *Disk) startStopUnit(c *call) ([]byte, error) {
	switch c.cdb[4] >> 4 { // POWER CONDITION
	case 0x0, 0x1, 0x2, 0x3, 0x5, 0x7, 0xa, 0xb:
		return nil, nil
	}
	return nil, errInvalidField(4, 7)
}

// The commands, in the order REPORT SUPPORTED OPERATION CODES lists them.
// The last usage byte is CONTROL: 0, so NACA and the vendor bits are
// refused.
func allCommands() []command {
	read, write := (*Disk).read, (*Disk).write
	return []command{
		{name: "TEST UNIT READY", access: accessAlways, run: (*Disk).testUnitReady,
			usage: []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}},
		{name: "REQUEST SENSE", access: accessAlways, run: (*Disk).requestSense,
			usage: []byte{scsi.OpRequestSense, 0, 0, 0, 0xff, 0}},
		{name: "READ (6)", access: accessRead, run: read,
			usage: []byte{opRead6, 0x1f, 0xff, 0xff, 0xff, 0}},
		{name: "WRITE (6)", access: accessWrite, run: write,
			usage: []byte{opWrite6, 0x1f, 0xff, 0xff, 0xff, 0}},
		{name: "INQUIRY", access: accessAlways, run: (*Disk).inquiry,
			usage: []byte{scsi.OpInquiry, 0x01, 0xff, 0xff, 0xff, 0}},
		{name: "MODE SELECT (6)", access: accessWrite, run: (*Disk).modeSelect,
			usage: []byte{scsi.OpModeSelect6, 0x11, 0, 0, 0xff, 0}},
		{name: "MODE SENSE (6)", access: accessRead, run: (*Disk).modeSense,
			usage: []byte{scsi.OpModeSense6, 0x08, 0xff, 0xff, 0xff, 0}},
		{name: "START STOP UNIT", access: accessWrite, run: (*Disk).startStopUnit,
			usage: []byte{opStartStopUnit, 0x01, 0, 0x0f, 0xf7, 0}},
		{name: "READ CAPACITY (10)", access: accessAlways, run: (*Disk).readCapacity10,
			usage: []byte{scsi.OpReadCapacity10, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0}},
		{name: "READ (10)", access: accessRead, run: read,
			usage: []byte{scsi.OpRead10, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0}},
		{name: "WRITE (10)", access: accessWrite, run: write,
			usage: []byte{scsi.OpWrite10, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0}},
		{name: "WRITE AND VERIFY (10)", access: accessWrite, run: (*Disk).writeAndVerify,
			usage: []byte{opWriteAndVerify10, 0x12, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0}},
		{name: "VERIFY (10)", access: accessRead, run: (*Disk).verify,
			usage: []byte{scsi.OpVerify10, 0x16, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0}},
		{name: "PRE-FETCH (10)", access: accessRead, run: (*Disk).prefetch,
			usage: []byte{opPrefetch10, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0}},
		{name: "SYNCHRONIZE CACHE (10)", access: accessWrite, run: (*Disk).synchronizeCache,
			usage: []byte{scsi.OpSynchronizeCache10, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0}},
		{name: "WRITE SAME (10)", access: accessWrite, run: (*Disk).writeSame,
			usage: []byte{scsi.OpWriteSame10, 0x08, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0}},
		{name: "UNMAP", access: accessWrite, run: (*Disk).unmap,
			usage: []byte{scsi.OpUnmap, 0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0}},
		{name: "MODE SELECT (10)", access: accessWrite, run: (*Disk).modeSelect,
			usage: []byte{opModeSelect10, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{name: "MODE SENSE (10)", access: accessRead, run: (*Disk).modeSense,
			usage: []byte{scsi.OpModeSense10, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0}},
		{name: "PERSISTENT RESERVE IN", hasSA: true, sa: prInReadKeys, access: accessAlways, run: (*Disk).persistentReserveIn,
			usage: []byte{scsi.OpPersistentReserveIn, prInReadKeys, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{name: "PERSISTENT RESERVE IN", hasSA: true, sa: prInReadReservation, access: accessAlways, run: (*Disk).persistentReserveIn,
			usage: []byte{scsi.OpPersistentReserveIn, prInReadReservation, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{name: "PERSISTENT RESERVE IN", hasSA: true, sa: prInReportCapabilities, access: accessAlways, run: (*Disk).persistentReserveIn,
			usage: []byte{scsi.OpPersistentReserveIn, prInReportCapabilities, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		{name: "PERSISTENT RESERVE IN", hasSA: true, sa: prInReadFullStatus, access: accessAlways, run: (*Disk).persistentReserveIn,
			usage: []byte{scsi.OpPersistentReserveIn, prInReadFullStatus, 0, 0, 0, 0, 0, 0xff, 0xff, 0}},
		prOut(prOutRegister), prOut(prOutReserve), prOut(prOutRelease), prOut(prOutClear),
		prOut(prOutPreempt), prOut(prOutPreemptAndAbort), prOut(prOutRegisterAndIgnore),
		{name: "READ (16)", access: accessRead, run: read,
			usage: []byte{scsi.OpRead16, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "COMPARE AND WRITE", access: accessWrite, run: (*Disk).compareAndWrite,
			usage: []byte{opCompareAndWrite, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x1f, 0}},
		{name: "WRITE (16)", access: accessWrite, run: write,
			usage: []byte{scsi.OpWrite16, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "WRITE AND VERIFY (16)", access: accessWrite, run: (*Disk).writeAndVerify,
			usage: []byte{opWriteAndVerify16, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "VERIFY (16)", access: accessRead, run: (*Disk).verify,
			usage: []byte{scsi.OpVerify16, 0x16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "PRE-FETCH (16)", access: accessRead, run: (*Disk).prefetch,
			usage: []byte{opPrefetch16, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "SYNCHRONIZE CACHE (16)", access: accessWrite, run: (*Disk).synchronizeCache,
			usage: []byte{scsi.OpSynchronizeCache16, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "WRITE SAME (16)", access: accessWrite, run: (*Disk).writeSame,
			usage: []byte{scsi.OpWriteSame16, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "READ CAPACITY (16)", hasSA: true, sa: scsi.SAReadCapacity16, access: accessAlways, run: (*Disk).readCapacity16,
			usage: []byte{scsi.OpServiceActionIn16, scsi.SAReadCapacity16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}},
		{name: "GET LBA STATUS", hasSA: true, sa: scsi.SAGetLBAStatus, access: accessRead, run: (*Disk).getLBAStatus,
			usage: []byte{scsi.OpServiceActionIn16, scsi.SAGetLBAStatus, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}},
		{name: "REPORT SUPPORTED OPERATION CODES", hasSA: true, sa: scsi.SAReportSupportedOpcodes, access: accessAlways, run: (*Disk).reportOpcodes,
			usage: []byte{scsi.OpMaintenanceIn, scsi.SAReportSupportedOpcodes, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}},
		{name: "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS", hasSA: true, sa: saReportSupportedTMF, access: accessAlways, run: (*Disk).reportTMFs,
			usage: []byte{scsi.OpMaintenanceIn, saReportSupportedTMF, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}},
		{name: "READ (12)", access: accessRead, run: read,
			usage: []byte{scsi.OpRead12, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "WRITE (12)", access: accessWrite, run: write,
			usage: []byte{scsi.OpWrite12, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "WRITE AND VERIFY (12)", access: accessWrite, run: (*Disk).writeAndVerify,
			usage: []byte{opWriteAndVerify12, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
		{name: "VERIFY (12)", access: accessRead, run: (*Disk).verify,
			usage: []byte{opVerify12, 0x16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0}},
	}
}

func prOut(sa uint8) command {
	return command{name: "PERSISTENT RESERVE OUT", hasSA: true, sa: sa, access: accessAlways, run: (*Disk).persistentReserveOut,
		usage: []byte{scsi.OpPersistentReserveOut, sa, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0}}
}

// commandSet is the commands of one disk: UNMAP only when it is thin.
type commandSet struct {
	list  []*command
	byOp  [256]*command // opcodes without service actions
	hasSA [256]bool
	bySA  map[uint16]*command // opcode<<8 | service action
}

func newCommandSet(o Options) *commandSet {
	s := &commandSet{bySA: map[uint16]*command{}}
	for _, c := range allCommands() {
		if c.usage[0] == scsi.OpUnmap && !o.ThinProvisioning {
			continue
		}
		cmd := &c
		s.list = append(s.list, cmd)
		op := cmd.usage[0]
		if cmd.hasSA {
			s.hasSA[op] = true
			s.bySA[uint16(op)<<8|uint16(cmd.sa)] = cmd
		} else {
			s.byOp[op] = cmd
		}
	}
	return s
}

// lookup finds the command of a CDB: an unknown opcode is INVALID COMMAND
// OPERATION CODE, an unknown service action of a known one INVALID FIELD
// IN CDB.
func (s *commandSet) lookup(cdb []byte) (*command, error) {
	op := cdb[0]
	if !s.hasSA[op] {
		if c := s.byOp[op]; c != nil {
			return c, nil
		}
		return nil, errInvalidOpcode()
	}
	if len(cdb) < 2 {
		return nil, errInvalidField(1, -1)
	}
	if c := s.bySA[uint16(op)<<8|uint16(cdb[1]&0x1f)]; c != nil {
		return c, nil
	}
	return nil, errInvalidField(1, 4)
}

// Reporting options of REPORT SUPPORTED OPERATION CODES.
const (
	rsocAll           = 0
	rsocOpcode        = 1 // one opcode without service actions
	rsocServiceAction = 2 // one opcode and service action
	rsocEither        = 3 // one opcode, with its service action if it has them
)

// reportOpcodes is REPORT SUPPORTED OPERATION CODES. With RCTD each
// descriptor carries a command timeouts descriptor whose timeouts are
// zero: not specified.
func (d *Disk) reportOpcodes(c *call) ([]byte, error) {
	rctd, options := c.cdb[2]&0x80 != 0, c.cdb[2]&0x07
	op, sa := c.cdb[3], binary.BigEndian.Uint16(c.cdb[4:])
	alloc := int(binary.BigEndian.Uint32(c.cdb[6:]))
	s := d.commands
	if options == rsocEither {
		options = rsocOpcode
		if s.hasSA[op] {
			options = rsocServiceAction
		}
	}
	var out []byte
	switch options {
	case rsocAll:
		out = s.allDescriptors(rctd)
	case rsocOpcode:
		if s.hasSA[op] {
			return nil, errInvalidField(2, 2)
		}
		out = oneCommand(s.byOp[op], rctd)
	case rsocServiceAction:
		if !s.hasSA[op] {
			return nil, errInvalidField(2, 2)
		}
		var cmd *command
		if sa <= 0x1f {
			cmd = s.bySA[uint16(op)<<8|sa]
		}
		out = oneCommand(cmd, rctd)
	default:
		return nil, errInvalidField(2, 2)
	}
	return truncate(out, alloc), nil
}

func (s *commandSet) allDescriptors(rctd bool) []byte {
	out := make([]byte, 4)
	for _, cmd := range s.list {
		flags := byte(0)
		if cmd.hasSA {
			flags |= 0x01 // SERVACTV
		}
		if rctd {
			flags |= 0x02 // CTDP
		}
		out = append(out, cmd.usage[0], 0, 0, cmd.sa, 0, flags, 0, byte(len(cmd.usage)))
		if rctd {
			out = append(out, timeoutsDescriptor()...)
		}
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// oneCommand is the one-command format; a nil cmd is "not supported".
func oneCommand(cmd *command, rctd bool) []byte {
	if cmd == nil {
		return []byte{0, 0x01, 0, 0}
	}
	out := []byte{0, 0x03, 0, byte(len(cmd.usage))} // SUPPORT 011b: as the standard says
	out = append(out, cmd.usage...)
	if rctd {
		out[1] |= 0x80 // CTDP
		out = append(out, timeoutsDescriptor()...)
	}
	return out
}

func timeoutsDescriptor() []byte { return []byte{0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} }

// reportTMFs is REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS: what the iSCSI
// target engine offers a unit: ABORT TASK, ABORT TASK SET, CLEAR TASK SET
// and LOGICAL UNIT RESET.
func (d *Disk) reportTMFs(c *call) ([]byte, error) {
	out := []byte{0x80 | 0x40 | 0x10 | 0x08, 0, 0, 0} // ATS, ATSS, CTSS, LURS
	if c.cdb[2]&0x80 != 0 {                           // REPD: the 16-byte form
		out = append(out, make([]byte, 12)...)
		out[3] = 0x0c
	}
	return truncate(out, int(binary.BigEndian.Uint32(c.cdb[6:]))), nil
}
