package iscsi

import "fmt"

// Header is a typed view of one PDU type's basic header segment.
//
// Marshal writes every field except TotalAHSLength and DataSegmentLength,
// which the Framer fills in from the segments it sends. Unmarshal checks the
// opcode and decodes; it never fails on field values, since judging them
// (a CmdSN outside the window, say) is the session's job.
type Header interface {
	Opcode() Opcode
	Marshal(h *BHS)
	Unmarshal(h *BHS) error
}

// ParseHeader decodes a BHS into the typed header for its opcode. It
// allocates; hot paths switch on h.Opcode() and unmarshal into a value.
func ParseHeader(h *BHS) (Header, error) {
	var hdr Header
	switch h.Opcode() {
	case OpNopOut:
		hdr = new(NopOut)
	case OpSCSICommand:
		hdr = new(SCSICommand)
	case OpTaskMgmtReq:
		hdr = new(TaskMgmtRequest)
	case OpLoginReq:
		hdr = new(LoginRequest)
	case OpTextReq:
		hdr = new(TextRequest)
	case OpDataOut:
		hdr = new(DataOut)
	case OpLogoutReq:
		hdr = new(LogoutRequest)
	case OpSNACKReq:
		hdr = new(SNACKRequest)
	case OpNopIn:
		hdr = new(NopIn)
	case OpSCSIResponse:
		hdr = new(SCSIResponse)
	case OpTaskMgmtResp:
		hdr = new(TaskMgmtResponse)
	case OpLoginResp:
		hdr = new(LoginResponse)
	case OpTextResp:
		hdr = new(TextResponse)
	case OpDataIn:
		hdr = new(DataIn)
	case OpLogoutResp:
		hdr = new(LogoutResponse)
	case OpR2T:
		hdr = new(R2T)
	case OpAsyncMessage:
		hdr = new(AsyncMessage)
	case OpReject:
		hdr = new(Reject)
	default:
		return nil, fmt.Errorf("iscsi: unknown %v", h.Opcode())
	}
	return hdr, hdr.Unmarshal(h)
}

func checkOpcode(h *BHS, want Opcode) error {
	if got := h.Opcode(); got != want {
		return fmt.Errorf("iscsi: decoding %v as %v", got, want)
	}
	return nil
}

// start clears h and writes the opcode byte, so that reserved fields go out as zero.
func start(h *BHS, op Opcode, immediate bool) {
	*h = BHS{}
	h.setOpcode(op, immediate)
}

// NopOut is a ping from the initiator, or its answer to a target's NOP-In.
type NopOut struct {
	Immediate         bool
	LUN               uint64
	InitiatorTaskTag  uint32
	TargetTransferTag uint32
	CmdSN             uint32
	ExpStatSN         uint32
}

func (*NopOut) Opcode() Opcode { return OpNopOut }

func (p *NopOut) Marshal(h *BHS) {
	start(h, OpNopOut, p.Immediate)
	h[1] = 0x80
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.TargetTransferTag)
	h.put32(24, p.CmdSN)
	h.put32(28, p.ExpStatSN)
}

func (p *NopOut) Unmarshal(h *BHS) error {
	*p = NopOut{
		Immediate: h.Immediate(), LUN: h.u64(8), InitiatorTaskTag: h.u32(16),
		TargetTransferTag: h.u32(20), CmdSN: h.u32(24), ExpStatSN: h.u32(28),
	}
	return checkOpcode(h, OpNopOut)
}

// TaskAttr is the SCSI task attribute of a command.
type TaskAttr uint8

const (
	AttrUntagged TaskAttr = 0
	AttrSimple   TaskAttr = 1
	AttrOrdered  TaskAttr = 2
	AttrHeadOfQ  TaskAttr = 3
	AttrACA      TaskAttr = 4
)

// SCSICommand carries a CDB (RFC 7143 section 11.3). CDBs longer than 16
// bytes travel in an extended-CDB AHS, which this codec leaves to the caller.
type SCSICommand struct {
	Immediate                  bool
	Final                      bool
	Read                       bool
	Write                      bool
	Attr                       TaskAttr
	LUN                        uint64
	InitiatorTaskTag           uint32
	ExpectedDataTransferLength uint32
	CmdSN                      uint32
	ExpStatSN                  uint32
	CDB                        [16]byte
}

func (*SCSICommand) Opcode() Opcode { return OpSCSICommand }

func (p *SCSICommand) Marshal(h *BHS) {
	start(h, OpSCSICommand, p.Immediate)
	h[1] = byte(p.Attr) & 0x07
	setFlag(&h[1], 0x80, p.Final)
	setFlag(&h[1], 0x40, p.Read)
	setFlag(&h[1], 0x20, p.Write)
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.ExpectedDataTransferLength)
	h.put32(24, p.CmdSN)
	h.put32(28, p.ExpStatSN)
	copy(h[32:48], p.CDB[:])
}

