package iscsi

// TargetSN holds the sequence numbers that every target PDU carries at
// bytes 24..35: the target's StatSN and the command window it grants.
type TargetSN struct {
	StatSN   uint32
	ExpCmdSN uint32
	MaxCmdSN uint32
}

func (s *TargetSN) put(h *BHS) {
	h.put32(24, s.StatSN)
	h.put32(28, s.ExpCmdSN)
	h.put32(32, s.MaxCmdSN)
}

// TargetSN reads the sequence numbers of a target PDU, whatever its type.
func (h *BHS) TargetSN() TargetSN {
	return TargetSN{StatSN: h.u32(24), ExpCmdSN: h.u32(28), MaxCmdSN: h.u32(32)}
}

// NopIn is the target's ping, or its answer to a NOP-Out.
type NopIn struct {
	TargetSN
	LUN               uint64
	InitiatorTaskTag  uint32
	TargetTransferTag uint32
}

func (*NopIn) Opcode() Opcode { return OpNopIn }

func (p *NopIn) Marshal(h *BHS) {
	start(h, OpNopIn, false)
	h[1] = 0x80
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.TargetTransferTag)
	p.TargetSN.put(h)
}

func (p *NopIn) Unmarshal(h *BHS) error {
	*p = NopIn{TargetSN: h.TargetSN(), LUN: h.u64(8), InitiatorTaskTag: h.u32(16), TargetTransferTag: h.u32(20)}
	return checkOpcode(h, OpNopIn)
}

// SCSI Response codes (RFC 7143 section 11.4.3).
const (
	RespCommandCompleted uint8 = 0x00
	RespTargetFailure    uint8 = 0x01
)

// SCSIResponse ends a command. Its data segment holds a 2-byte sense
// length and the sense data when Status is CHECK CONDITION.
type SCSIResponse struct {
	TargetSN
	BidiOverflow          bool // o
	BidiUnderflow         bool // u
	Overflow              bool // O
	Underflow             bool // U
	Response              uint8
	Status                uint8
	InitiatorTaskTag      uint32
	SNACKTag              uint32
	ExpDataSN             uint32
	BidiReadResidualCount uint32
	ResidualCount         uint32
}

func (*SCSIResponse) Opcode() Opcode { return OpSCSIResponse }

func (p *SCSIResponse) Marshal(h *BHS) {
	start(h, OpSCSIResponse, false)
	h[1] = 0x80
	setFlag(&h[1], 0x10, p.BidiOverflow)
	setFlag(&h[1], 0x08, p.BidiUnderflow)
	setFlag(&h[1], 0x04, p.Overflow)
	setFlag(&h[1], 0x02, p.Underflow)
	h[2], h[3] = p.Response, p.Status
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.SNACKTag)
	p.TargetSN.put(h)
	h.put32(36, p.ExpDataSN)
	h.put32(40, p.BidiReadResidualCount)
	h.put32(44, p.ResidualCount)
}

func (p *SCSIResponse) Unmarshal(h *BHS) error {
	*p = SCSIResponse{
		TargetSN: h.TargetSN(), BidiOverflow: h.flag(0x10), BidiUnderflow: h.flag(0x08),
		Overflow: h.flag(0x04), Underflow: h.flag(0x02), Response: h[2], Status: h[3],
		InitiatorTaskTag: h.u32(16), SNACKTag: h.u32(20), ExpDataSN: h.u32(36),
		BidiReadResidualCount: h.u32(40), ResidualCount: h.u32(44),
	}
	return checkOpcode(h, OpSCSIResponse)
}

// Task management responses (RFC 7143 section 11.6.1).
const (
	TMFComplete             uint8 = 0
	TMFTaskNotExist         uint8 = 1
	TMFLUNNotExist          uint8 = 2
	TMFTaskStillAllegiant   uint8 = 3
	TMFReassignNotSupported uint8 = 4
	TMFNotSupported         uint8 = 5
	TMFAuthorizationFailed  uint8 = 6
	TMFRejected             uint8 = 255
)

// TaskMgmtResponse answers a TaskMgmtRequest.
type TaskMgmtResponse struct {
	TargetSN
	Response         uint8
	InitiatorTaskTag uint32
}

func (*TaskMgmtResponse) Opcode() Opcode { return OpTaskMgmtResp }

func (p *TaskMgmtResponse) Marshal(h *BHS) {
	start(h, OpTaskMgmtResp, false)
	h[1] = 0x80
	h[2] = p.Response
	h.put32(16, p.InitiatorTaskTag)
	p.TargetSN.put(h)
}

func (p *TaskMgmtResponse) Unmarshal(h *BHS) error {
	*p = TaskMgmtResponse{TargetSN: h.TargetSN(), Response: h[2], InitiatorTaskTag: h.u32(16)}
	return checkOpcode(h, OpTaskMgmtResp)
}

