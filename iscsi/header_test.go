package iscsi

import (
	"encoding/hex"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// randomHeader returns a header of type op with every field random, within
// the bits the wire format gives it.
func randomHeader(r *rand.Rand, op Opcode) Header {
	b := func() bool { return r.IntN(2) == 1 }
	u8 := func() uint8 { return uint8(r.Uint32()) }
	u16 := func() uint16 { return uint16(r.Uint32()) }
	u32 := r.Uint32
	u64 := r.Uint64
	isid := func() (i ISID) {
		for k := range i {
			i[k] = u8()
		}
		return i
	}
	sn := func() TargetSN { return TargetSN{u32(), u32(), u32()} }
	stage := func() Stage { return Stage(r.IntN(4)) }
	switch op {
	case OpNopOut:
		return &NopOut{Immediate: b(), LUN: u64(), InitiatorTaskTag: u32(), TargetTransferTag: u32(), CmdSN: u32(), ExpStatSN: u32()}
	case OpSCSICommand:
		c := &SCSICommand{Immediate: b(), Final: b(), Read: b(), Write: b(), Attr: TaskAttr(r.IntN(8)), LUN: u64(),
			InitiatorTaskTag: u32(), ExpectedDataTransferLength: u32(), CmdSN: u32(), ExpStatSN: u32()}
		for k := range c.CDB {
			c.CDB[k] = u8()
		}
		return c
	case OpTaskMgmtReq:
		return &TaskMgmtRequest{Immediate: b(), Function: TMFunction(r.IntN(128)), LUN: u64(), InitiatorTaskTag: u32(),
			ReferencedTaskTag: u32(), CmdSN: u32(), ExpStatSN: u32(), RefCmdSN: u32(), ExpDataSN: u32()}
	case OpLoginReq:
		return &LoginRequest{Transit: b(), Continue: b(), CSG: stage(), NSG: stage(), VersionMax: u8(), VersionMin: u8(),
			ISID: isid(), TSIH: u16(), InitiatorTaskTag: u32(), CID: u16(), CmdSN: u32(), ExpStatSN: u32()}
	case OpTextReq:
		return &TextRequest{Immediate: b(), Final: b(), Continue: b(), LUN: u64(), InitiatorTaskTag: u32(),
			TargetTransferTag: u32(), CmdSN: u32(), ExpStatSN: u32()}
	case OpDataOut:
		return &DataOut{Final: b(), LUN: u64(), InitiatorTaskTag: u32(), TargetTransferTag: u32(), ExpStatSN: u32(),
			DataSN: u32(), BufferOffset: u32()}
	case OpLogoutReq:
		return &LogoutRequest{Immediate: b(), Reason: LogoutReason(r.IntN(128)), InitiatorTaskTag: u32(), CID: u16(),
			CmdSN: u32(), ExpStatSN: u32()}
	case OpSNACKReq:
		return &SNACKRequest{Type: uint8(r.IntN(16)), LUN: u64(), InitiatorTaskTag: u32(), TargetTransferTag: u32(),
			ExpStatSN: u32(), BegRun: u32(), RunLength: u32()}
	case OpNopIn:
		return &NopIn{TargetSN: sn(), LUN: u64(), InitiatorTaskTag: u32(), TargetTransferTag: u32()}
	case OpSCSIResponse:
		return &SCSIResponse{TargetSN: sn(), BidiOverflow: b(), BidiUnderflow: b(), Overflow: b(), Underflow: b(),
			Response: u8(), Status: u8(), InitiatorTaskTag: u32(), SNACKTag: u32(), ExpDataSN: u32(),
			BidiReadResidualCount: u32(), ResidualCount: u32()}
	case OpTaskMgmtResp:
		return &TaskMgmtResponse{TargetSN: sn(), Response: u8(), InitiatorTaskTag: u32()}
	case OpLoginResp:
		return &LoginResponse{TargetSN: sn(), Transit: b(), Continue: b(), CSG: stage(), NSG: stage(), VersionMax: u8(),
			VersionActive: u8(), ISID: isid(), TSIH: u16(), InitiatorTaskTag: u32(), Status: LoginStatus(u16())}
	case OpTextResp:
		return &TextResponse{TargetSN: sn(), Final: b(), Continue: b(), LUN: u64(), InitiatorTaskTag: u32(), TargetTransferTag: u32()}
	case OpDataIn:
		return &DataIn{TargetSN: sn(), Final: b(), Acknowledge: b(), Overflow: b(), Underflow: b(), HasStatus: b(),
			Status: u8(), LUN: u64(), InitiatorTaskTag: u32(), TargetTransferTag: u32(), DataSN: u32(),
			BufferOffset: u32(), ResidualCount: u32()}
	case OpLogoutResp:
		return &LogoutResponse{TargetSN: sn(), Response: u8(), InitiatorTaskTag: u32(), Time2Wait: u16(), Time2Retain: u16()}
	case OpR2T:
		return &R2T{TargetSN: sn(), LUN: u64(), InitiatorTaskTag: u32(), TargetTransferTag: u32(), R2TSN: u32(),
			BufferOffset: u32(), DesiredDataTransferLength: u32()}
	case OpAsyncMessage:
		return &AsyncMessage{TargetSN: sn(), LUN: u64(), Event: u8(), VCode: u8(), Parameter1: u16(), Parameter2: u16(), Parameter3: u16()}
	case OpReject:
		return &Reject{TargetSN: sn(), Reason: u8(), DataSN: u32()}
	}
	panic(op)
}

var allOpcodes = []Opcode{OpNopOut, OpSCSICommand, OpTaskMgmtReq, OpLoginReq, OpTextReq, OpDataOut, OpLogoutReq,
	OpSNACKReq, OpNopIn, OpSCSIResponse, OpTaskMgmtResp, OpLoginResp, OpTextResp, OpDataIn, OpLogoutResp, OpR2T,
	OpAsyncMessage, OpReject}

// Every field of every PDU type survives Marshal and ParseHeader, for
// random values.
func TestHeaderRandomRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 7143))
	for _, op := range allOpcodes {
		for i := range 2000 {
			want := randomHeader(r, op)
			var h BHS
			want.Marshal(&h)
			if h.Opcode() != op || h.TotalAHSLength() != 0 || h.DataSegmentLength() != 0 {
				t.Fatalf("%v: opcode %v, lengths %d/%d", op, h.Opcode(), h.TotalAHSLength(), h.DataSegmentLength())
			}
			got, err := ParseHeader(&h)
			if err != nil {
				t.Fatalf("%v: %v", op, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%v round %d:\n got %+v\nwant %+v", op, i, got, want)
			}
			// Lengths set by the framer do not disturb any field.
			h.setLengths(4*int(r.IntN(256)), r.IntN(MaxDataSegmentLength+1))
			if again, _ := ParseHeader(&h); !reflect.DeepEqual(again, want) {
				t.Fatalf("%v: lengths changed a field: %+v", op, again)
			}
		}
	}
}