func (p *SCSICommand) Unmarshal(h *BHS) error {
	*p = SCSICommand{
		Immediate: h.Immediate(), Final: h.flag(0x80), Read: h.flag(0x40), Write: h.flag(0x20),
		Attr: TaskAttr(h[1] & 0x07), LUN: h.u64(8), InitiatorTaskTag: h.u32(16),
		ExpectedDataTransferLength: h.u32(20), CmdSN: h.u32(24), ExpStatSN: h.u32(28),
	}
	copy(p.CDB[:], h[32:48])
	return checkOpcode(h, OpSCSICommand)
}

// TMFunction is a task management function code (RFC 7143 section 11.5.1).
type TMFunction uint8

const (
	TMFAbortTask        TMFunction = 1
	TMFAbortTaskSet     TMFunction = 2
	TMFClearACA         TMFunction = 3
	TMFClearTaskSet     TMFunction = 4
	TMFLogicalUnitReset TMFunction = 5
	TMFTargetWarmReset  TMFunction = 6
	TMFTargetColdReset  TMFunction = 7
	TMFTaskReassign     TMFunction = 8
)

// TaskMgmtRequest asks the target to abort tasks or reset a logical unit.
type TaskMgmtRequest struct {
	Immediate         bool
	Function          TMFunction
	LUN               uint64
	InitiatorTaskTag  uint32
	ReferencedTaskTag uint32
	CmdSN             uint32
	ExpStatSN         uint32
	RefCmdSN          uint32
	ExpDataSN         uint32
}

func (*TaskMgmtRequest) Opcode() Opcode { return OpTaskMgmtReq }

func (p *TaskMgmtRequest) Marshal(h *BHS) {
	start(h, OpTaskMgmtReq, p.Immediate)
	h[1] = 0x80 | byte(p.Function)&0x7f
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.ReferencedTaskTag)
	h.put32(24, p.CmdSN)
	h.put32(28, p.ExpStatSN)
	h.put32(32, p.RefCmdSN)
	h.put32(36, p.ExpDataSN)
}

func (p *TaskMgmtRequest) Unmarshal(h *BHS) error {
	*p = TaskMgmtRequest{
		Immediate: h.Immediate(), Function: TMFunction(h[1] & 0x7f), LUN: h.u64(8),
		InitiatorTaskTag: h.u32(16), ReferencedTaskTag: h.u32(20), CmdSN: h.u32(24),
		ExpStatSN: h.u32(28), RefCmdSN: h.u32(32), ExpDataSN: h.u32(36),
	}
	return checkOpcode(h, OpTaskMgmtReq)
}

// Login stages (CSG and NSG, RFC 7143 section 11.12.3).
type Stage uint8

const (
	StageSecurity    Stage = 0
	StageOperational Stage = 1
	StageFullFeature Stage = 3
)

func (s Stage) String() string {
	switch s {
	case StageSecurity:
		return "SecurityNegotiation"
	case StageOperational:
		return "LoginOperationalNegotiation"
	case StageFullFeature:
		return "FullFeaturePhase"
	}
	return fmt.Sprintf("stage %d", uint8(s))
}

// ISID is the initiator part of the session identifier.
type ISID [6]byte

// LoginRequest carries one step of the login phase. It is always immediate.
type LoginRequest struct {
	Transit          bool
	Continue         bool
	CSG, NSG         Stage
	VersionMax       uint8
	VersionMin       uint8
	ISID             ISID
	TSIH             uint16
	InitiatorTaskTag uint32
	CID              uint16
	CmdSN            uint32
	ExpStatSN        uint32
}

func (*LoginRequest) Opcode() Opcode { return OpLoginReq }

func (p *LoginRequest) Marshal(h *BHS) {
	start(h, OpLoginReq, true)
	h[1] = byte(p.CSG&3)<<2 | byte(p.NSG&3)
	setFlag(&h[1], 0x80, p.Transit)
	setFlag(&h[1], 0x40, p.Continue)
	h[2], h[3] = p.VersionMax, p.VersionMin
	copy(h[8:14], p.ISID[:])
	h.put16(14, p.TSIH)
	h.put32(16, p.InitiatorTaskTag)
	h.put16(20, p.CID)
	h.put32(24, p.CmdSN)
	h.put32(28, p.ExpStatSN)
}

func (p *LoginRequest) Unmarshal(h *BHS) error {
	*p = LoginRequest{
		Transit: h.flag(0x80), Continue: h.flag(0x40),
		CSG: Stage(h[1]>>2) & 3, NSG: Stage(h[1]) & 3,
		VersionMax: h[2], VersionMin: h[3], TSIH: h.u16(14), InitiatorTaskTag: h.u32(16),
		CID: h.u16(20), CmdSN: h.u32(24), ExpStatSN: h.u32(28),
	}
	copy(p.ISID[:], h[8:14])
	return checkOpcode(h, OpLoginReq)
}