// LoginResponse answers one LoginRequest.
type LoginResponse struct {
	TargetSN
	Transit          bool
	Continue         bool
	CSG, NSG         Stage
	VersionMax       uint8
	VersionActive    uint8
	ISID             ISID
	TSIH             uint16
	InitiatorTaskTag uint32
	Status           LoginStatus
}

func (*LoginResponse) Opcode() Opcode { return OpLoginResp }

func (p *LoginResponse) Marshal(h *BHS) {
	start(h, OpLoginResp, false)
	h[1] = byte(p.CSG&3)<<2 | byte(p.NSG&3)
	setFlag(&h[1], 0x80, p.Transit)
	setFlag(&h[1], 0x40, p.Continue)
	h[2], h[3] = p.VersionMax, p.VersionActive
	copy(h[8:14], p.ISID[:])
	h.put16(14, p.TSIH)
	h.put32(16, p.InitiatorTaskTag)
	p.TargetSN.put(h)
	h.put16(36, uint16(p.Status))
}

func (p *LoginResponse) Unmarshal(h *BHS) error {
	*p = LoginResponse{
		TargetSN: h.TargetSN(), Transit: h.flag(0x80), Continue: h.flag(0x40),
		CSG: Stage(h[1]>>2) & 3, NSG: Stage(h[1]) & 3, VersionMax: h[2], VersionActive: h[3],
		TSIH: h.u16(14), InitiatorTaskTag: h.u32(16), Status: LoginStatus(h.u16(36)),
	}
	copy(p.ISID[:], h[8:14])
	return checkOpcode(h, OpLoginResp)
}

// TextResponse answers a TextRequest.
type TextResponse struct {
	TargetSN
	Final             bool
	Continue          bool
	LUN               uint64
	InitiatorTaskTag  uint32
	TargetTransferTag uint32
}

func (*TextResponse) Opcode() Opcode { return OpTextResp }

func (p *TextResponse) Marshal(h *BHS) {
	start(h, OpTextResp, false)
	setFlag(&h[1], 0x80, p.Final)
	setFlag(&h[1], 0x40, p.Continue)
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.TargetTransferTag)
	p.TargetSN.put(h)
}

func (p *TextResponse) Unmarshal(h *BHS) error {
	*p = TextResponse{
		TargetSN: h.TargetSN(), Final: h.flag(0x80), Continue: h.flag(0x40), LUN: h.u64(8),
		InitiatorTaskTag: h.u32(16), TargetTransferTag: h.u32(20),
	}
	return checkOpcode(h, OpTextResp)
}

// DataIn carries read data. With HasStatus set it also ends the command,
// and StatSN, Status and the residual flags are valid.
type DataIn struct {
	TargetSN
	Final             bool
	Acknowledge       bool
	Overflow          bool
	Underflow         bool
	HasStatus         bool
	Status            uint8
	LUN               uint64
	InitiatorTaskTag  uint32
	TargetTransferTag uint32
	DataSN            uint32
	BufferOffset      uint32
	ResidualCount     uint32
}

func (*DataIn) Opcode() Opcode { return OpDataIn }

func (p *DataIn) Marshal(h *BHS) {
	start(h, OpDataIn, false)
	setFlag(&h[1], 0x80, p.Final)
	setFlag(&h[1], 0x40, p.Acknowledge)
	setFlag(&h[1], 0x04, p.Overflow)
	setFlag(&h[1], 0x02, p.Underflow)
	setFlag(&h[1], 0x01, p.HasStatus)
	h[3] = p.Status
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.TargetTransferTag)
	p.TargetSN.put(h)
	h.put32(36, p.DataSN)
	h.put32(40, p.BufferOffset)
	h.put32(44, p.ResidualCount)
}

func (p *DataIn) Unmarshal(h *BHS) error {
	*p = DataIn{
		TargetSN: h.TargetSN(), Final: h.flag(0x80), Acknowledge: h.flag(0x40),
		Overflow: h.flag(0x04), Underflow: h.flag(0x02), HasStatus: h.flag(0x01), Status: h[3],
		LUN: h.u64(8), InitiatorTaskTag: h.u32(16), TargetTransferTag: h.u32(20),
		DataSN: h.u32(36), BufferOffset: h.u32(40), ResidualCount: h.u32(44),
	}
	return checkOpcode(h, OpDataIn)
}

// Logout responses (RFC 7143 section 11.15.1).
const (
	LogoutOK             uint8 = 0
	LogoutCIDNotFound    uint8 = 1
	LogoutRecoveryUnsupp uint8 = 2
	LogoutCleanupFailed  uint8 = 3
)

// LogoutResponse answers a LogoutRequest.
type LogoutResponse struct {
	TargetSN
	Response         uint8
	InitiatorTaskTag uint32
	Time2Wait        uint16
	Time2Retain      uint16
}

