package disk

import (
	"errors"
	"fmt"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

// cmdError ends a command with a status other than GOOD. Handlers return
// it as an error; Execute turns it into the Response. Most carry CHECK
// CONDITION and fixed-format sense data, which is what this unit reports
// (D_SENSE is zero in the control mode page and cannot be changed).
type cmdError struct {
	status uint8
	sense  scsi.Sense
	// field, when set, points at the offending byte and bit: the sense-key
	// specific field, so an initiator's log says which field was wrong.
	field *fieldPointer
}

type fieldPointer struct {
	inCDB bool // C/D: the CDB, else the parameter list
	byte  uint16
	bit   int8 // -1: no bit pointer
}

func (e *cmdError) Error() string {
	if e.status != scsi.StatusCheckCondition {
		return scsi.StatusName(e.status)
	}
	return e.sense.String()
}

func (e *cmdError) response() target.Response {
	if e.status != scsi.StatusCheckCondition {
		return target.Response{Status: e.status}
	}
	return target.Response{Status: e.status, Sense: e.senseBytes()}
}

func (e *cmdError) senseBytes() []byte {
	b := e.sense.Bytes()
	if f := e.field; f != nil {
		b[15] = 0x80 // SKSV
		if f.inCDB {
			b[15] |= 0x40
		}
		if f.bit >= 0 {
			b[15] |= 0x08 | byte(f.bit)
		}
		b[16], b[17] = byte(f.byte>>8), byte(f.byte)
	}
	return b
}

func checkCondition(key scsi.SenseKey, asc, ascq uint8) *cmdError {
	return &cmdError{status: scsi.StatusCheckCondition, sense: scsi.Sense{Key: key, ASC: asc, ASCQ: ascq}}
}

// The sense this unit reports, named after their ASC/ASCQ.

func errInvalidOpcode() error {
	return checkCondition(scsi.KeyIllegalRequest, 0x20, 0x00)
}

// errInvalidField is INVALID FIELD IN CDB at byte off (bit -1: unknown).
func errInvalidField(off int, bit int) error {
	e := checkCondition(scsi.KeyIllegalRequest, 0x24, 0x00)
	e.field = &fieldPointer{inCDB: true, byte: uint16(off), bit: int8(bit)}
	return e
}

// errInvalidParam is INVALID FIELD IN PARAMETER LIST at byte off.
func errInvalidParam(off int, bit int) error {
	e := checkCondition(scsi.KeyIllegalRequest, 0x26, 0x00)
	e.field = &fieldPointer{byte: uint16(off), bit: int8(bit)}
	return e
}

func errParamListLength() error { return checkCondition(scsi.KeyIllegalRequest, 0x1a, 0x00) }

func errLBAOutOfRange() error { return checkCondition(scsi.KeyIllegalRequest, 0x21, 0x00) }

// errDataOutLength is INVALID FIELD IN INFORMATION UNIT: the Data-Out the
// initiator sent does not match what the CDB asks for. Nothing is written.
func errDataOutLength() error { return checkCondition(scsi.KeyIllegalRequest, 0x0e, 0x03) }

func errWriteProtected() error { return checkCondition(scsi.KeyDataProtect, 0x27, 0x00) }

func errSavingNotSupported() error { return checkCondition(scsi.KeyIllegalRequest, 0x39, 0x00) }

func errInvalidRelease() error { return checkCondition(scsi.KeyIllegalRequest, 0x26, 0x04) }

// errMiscompare reports the offset of the first byte that differed.
func errMiscompare(offset uint64) error {
	e := checkCondition(scsi.KeyMiscompare, 0x1d, 0x00)
	e.sense.Information, e.sense.HasInfo = offset, true
	return e
}

func errReservationConflict() error {
	return &cmdError{status: scsi.StatusReservationConflict}
}

func errTaskAborted() error { return &cmdError{status: scsi.StatusTaskAborted} }

// errMedium turns a backend failure into MEDIUM ERROR: UNRECOVERED READ
// ERROR or WRITE ERROR. The cause stays in the error for the log.
func errMedium(write bool, cause error) error {
	if errors.Is(cause, ErrSpaceAllocationFailed) {
		return errSpaceAllocation(cause)
	}
	asc := uint8(0x11)
	if write {
		asc = 0x0c
	}
	return &mediumError{cmdError: *checkCondition(scsi.KeyMediumError, asc, 0x00), cause: cause}
}

type mediumError struct {
	cmdError
	cause error
}

func (e *mediumError) Error() string { return fmt.Sprintf("%s: %v", e.sense, e.cause) }
func (e *mediumError) Unwrap() error { return e.cause }

func unitAttention(c uaCode) error {
	return checkCondition(scsi.KeyUnitAttention, c.asc, c.ascq)
}