// Marshal starts from a clean header: whatever the buffer held before,
// reserved bytes go out as zero.
func TestHeaderMarshalClears(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	for _, op := range allOpcodes {
		hdr := randomHeader(r, op)
		var clean, dirty BHS
		for i := range dirty {
			dirty[i] = 0xff
		}
		hdr.Marshal(&clean)
		hdr.Marshal(&dirty)
		if clean != dirty {
			t.Errorf("%v: Marshal over 0xff bytes\n got %x\nwant %x", op, dirty, clean)
		}
	}
}

// Decoding random bytes and encoding the result is a fixed point: a second
// decode gives the same value, whatever the reserved bits held.
func TestHeaderDecodeRandomBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, op := range allOpcodes {
		for range 500 {
			var h BHS
			for i := range h {
				h[i] = byte(r.Uint32())
			}
			h[0] = h[0]&0xc0 | byte(op)
			first, err := ParseHeader(&h)
			if err != nil {
				t.Fatalf("%v: %v", op, err)
			}
			var again BHS
			first.Marshal(&again)
			second, err := ParseHeader(&again)
			if err != nil || !reflect.DeepEqual(first, second) {
				t.Fatalf("%v: decode(encode(decode(%x))) = %+v, %v; want %+v", op, h, second, err, first)
			}
		}
	}
}

func TestParseHeaderUnknownOpcodes(t *testing.T) {
	known := map[Opcode]bool{}
	for _, op := range allOpcodes {
		known[op] = true
	}
	for op := Opcode(0); op < 0x40; op++ {
		var h BHS
		h[0] = byte(op)
		_, err := ParseHeader(&h)
		if known[op] != (err == nil) || known[op] != op.Known() {
			t.Errorf("%v: Known %v, ParseHeader err %v", op, op.Known(), err)
		}
		if !known[op] && !strings.Contains(err.Error(), "unknown opcode 0x") {
			t.Errorf("%v: %v", op, err)
		}
		if op.FromInitiator() != (op < 0x20) {
			t.Errorf("%v: FromInitiator %v", op, op.FromInitiator())
		}
	}
	// Each typed header refuses every other opcode.
	for _, op := range allOpcodes {
		var h BHS
		randomHeader(rand.New(rand.NewPCG(5, 6)), op).Marshal(&h)
		for _, other := range allOpcodes {
			if other == op {
				continue
			}
			if err := randomHeader(rand.New(rand.NewPCG(1, 1)), other).Unmarshal(&h); err == nil {
				t.Errorf("%v decoded as %v", op, other)
			}
		}
	}
}

func hx(parts ...string) string { return strings.ReplaceAll(strings.Join(parts, ""), " ", "") }