func (*LogoutResponse) Opcode() Opcode { return OpLogoutResp }

func (p *LogoutResponse) Marshal(h *BHS) {
	start(h, OpLogoutResp, false)
	h[1] = 0x80
	h[2] = p.Response
	h.put32(16, p.InitiatorTaskTag)
	p.TargetSN.put(h)
	h.put16(40, p.Time2Wait)
	h.put16(42, p.Time2Retain)
}

func (p *LogoutResponse) Unmarshal(h *BHS) error {
	*p = LogoutResponse{
		TargetSN: h.TargetSN(), Response: h[2], InitiatorTaskTag: h.u32(16),
		Time2Wait: h.u16(40), Time2Retain: h.u16(42),
	}
	return checkOpcode(h, OpLogoutResp)
}

// R2T asks for a range of write data.
type R2T struct {
	TargetSN
	LUN                       uint64
	InitiatorTaskTag          uint32
	TargetTransferTag         uint32
	R2TSN                     uint32
	BufferOffset              uint32
	DesiredDataTransferLength uint32
}

func (*R2T) Opcode() Opcode { return OpR2T }

func (p *R2T) Marshal(h *BHS) {
	start(h, OpR2T, false)
	h[1] = 0x80
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.TargetTransferTag)
	p.TargetSN.put(h)
	h.put32(36, p.R2TSN)
	h.put32(40, p.BufferOffset)
	h.put32(44, p.DesiredDataTransferLength)
}

func (p *R2T) Unmarshal(h *BHS) error {
	*p = R2T{
		TargetSN: h.TargetSN(), LUN: h.u64(8), InitiatorTaskTag: h.u32(16), TargetTransferTag: h.u32(20),
		R2TSN: h.u32(36), BufferOffset: h.u32(40), DesiredDataTransferLength: h.u32(44),
	}
	return checkOpcode(h, OpR2T)
}

// Async events (RFC 7143 section 11.9.1).
const (
	AsyncSCSIEvent          uint8 = 0
	AsyncLogoutRequest      uint8 = 1
	AsyncConnectionDrop     uint8 = 2
	AsyncSessionDrop        uint8 = 3
	AsyncParameterNegotiate uint8 = 4
	AsyncVendor             uint8 = 255
)

// AsyncMessage is an unsolicited event from the target. For
// AsyncLogoutRequest, Parameter3 is the seconds the initiator has to log out.
type AsyncMessage struct {
	TargetSN
	LUN        uint64
	Event      uint8
	VCode      uint8
	Parameter1 uint16
	Parameter2 uint16
	Parameter3 uint16
}

func (*AsyncMessage) Opcode() Opcode { return OpAsyncMessage }

func (p *AsyncMessage) Marshal(h *BHS) {
	start(h, OpAsyncMessage, false)
	h[1] = 0x80
	h.put64(8, p.LUN)
	h.put32(16, ReservedTag)
	p.TargetSN.put(h)
	h[36], h[37] = p.Event, p.VCode
	h.put16(38, p.Parameter1)
	h.put16(40, p.Parameter2)
	h.put16(42, p.Parameter3)
}

func (p *AsyncMessage) Unmarshal(h *BHS) error {
	*p = AsyncMessage{
		TargetSN: h.TargetSN(), LUN: h.u64(8), Event: h[36], VCode: h[37],
		Parameter1: h.u16(38), Parameter2: h.u16(40), Parameter3: h.u16(42),
	}
	return checkOpcode(h, OpAsyncMessage)
}

// Reject reasons (RFC 7143 section 11.17.1).
const (
	RejectDataDigest       uint8 = 0x02
	RejectSNACK            uint8 = 0x03
	RejectProtocolError    uint8 = 0x04
	RejectNotSupported     uint8 = 0x05
	RejectImmediateCmd     uint8 = 0x06
	RejectTaskInProgress   uint8 = 0x07
	RejectInvalidDataAck   uint8 = 0x08
	RejectInvalidPDUField  uint8 = 0x09
	RejectOutOfResources   uint8 = 0x0a
	RejectWaitingForLogout uint8 = 0x0c
)

// Reject refuses a PDU; its data segment holds the rejected PDU's header.
type Reject struct {
	TargetSN
	Reason uint8
	DataSN uint32
}

func (*Reject) Opcode() Opcode { return OpReject }

func (p *Reject) Marshal(h *BHS) {
	start(h, OpReject, false)
	h[1] = 0x80
	h[2] = p.Reason
	h.put32(16, ReservedTag)
	p.TargetSN.put(h)
	h.put32(36, p.DataSN)
}

func (p *Reject) Unmarshal(h *BHS) error {
	*p = Reject{TargetSN: h.TargetSN(), Reason: h[2], DataSN: h.u32(36)}
	return checkOpcode(h, OpReject)
}