// TextRequest carries text keys in full feature phase, such as SendTargets.
type TextRequest struct {
	Immediate         bool
	Final             bool
	Continue          bool
	LUN               uint64
	InitiatorTaskTag  uint32
	TargetTransferTag uint32
	CmdSN             uint32
	ExpStatSN         uint32
}

func (*TextRequest) Opcode() Opcode { return OpTextReq }

func (p *TextRequest) Marshal(h *BHS) {
	start(h, OpTextReq, p.Immediate)
	setFlag(&h[1], 0x80, p.Final)
	setFlag(&h[1], 0x40, p.Continue)
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.TargetTransferTag)
	h.put32(24, p.CmdSN)
	h.put32(28, p.ExpStatSN)
}

func (p *TextRequest) Unmarshal(h *BHS) error {
	*p = TextRequest{
		Immediate: h.Immediate(), Final: h.flag(0x80), Continue: h.flag(0x40), LUN: h.u64(8),
		InitiatorTaskTag: h.u32(16), TargetTransferTag: h.u32(20), CmdSN: h.u32(24), ExpStatSN: h.u32(28),
	}
	return checkOpcode(h, OpTextReq)
}

// DataOut carries write data, solicited by an R2T or sent unsolicited.
type DataOut struct {
	Final             bool
	LUN               uint64
	InitiatorTaskTag  uint32
	TargetTransferTag uint32
	ExpStatSN         uint32
	DataSN            uint32
	BufferOffset      uint32
}

func (*DataOut) Opcode() Opcode { return OpDataOut }

func (p *DataOut) Marshal(h *BHS) {
	start(h, OpDataOut, false)
	setFlag(&h[1], 0x80, p.Final)
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.TargetTransferTag)
	h.put32(28, p.ExpStatSN)
	h.put32(36, p.DataSN)
	h.put32(40, p.BufferOffset)
}

func (p *DataOut) Unmarshal(h *BHS) error {
	*p = DataOut{
		Final: h.flag(0x80), LUN: h.u64(8), InitiatorTaskTag: h.u32(16),
		TargetTransferTag: h.u32(20), ExpStatSN: h.u32(28), DataSN: h.u32(36), BufferOffset: h.u32(40),
	}
	return checkOpcode(h, OpDataOut)
}

// LogoutReason says what a logout request closes.
type LogoutReason uint8

const (
	LogoutSession    LogoutReason = 0
	LogoutConnection LogoutReason = 1
	LogoutRecovery   LogoutReason = 2
)

// LogoutRequest closes the session or one connection.
type LogoutRequest struct {
	Immediate        bool
	Reason           LogoutReason
	InitiatorTaskTag uint32
	CID              uint16
	CmdSN            uint32
	ExpStatSN        uint32
}

func (*LogoutRequest) Opcode() Opcode { return OpLogoutReq }

func (p *LogoutRequest) Marshal(h *BHS) {
	start(h, OpLogoutReq, p.Immediate)
	h[1] = 0x80 | byte(p.Reason)&0x7f
	h.put32(16, p.InitiatorTaskTag)
	h.put16(20, p.CID)
	h.put32(24, p.CmdSN)
	h.put32(28, p.ExpStatSN)
}

func (p *LogoutRequest) Unmarshal(h *BHS) error {
	*p = LogoutRequest{
		Immediate: h.Immediate(), Reason: LogoutReason(h[1] & 0x7f), InitiatorTaskTag: h.u32(16),
		CID: h.u16(20), CmdSN: h.u32(24), ExpStatSN: h.u32(28),
	}
	return checkOpcode(h, OpLogoutReq)
}

// SNACKRequest asks for retransmission. hitkit runs ErrorRecoveryLevel 0 and
// never sends one; the type exists so that a target can parse and reject it.
type SNACKRequest struct {
	Type              uint8
	LUN               uint64
	InitiatorTaskTag  uint32
	TargetTransferTag uint32
	ExpStatSN         uint32
	BegRun            uint32
	RunLength         uint32
}

func (*SNACKRequest) Opcode() Opcode { return OpSNACKReq }

func (p *SNACKRequest) Marshal(h *BHS) {
	start(h, OpSNACKReq, false)
	h[1] = 0x80 | p.Type&0x0f
	h.put64(8, p.LUN)
	h.put32(16, p.InitiatorTaskTag)
	h.put32(20, p.TargetTransferTag)
	h.put32(28, p.ExpStatSN)
	h.put32(40, p.BegRun)
	h.put32(44, p.RunLength)
}

func (p *SNACKRequest) Unmarshal(h *BHS) error {
	*p = SNACKRequest{
		Type: h[1] & 0x0f, LUN: h.u64(8), InitiatorTaskTag: h.u32(16), TargetTransferTag: h.u32(20),
		ExpStatSN: h.u32(28), BegRun: h.u32(40), RunLength: h.u32(44),
	}
	return checkOpcode(h, OpSNACKReq)
}