// Wire bytes laid out by hand from RFC 7143 section 11.
func TestHeaderWireLayouts(t *testing.T) {
	sn := TargetSN{StatSN: 7, ExpCmdSN: 8, MaxCmdSN: 9}
	isid := ISID{0x40, 0x01, 0x37, 0x00, 0x00, 0x01}
	zeros16 := "00000000 00000000 00000000 00000000"
	for _, tc := range []struct {
		hdr  Header
		want string
	}{
		{&NopOut{Immediate: true, InitiatorTaskTag: 1, TargetTransferTag: ReservedTag, CmdSN: 2, ExpStatSN: 3},
			hx("40800000 00000000 0000000000000000 00000001 ffffffff 00000002 00000003", zeros16)},
		{&LoginRequest{Transit: true, CSG: StageOperational, NSG: StageFullFeature, ISID: isid,
			InitiatorTaskTag: 0x01020304, CID: 1, CmdSN: 5, ExpStatSN: 6},
			hx("43870000 00000000 400137000001 0000 01020304 0001 0000 00000005 00000006", zeros16)},
		{&LoginRequest{Continue: true, CSG: StageSecurity, NSG: StageOperational, VersionMax: 0, VersionMin: 0, ISID: isid, TSIH: 0x0203},
			hx("43410000 00000000 400137000001 0203 00000000 0000 0000 00000000 00000000", zeros16)},
		{&LoginResponse{TargetSN: sn, Transit: true, CSG: StageOperational, NSG: StageFullFeature, ISID: isid,
			TSIH: 0x0102, InitiatorTaskTag: 0x0a0b0c0d, Status: LoginTargetMovedTemp},
			hx("23870000 00000000 400137000001 0102 0a0b0c0d 00000000 00000007 00000008 00000009 0101 0000 00000000 00000000")},
		{&TextRequest{Final: true, InitiatorTaskTag: 1, TargetTransferTag: ReservedTag, CmdSN: 1, ExpStatSN: 1},
			hx("04800000 00000000 0000000000000000 00000001 ffffffff 00000001 00000001", zeros16)},
		{&TextResponse{TargetSN: sn, Continue: true, InitiatorTaskTag: 1, TargetTransferTag: 0x55},
			hx("24400000 00000000 0000000000000000 00000001 00000055 00000007 00000008 00000009 00000000 00000000 00000000")},
		{&TaskMgmtRequest{Immediate: true, Function: TMFAbortTask, LUN: 1 << 48, InitiatorTaskTag: 0x11,
			ReferencedTaskTag: 0x22, CmdSN: 3, ExpStatSN: 4, RefCmdSN: 5},
			hx("42810000 00000000 0001000000000000 00000011 00000022 00000003 00000004 00000005 00000000 00000000 00000000")},
		{&TaskMgmtResponse{TargetSN: sn, Response: TMFLUNNotExist, InitiatorTaskTag: 0x11},
			hx("22800200 00000000 0000000000000000 00000011 00000000 00000007 00000008 00000009", "00000000 00000000 00000000")},
		{&DataOut{Final: true, LUN: 1 << 48, InitiatorTaskTag: 0x10, TargetTransferTag: 0x20, ExpStatSN: 3, DataSN: 4, BufferOffset: 0x2000},
			hx("05800000 00000000 0001000000000000 00000010 00000020 00000000 00000003 00000000 00000004 00002000 00000000")},
		{&DataIn{TargetSN: sn, Final: true, HasStatus: true, Underflow: true, InitiatorTaskTag: 7,
			TargetTransferTag: ReservedTag, DataSN: 1, BufferOffset: 0x200, ResidualCount: 512},
			hx("25830000 00000000 0000000000000000 00000007 ffffffff 00000007 00000008 00000009 00000001 00000200 00000200")},
		{&DataIn{Acknowledge: true, Overflow: true, Status: 0x02},
			hx("25440002 00000000 0000000000000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000")},
		{&SCSIResponse{TargetSN: sn, Underflow: true, Response: RespCommandCompleted, Status: 0x02, InitiatorTaskTag: 4, ResidualCount: 0x200},
			hx("21820002 00000000 0000000000000000 00000004 00000000 00000007 00000008 00000009 00000000 00000000 00000200")},
		{&SCSIResponse{BidiOverflow: true, BidiUnderflow: true, Overflow: true, Response: RespTargetFailure,
			SNACKTag: 1, ExpDataSN: 2, BidiReadResidualCount: 3},
			hx("219c0100 00000000 0000000000000000 00000000 00000001 00000000 00000000 00000000 00000002 00000003 00000000")},
		{&R2T{TargetSN: sn, LUN: 1 << 48, InitiatorTaskTag: 0x10, TargetTransferTag: 0x20, R2TSN: 4,
			BufferOffset: 0x1000, DesiredDataTransferLength: 0x2000},
			hx("31800000 00000000 0001000000000000 00000010 00000020 00000007 00000008 00000009 00000004 00001000 00002000")},
		{&AsyncMessage{TargetSN: sn, LUN: 1 << 48, Event: AsyncLogoutRequest, Parameter3: 10},
			hx("32800000 00000000 0001000000000000 ffffffff 00000000 00000007 00000008 00000009 01 00 0000 0000 000a 00000000")},
		{&LogoutRequest{Immediate: true, Reason: LogoutConnection, InitiatorTaskTag: 9, CID: 3, CmdSN: 10, ExpStatSN: 11},
			hx("46810000 00000000 0000000000000000 00000009 0003 0000 0000000a 0000000b", zeros16)},
		{&LogoutResponse{TargetSN: sn, Response: LogoutCleanupFailed, InitiatorTaskTag: 5, Time2Wait: 2, Time2Retain: 20},
			hx("26800300 00000000 0000000000000000 00000005 00000000 00000007 00000008 00000009 00000000 0002 0014 00000000")},
		{&SNACKRequest{Type: 1, LUN: 1 << 48, InitiatorTaskTag: 2, TargetTransferTag: 3, ExpStatSN: 4, BegRun: 5, RunLength: 6},
			hx("10810000 00000000 0001000000000000 00000002 00000003 00000000 00000004 00000000 00000000 00000005 00000006")},
		{&NopIn{TargetSN: sn, InitiatorTaskTag: ReservedTag, TargetTransferTag: 0x77},
			hx("20800000 00000000 0000000000000000 ffffffff 00000077 00000007 00000008 00000009 00000000 00000000 00000000")},
		{&Reject{TargetSN: sn, Reason: RejectInvalidPDUField, DataSN: 3},
			hx("3f800900 00000000 0000000000000000 ffffffff 00000000 00000007 00000008 00000009 00000003 00000000 00000000")},
	} {
		var h BHS
		tc.hdr.Marshal(&h)
		if got := hex.EncodeToString(h[:]); got != tc.want {
			t.Errorf("%v %+v\n got %s\nwant %s", tc.hdr.Opcode(), tc.hdr, got, tc.want)
		}
	}
}

