package iscsi

import (
	"encoding/binary"
	"fmt"
)

// BHSSize is the length of the basic header segment that starts every PDU.
const BHSSize = 48

// Opcode identifies a PDU type (RFC 7143 section 11.1.1).
type Opcode uint8

// Initiator opcodes.
const (
	OpNopOut      Opcode = 0x00
	OpSCSICommand Opcode = 0x01
	OpTaskMgmtReq Opcode = 0x02
	OpLoginReq    Opcode = 0x03
	OpTextReq     Opcode = 0x04
	OpDataOut     Opcode = 0x05
	OpLogoutReq   Opcode = 0x06
	OpSNACKReq    Opcode = 0x10
)

// Target opcodes.
const (
	OpNopIn        Opcode = 0x20
	OpSCSIResponse Opcode = 0x21
	OpTaskMgmtResp Opcode = 0x22
	OpLoginResp    Opcode = 0x23
	OpTextResp     Opcode = 0x24
	OpDataIn       Opcode = 0x25
	OpLogoutResp   Opcode = 0x26
	OpR2T          Opcode = 0x31
	OpAsyncMessage Opcode = 0x32
	OpReject       Opcode = 0x3f
)

var opcodeNames = map[Opcode]string{
	OpNopOut: "NOP-Out", OpSCSICommand: "SCSI Command", OpTaskMgmtReq: "Task Management Request",
	OpLoginReq: "Login Request", OpTextReq: "Text Request", OpDataOut: "SCSI Data-Out",
	OpLogoutReq: "Logout Request", OpSNACKReq: "SNACK Request",
	OpNopIn: "NOP-In", OpSCSIResponse: "SCSI Response", OpTaskMgmtResp: "Task Management Response",
	OpLoginResp: "Login Response", OpTextResp: "Text Response", OpDataIn: "SCSI Data-In",
	OpLogoutResp: "Logout Response", OpR2T: "R2T", OpAsyncMessage: "Async Message", OpReject: "Reject",
}

func (o Opcode) String() string {
	if s, ok := opcodeNames[o]; ok {
		return s
	}
	return fmt.Sprintf("opcode 0x%02x", uint8(o))
}

// Known reports whether o is an opcode RFC 7143 defines.
func (o Opcode) Known() bool { _, ok := opcodeNames[o]; return ok }

// FromInitiator reports whether o is sent by initiators.
func (o Opcode) FromInitiator() bool { return o < 0x20 }

// ReservedTag is the Initiator Task Tag (and Target Transfer Tag) value that
// means "no task".
const ReservedTag uint32 = 0xffffffff

// BHS is a raw basic header segment. Its accessors cover the fields that sit
// at the same place in every PDU; the typed headers (SCSICommand, DataIn, ...)
// read and write the rest. Working on a fixed array lets the hot path decode
// headers without allocating.
type BHS [BHSSize]byte

// Opcode returns the PDU type.
func (h *BHS) Opcode() Opcode { return Opcode(h[0] & 0x3f) }

// Immediate reports the I bit (immediate delivery).
func (h *BHS) Immediate() bool { return h[0]&0x40 != 0 }

// Final reports the F bit, which most PDU types keep in byte 1's top bit.
func (h *BHS) Final() bool { return h[1]&0x80 != 0 }

// TotalAHSLength is the length of the additional header segments in bytes.
func (h *BHS) TotalAHSLength() int { return int(h[4]) * 4 }

// DataSegmentLength is the unpadded length of the data segment.
func (h *BHS) DataSegmentLength() int {
	return int(h[5])<<16 | int(h[6])<<8 | int(h[7])
}

// InitiatorTaskTag is the ITT, at the same place in every PDU.
func (h *BHS) InitiatorTaskTag() uint32 { return h.u32(16) }

func (h *BHS) setLengths(ahsLen, dataLen int) {
	h[4] = byte(ahsLen / 4)
	h[5], h[6], h[7] = byte(dataLen>>16), byte(dataLen>>8), byte(dataLen)
}

func (h *BHS) setOpcode(op Opcode, immediate bool) {
	h[0] = byte(op)
	if immediate {
		h[0] |= 0x40
	}
}

func (h *BHS) u16(off int) uint16      { return binary.BigEndian.Uint16(h[off:]) }
func (h *BHS) u32(off int) uint32      { return binary.BigEndian.Uint32(h[off:]) }
func (h *BHS) u64(off int) uint64      { return binary.BigEndian.Uint64(h[off:]) }
func (h *BHS) put16(off int, v uint16) { binary.BigEndian.PutUint16(h[off:], v) }
func (h *BHS) put32(off int, v uint32) { binary.BigEndian.PutUint32(h[off:], v) }
func (h *BHS) put64(off int, v uint64) { binary.BigEndian.PutUint64(h[off:], v) }
func (h *BHS) flag(b byte) bool        { return h[1]&b != 0 }
func setFlag(b *byte, mask byte, on bool) {
	if on {
		*b |= mask
	}
}
