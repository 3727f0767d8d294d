package scsi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Status codes (SAM-5).
const (
	StatusGood                = 0x00
	StatusCheckCondition      = 0x02
	StatusConditionMet        = 0x04
	StatusBusy                = 0x08
	StatusReservationConflict = 0x18
	StatusTaskSetFull         = 0x28
	StatusACAActive           = 0x30
	StatusTaskAborted         = 0x40
)

// StatusName names a status code.
func StatusName(s uint8) string {
	switch s {
	case StatusGood:
		return "GOOD"
	case StatusCheckCondition:
		return "CHECK CONDITION"
	case StatusConditionMet:
		return "CONDITION MET"
	case StatusBusy:
		return "BUSY"
	case StatusReservationConflict:
		return "RESERVATION CONFLICT"
	case StatusTaskSetFull:
		return "TASK SET FULL"
	case StatusACAActive:
		return "ACA ACTIVE"
	case StatusTaskAborted:
		return "TASK ABORTED"
	}
	return fmt.Sprintf("status 0x%02x", s)
}

// SenseKey is the sense key of sense data.
type SenseKey uint8

const (
	KeyNoSense        SenseKey = 0x0
	KeyRecoveredError SenseKey = 0x1
	KeyNotReady       SenseKey = 0x2
	KeyMediumError    SenseKey = 0x3
	KeyHardwareError  SenseKey = 0x4
	KeyIllegalRequest SenseKey = 0x5
	KeyUnitAttention  SenseKey = 0x6
	KeyDataProtect    SenseKey = 0x7
	KeyBlankCheck     SenseKey = 0x8
	KeyAbortedCommand SenseKey = 0xb
	KeyMiscompare     SenseKey = 0xe
)

var senseKeyNames = [16]string{
	"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
	"ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
	"COPY ABORTED", "ABORTED COMMAND", "RESERVED", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED",
}

func (k SenseKey) String() string { return senseKeyNames[k&0xf] }

// Sense is decoded sense data, fixed or descriptor format.
type Sense struct {
	Key         SenseKey
	ASC, ASCQ   uint8
	Deferred    bool
	Information uint64
	HasInfo     bool
}

// ASC/ASCQ pairs hitkit names.
var ascText = map[uint16]string{
	0x0000: "NO ADDITIONAL SENSE INFORMATION",
	0x0400: "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
	0x0401: "LOGICAL UNIT IS IN PROCESS OF BECOMING READY",
	0x0402: "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
	0x040a: "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION",
	0x0c00: "WRITE ERROR",
	0x1100: "UNRECOVERED READ ERROR",
	0x1a00: "PARAMETER LIST LENGTH ERROR",
	0x2000: "INVALID COMMAND OPERATION CODE",
	0x2100: "LOGICAL BLOCK ADDRESS OUT OF RANGE",
	0x2400: "INVALID FIELD IN CDB",
	0x2500: "LOGICAL UNIT NOT SUPPORTED",
	0x2600: "INVALID FIELD IN PARAMETER LIST",
	0x2700: "WRITE PROTECTED",
	0x2800: "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED",
	0x2900: "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
	0x2901: "POWER ON OCCURRED",
	0x2902: "SCSI BUS RESET OCCURRED",
	0x2903: "BUS DEVICE RESET FUNCTION OCCURRED",
	0x2907: "I_T NEXUS LOSS OCCURRED",
	0x2a01: "MODE PARAMETERS CHANGED",
	0x2a03: "RESERVATIONS PREEMPTED",
	0x2a06: "ASYMMETRIC ACCESS STATE CHANGED",
	0x2a09: "CAPACITY DATA HAS CHANGED",
	0x3a00: "MEDIUM NOT PRESENT",
	0x3f0e: "REPORTED LUNS DATA HAS CHANGED",
	0x4700: "SCSI PARITY ERROR",
	0x4b00: "DATA PHASE ERROR",
	0x5500: "SYSTEM RESOURCE FAILURE",
}

// Description names the ASC/ASCQ.
func (s Sense) Description() string {
	if t, ok := ascText[uint16(s.ASC)<<8|uint16(s.ASCQ)]; ok {
		return t
	}
	return "ADDITIONAL SENSE CODE"
}