func TestBHSAccessors(t *testing.T) {
	var h BHS
	(&SCSICommand{Immediate: true, Final: true, InitiatorTaskTag: 0xcafef00d}).Marshal(&h)
	h.setLengths(8, 0x123456)
	if !h.Immediate() || !h.Final() || h.InitiatorTaskTag() != 0xcafef00d || h.TotalAHSLength() != 8 ||
		h.DataSegmentLength() != 0x123456 || h[4] != 2 || h[5] != 0x12 || h[6] != 0x34 || h[7] != 0x56 {
		t.Fatalf("accessors on %x", h)
	}
	(&NopIn{TargetSN: TargetSN{1, 2, 3}}).Marshal(&h)
	if h.TargetSN() != (TargetSN{1, 2, 3}) || h.Immediate() {
		t.Fatalf("TargetSN %+v", h.TargetSN())
	}
	for op, name := range map[Opcode]string{OpSCSICommand: "SCSI Command", OpR2T: "R2T", OpReject: "Reject", 0x1f: "opcode 0x1f"} {
		if op.String() != name {
			t.Errorf("%q", op.String())
		}
	}
	for s, name := range map[Stage]string{StageSecurity: "SecurityNegotiation", StageOperational: "LoginOperationalNegotiation",
		StageFullFeature: "FullFeaturePhase", 2: "stage 2"} {
		if s.String() != name {
			t.Errorf("%q", s.String())
		}
	}
}

func TestLoginStatusClasses(t *testing.T) {
	for _, tc := range []struct {
		s             LoginStatus
		class, detail uint8
		text          string
	}{
		{LoginSuccess, ClassSuccess, 0, "success"},
		{LoginTargetMovedTemp, ClassRedirection, 1, "target moved temporarily"},
		{LoginTargetMovedPerm, ClassRedirection, 2, "target moved permanently"},
		{LoginNotFound, ClassInitiatorErr, 3, "target not found"},
		{LoginInvalidDuringLogin, ClassInitiatorErr, 0x0b, "invalid request during login"},
		{LoginServiceUnavailable, ClassTargetErr, 1, "service unavailable"},
		{LoginOutOfResources, ClassTargetErr, 2, "target out of resources"},
		{0x0303, ClassTargetErr, 3, "login status 0x0303"},
	} {
		if tc.s.Class() != tc.class || tc.s.Detail() != tc.detail || tc.s.String() != tc.text {
			t.Errorf("%#04x: class %d detail %d %q", uint16(tc.s), tc.s.Class(), tc.s.Detail(), tc.s.String())
		}
	}
}
