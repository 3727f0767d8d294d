package iscsi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"testing"
)

// allHeaders has one populated value of every PDU type, with every field set
// to something other than its zero value where the format allows it.
func allHeaders() []Header {
	sn := TargetSN{StatSN: 0x01020304, ExpCmdSN: 0x05060708, MaxCmdSN: 0x090a0b0c}
	return []Header{
		&NopOut{Immediate: true, LUN: 0x0001000000000000, InitiatorTaskTag: 7, TargetTransferTag: ReservedTag, CmdSN: 9, ExpStatSN: 10},
		&SCSICommand{Immediate: true, Final: true, Read: true, Write: true, Attr: AttrOrdered, LUN: 1 << 48,
			InitiatorTaskTag: 0xdeadbeef, ExpectedDataTransferLength: 1 << 20, CmdSN: 0xfffffff0, ExpStatSN: 3,
			CDB: [16]byte{0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 1, 0, 0, 0}},
		&TaskMgmtRequest{Immediate: true, Function: TMFLogicalUnitReset, LUN: 2, InitiatorTaskTag: 5,
			ReferencedTaskTag: 6, CmdSN: 7, ExpStatSN: 8, RefCmdSN: 9, ExpDataSN: 10},
		&LoginRequest{Transit: true, Continue: true, CSG: StageOperational, NSG: StageFullFeature,
			VersionMax: 0, VersionMin: 0, ISID: ISID{0x40, 1, 2, 3, 4, 5}, TSIH: 0x1234, InitiatorTaskTag: 1, CID: 2, CmdSN: 3, ExpStatSN: 4},
		&TextRequest{Immediate: true, Final: true, Continue: true, LUN: 0, InitiatorTaskTag: 3, TargetTransferTag: 4, CmdSN: 5, ExpStatSN: 6},
		&DataOut{Final: true, LUN: 1 << 48, InitiatorTaskTag: 3, TargetTransferTag: 4, ExpStatSN: 5, DataSN: 6, BufferOffset: 7},
		&LogoutRequest{Immediate: true, Reason: LogoutConnection, InitiatorTaskTag: 1, CID: 2, CmdSN: 3, ExpStatSN: 4},
		&SNACKRequest{Type: 2, LUN: 1, InitiatorTaskTag: 2, TargetTransferTag: 3, ExpStatSN: 4, BegRun: 5, RunLength: 6},
		&NopIn{TargetSN: sn, LUN: 1, InitiatorTaskTag: ReservedTag, TargetTransferTag: 77},
		&SCSIResponse{TargetSN: sn, BidiOverflow: true, BidiUnderflow: true, Overflow: true, Underflow: true,
			Response: RespTargetFailure, Status: 2, InitiatorTaskTag: 1, SNACKTag: 2, ExpDataSN: 3, BidiReadResidualCount: 4, ResidualCount: 5},
		&TaskMgmtResponse{TargetSN: sn, Response: TMFTaskNotExist, InitiatorTaskTag: 9},
		&LoginResponse{TargetSN: sn, Transit: true, Continue: true, CSG: StageSecurity, NSG: StageOperational,
			VersionMax: 0, VersionActive: 0, ISID: ISID{0x80, 9, 8, 7, 6, 5}, TSIH: 42, InitiatorTaskTag: 1, Status: LoginTargetMovedTemp},
		&TextResponse{TargetSN: sn, Final: true, Continue: true, LUN: 3, InitiatorTaskTag: 4, TargetTransferTag: 5},
		&DataIn{TargetSN: sn, Final: true, Acknowledge: true, Overflow: true, Underflow: true, HasStatus: true, Status: 0x02,
			LUN: 1 << 48, InitiatorTaskTag: 4, TargetTransferTag: 5, DataSN: 6, BufferOffset: 7, ResidualCount: 8},
		&LogoutResponse{TargetSN: sn, Response: LogoutCIDNotFound, InitiatorTaskTag: 3, Time2Wait: 2, Time2Retain: 20},
		&R2T{TargetSN: sn, LUN: 1, InitiatorTaskTag: 2, TargetTransferTag: 3, R2TSN: 4, BufferOffset: 5, DesiredDataTransferLength: 6},
		&AsyncMessage{TargetSN: sn, LUN: 1, Event: AsyncLogoutRequest, VCode: 1, Parameter1: 2, Parameter2: 3, Parameter3: 4},
		&Reject{TargetSN: sn, Reason: RejectProtocolError, DataSN: 5},
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, want := range allHeaders() {
		t.Run(want.Opcode().String(), func(t *testing.T) {
			var h BHS
			want.Marshal(&h)
			if h.Opcode() != want.Opcode() {
				t.Fatalf("opcode byte = %v", h.Opcode())
			}
			got, err := ParseHeader(&h)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestUnmarshalWrongOpcode(t *testing.T) {
	var h BHS
	(&NopIn{}).Marshal(&h)
	var d DataIn
	if err := d.Unmarshal(&h); err == nil {
		t.Fatal("decoding a NOP-In as Data-In succeeded")
	}
	h[0] = 0x3e
	if _, err := ParseHeader(&h); err == nil {
		t.Fatal("unknown opcode parsed")
	}
}

// A SCSI READ(10) command whose bytes were checked against RFC 7143's layout
// by hand: immediate, F+R, simple attribute, LUN 1, ITT 0x11223344.
func TestSCSICommandWireBytes(t *testing.T) {
	cmd := SCSICommand{Immediate: true, Final: true, Read: true, Attr: AttrSimple, LUN: 0x0001000000000000,
		InitiatorTaskTag: 0x11223344, ExpectedDataTransferLength: 4096, CmdSN: 1, ExpStatSN: 2,
		CDB: [16]byte{0x28, 0, 0, 0, 0, 0x10, 0, 0, 8, 0}}
	var h BHS
	cmd.Marshal(&h)
	h.setLengths(0, 0)
	want := "41c10000000000000001000000000000" +
		"1122334400001000000000010000000" + "2" +
		"28000000001000000800000000000000"
	if got := hex.EncodeToString(h[:]); got != want {
		t.Fatalf("wire bytes\n got %s\nwant %s", got, want)
	}
}

// The CRC32C examples of RFC 3720 Appendix B.4 fix the byte order on the wire.
func TestCRC32CVectors(t *testing.T) {
	inc, dec := make([]byte, 32), make([]byte, 32)
	ones := bytes.Repeat([]byte{0xff}, 32)
	for i := range inc {
		inc[i], dec[i] = byte(i), byte(31-i)
	}
	readPDU, _ := hex.DecodeString("01c00000000000000000000000000000" +
		"14000000000004000000001400000018" +
		"28000000000000000200000000000000")
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{make([]byte, 32), "aa36918a"},
		{ones, "43aba862"},
		{inc, "4e79dd46"},
		{dec, "5cdb3f11"},
		{readPDU, "563a96d9"},
	} {
		var b [4]byte
		putDigest(b[:], crc32c(tc.in))
		if got := hex.EncodeToString(b[:]); got != tc.want {
			t.Errorf("crc32c(%x) = %s, want %s", tc.in[:8], got, tc.want)
		}
	}
}

func framerPair(digests bool) (*Framer, *bytes.Buffer) {
	var buf bytes.Buffer
	f := NewFramer(&buf, &buf, 4096)
	f.HeaderDigest, f.DataDigest = digests, digests
	f.MaxRecvDataSegment = 1 << 20
	return f, &buf
}

func TestFramerRoundTrip(t *testing.T) {
	for _, digests := range []bool{false, true} {
		for _, size := range []int{0, 1, 3, 4, 5, 8191, 65536 + 2} {
			f, _ := framerPair(digests)
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			ahs := []byte{0, 4, 1, 0, 1, 2, 3, 4}
			var out BHS
			(&DataIn{Final: true, InitiatorTaskTag: 9, BufferOffset: 512}).Marshal(&out)
			if err := f.WritePDU(&out, ahs, data); err != nil {
				t.Fatal(err)
			}
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			var in BHS
			gotAHS, err := f.ReadHeader(&in)
			if err != nil {
				t.Fatalf("digests=%v size=%d: %v", digests, size, err)
			}
			if !bytes.Equal(gotAHS, ahs) || in != out {
				t.Fatalf("header or AHS differs")
			}
			got := make([]byte, in.DataSegmentLength())
			if err := f.ReadData(&in, got); err != nil {
				t.Fatalf("digests=%v size=%d: %v", digests, size, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("data differs (digests=%v size=%d)", digests, size)
			}
			if _, err := f.ReadHeader(&in); err != io.EOF {
				t.Fatalf("after the only PDU: %v, want EOF", err)
			}
		}
	}
}

func writeOne(t *testing.T, digests bool, data []byte) []byte {
	t.Helper()
	f, buf := framerPair(digests)
	if err := f.Write(&NopOut{InitiatorTaskTag: 1}, data); err != nil {
		t.Fatal(err)
	}
	f.Flush()
	return buf.Bytes()
}

func TestFramerDetectsCorruption(t *testing.T) {
	wire := writeOne(t, true, []byte("ping data"))
	for _, tc := range []struct {
		name string
		at   int
		want error
	}{
		{"header", 20, ErrHeaderDigest},
		{"header digest", 49, ErrHeaderDigest},
		{"data", 54, ErrDataDigest},
		{"data digest", len(wire) - 1, ErrDataDigest},
	} {
		bad := bytes.Clone(wire)
		bad[tc.at] ^= 0x01
		f := NewFramer(bytes.NewReader(bad), io.Discard, 4096)
		f.HeaderDigest, f.DataDigest = true, true
		var h BHS
		_, _, err := f.ReadPDU(&h)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s corrupted: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestFramerRejectsOversizedSegment(t *testing.T) {
	wire := writeOne(t, false, make([]byte, 9000))
	f := NewFramer(bytes.NewReader(wire), io.Discard, 4096) // login default: 8192
	var h BHS
	_, err := f.ReadHeader(&h)
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want a FormatError", err)
	}
}

func TestFramerTruncated(t *testing.T) {
	wire := writeOne(t, true, []byte("0123456789"))
	for n := 1; n < len(wire); n++ {
		f := NewFramer(bytes.NewReader(wire[:n]), io.Discard, 4096)
		f.HeaderDigest, f.DataDigest = true, true
		var h BHS
		_, _, err := f.ReadPDU(&h)
		if err == nil {
			t.Fatalf("truncated at %d bytes: no error", n)
		}
	}
}

func TestSerialArithmetic(t *testing.T) {
	for _, tc := range []struct {
		a, b uint32
		less bool
	}{
		{1, 2, true}, {2, 1, false}, {5, 5, false},
		{0xffffffff, 0, true}, {0, 0xffffffff, false},
		{0xfffffff0, 0x10, true}, {0x7fffffff, 0x80000000, true},
	} {
		if got := SerialLess(tc.a, tc.b); got != tc.less {
			t.Errorf("SerialLess(%#x, %#x) = %v", tc.a, tc.b, got)
		}
	}
	if !SerialInWindow(0, 0xfffffffe, 2) || SerialInWindow(3, 0xfffffffe, 2) {
		t.Error("window across the wrap")
	}
	// An empty window: MaxCmdSN = ExpCmdSN - 1.
	if SerialInWindow(10, 10, 9) {
		t.Error("empty window admitted a command")
	}
}

func TestLoginStatusText(t *testing.T) {
	if LoginAuthFailed.Class() != ClassInitiatorErr || LoginAuthFailed.String() != "authentication failed" {
		t.Fatal(LoginAuthFailed.String())
	}
	if s := LoginStatus(0x02ff).String(); s != "login status 0x02ff" {
		t.Fatal(s)
	}
}

func BenchmarkDataInHeaderDecode(b *testing.B) {
	var h BHS
	(&DataIn{Final: true, HasStatus: true, InitiatorTaskTag: 5, BufferOffset: 8192}).Marshal(&h)
	b.ReportAllocs()
	var d DataIn
	for b.Loop() {
		if err := d.Unmarshal(&h); err != nil {
			b.Fatal(err)
		}
	}
}