func (s Sense) String() string {
	return fmt.Sprintf("%v: %s (0x%02x/0x%02x)", s.Key, s.Description(), s.ASC, s.ASCQ)
}

// ErrBadSense is sense data too short or of an unknown format.
var ErrBadSense = errors.New("scsi: malformed sense data")

// ParseSense decodes fixed (0x70, 0x71) or descriptor (0x72, 0x73) sense data.
func ParseSense(b []byte) (Sense, error) {
	if len(b) < 1 {
		return Sense{}, ErrBadSense
	}
	code := b[0] & 0x7f
	switch code {
	case 0x70, 0x71:
		if len(b) < 14 {
			return Sense{}, fmt.Errorf("%w: fixed format needs 14 bytes, got %d", ErrBadSense, len(b))
		}
		s := Sense{Key: SenseKey(b[2] & 0x0f), ASC: b[12], ASCQ: b[13], Deferred: code == 0x71}
		if b[0]&0x80 != 0 {
			s.Information, s.HasInfo = uint64(binary.BigEndian.Uint32(b[3:])), true
		}
		return s, nil
	case 0x72, 0x73:
		if len(b) < 8 {
			return Sense{}, fmt.Errorf("%w: descriptor format needs 8 bytes, got %d", ErrBadSense, len(b))
		}
		s := Sense{Key: SenseKey(b[1] & 0x0f), ASC: b[2], ASCQ: b[3], Deferred: code == 0x73}
		s.parseDescriptors(b[8:min(len(b), 8+int(b[7]))])
		return s, nil
	}
	return Sense{}, fmt.Errorf("%w: response code 0x%02x", ErrBadSense, code)
}

func (s *Sense) parseDescriptors(d []byte) {
	for len(d) >= 2 {
		n := 2 + int(d[1])
		if n > len(d) {
			return
		}
		if d[0] == 0x00 && n >= 12 { // information descriptor
			s.Information, s.HasInfo = binary.BigEndian.Uint64(d[4:]), true
		}
		d = d[n:]
	}
}

// FixedSense builds fixed-format sense data, as a target returns it.
func FixedSense(key SenseKey, asc, ascq uint8) []byte {
	b := make([]byte, 18)
	b[0] = 0x70
	b[2] = byte(key)
	b[7] = 10
	b[12], b[13] = asc, ascq
	return b
}

// Bytes builds fixed-format sense data for s.
func (s Sense) Bytes() []byte {
	b := FixedSense(s.Key, s.ASC, s.ASCQ)
	if s.HasInfo {
		b[0] |= 0x80
		binary.BigEndian.PutUint32(b[3:], uint32(s.Information))
	}
	return b
}

// Error is a command that ended with a status other than GOOD. Sense is
// set with CHECK CONDITION.
type Error struct {
	Status   uint8
	Sense    Sense
	HasSense bool
}

func (e *Error) Error() string {
	if e.HasSense {
		return "scsi: " + StatusName(e.Status) + ": " + e.Sense.String()
	}
	return "scsi: " + StatusName(e.Status)
}

// NewError turns a status and its sense bytes into an Error, or nil for GOOD.
func NewError(status uint8, sense []byte) error {
	if status == StatusGood || status == StatusConditionMet {
		return nil
	}
	e := &Error{Status: status}
	if s, err := ParseSense(sense); err == nil {
		e.Sense, e.HasSense = s, true
	}
	return e
}

// IsUnitAttention reports a CHECK CONDITION with UNIT ATTENTION: the unit
// tells us something changed, and the command may simply be retried.
func IsUnitAttention(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.HasSense && e.Sense.Key == KeyUnitAttention
}

// IsRetryable reports errors that go away on their own: unit attention,
// busy, task set full, and a unit becoming ready.
func IsRetryable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Status {
	case StatusBusy, StatusTaskSetFull:
		return true
	case StatusCheckCondition:
		k := e.Sense.Key
		return k == KeyUnitAttention || k == KeyAbortedCommand ||
			k == KeyNotReady && e.Sense.ASC == 0x04 && (e.Sense.ASCQ == 0x01 || e.Sense.ASCQ == 0x0a)
	}
	return false
}

func errShort(what string, got, want int) error {
	return fmt.Errorf("scsi: %s data is %d bytes, need %d", what, got, want)
}
