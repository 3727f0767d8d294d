package scsi

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Captured from tgtd; see testdata/tgtd/README.md.
func readCapture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "tgtd", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(hx(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSense(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Sense
	}{
		{"fixed, tgtd unit attention", "70 00 06 00000000 0a 00000000 29 00 00 000000",
			Sense{Key: KeyUnitAttention, ASC: 0x29, ASCQ: 0x00}},
		{"fixed, tgtd illegal request", "70 00 05 00000000 0a 00000000 24 00 00 000000",
			Sense{Key: KeyIllegalRequest, ASC: 0x24}},
		{"fixed with VALID and information", "f0 00 03 00001234 0a 00000000 11 00 00 000000",
			Sense{Key: KeyMediumError, ASC: 0x11, Information: 0x1234, HasInfo: true}},
		{"fixed, information without VALID is ignored", "70 00 03 00001234 0a 00000000 11 00 00 000000",
			Sense{Key: KeyMediumError, ASC: 0x11}},
		{"fixed deferred", "71 00 04 00000000 0a 00000000 44 00 00 000000",
			Sense{Key: KeyHardwareError, ASC: 0x44, Deferred: true}},
		{"fixed, flag bits above the key", "70 00 e2 00000000 0a 00000000 04 01 00 000000", // FILEMARK, EOM, ILI
			Sense{Key: KeyNotReady, ASC: 0x04, ASCQ: 0x01}},
		{"fixed, exactly 14 bytes", "70 00 02 00000000 06 00000000 3a 00",
			Sense{Key: KeyNotReady, ASC: 0x3a}},
		{"descriptor, no descriptors", "72 05 20 00 000000 00",
			Sense{Key: KeyIllegalRequest, ASC: 0x20}},
		{"descriptor with information", "72 03 11 00 000000 0c  00 0a 80 00 0000000012345678",
			Sense{Key: KeyMediumError, ASC: 0x11, Information: 0x12345678, HasInfo: true}},
		{"descriptor, 64-bit information", "72 03 11 00 000000 0c  00 0a 80 00 0102030405060708",
			Sense{Key: KeyMediumError, ASC: 0x11, Information: 0x0102030405060708, HasInfo: true}},
		{"descriptor deferred", "73 06 29 07 000000 00",
			Sense{Key: KeyUnitAttention, ASC: 0x29, ASCQ: 0x07, Deferred: true}},
		{"descriptor, information after another descriptor", "72 05 24 00 000000 14  02 06 00 00 c0 0001 00  00 0a 80 00 00000000000000ff",
			Sense{Key: KeyIllegalRequest, ASC: 0x24, Information: 0xff, HasInfo: true}},
		{"descriptor, additional length past the buffer", "72 03 11 00 000000 ff  00 0a 80 00 0000000000000010",
			Sense{Key: KeyMediumError, ASC: 0x11, Information: 0x10, HasInfo: true}},
		{"descriptor, truncated information descriptor", "72 03 11 00 000000 0c  00 0a 80 00 00000000",
			Sense{Key: KeyMediumError, ASC: 0x11}},
		{"descriptor, information descriptor too short", "72 03 11 00 000000 06  00 04 80 00 0000",
			Sense{Key: KeyMediumError, ASC: 0x11}},
	} {
		got, err := ParseSense(unhex(t, tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v\nwant %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseSenseCaptured(t *testing.T) {
	ua, err := ParseSense(readCapture(t, "sense-unit-attention.bin"))
	if err != nil || ua.String() != "UNIT ATTENTION: POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (0x29/0x00)" {
		t.Fatalf("%v, %v", ua, err)
	}
	ir, err := ParseSense(readCapture(t, "sense-illegal-request.bin"))
	if err != nil || ir.String() != "ILLEGAL REQUEST: INVALID FIELD IN CDB (0x24/0x00)" {
		t.Fatalf("%v, %v", ir, err)
	}
}

func TestParseSenseErrors(t *testing.T) {
	for _, tc := range []struct {
		in, msg string
	}{
		{"", "malformed sense data"},
		{"70 00 03 00000000 0a 00000000 11", "fixed format needs 14 bytes, got 13"},
		{"70", "fixed format needs 14 bytes, got 1"},
		{"72 03 11 00 0000 00", "descriptor format needs 8 bytes, got 7"},
		{"00 00 00 00 00000000 00000000 00000000 0000", "response code 0x00"},
		{"7f 00 03 00 00000000 00000000 00000000 0000", "response code 0x7f"},
		{"74 00 00 00 00000000", "response code 0x74"},
	} {
		_, err := ParseSense(unhex(t, tc.in))
		if !errors.Is(err, ErrBadSense) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseSense(%s) = %v, want ErrBadSense with %q", tc.in, err, tc.msg)
		}
	}
}

func TestFixedSenseBytes(t *testing.T) {
	got := hex.EncodeToString(FixedSense(KeyNotReady, 0x04, 0x01))
	if want := hx("70 00 02 00000000 0a 00000000 04 01 00 000000"); got != want {
		t.Fatalf("FixedSense\n got %s\nwant %s", got, want)
	}
	withInfo := Sense{Key: KeyMediumError, ASC: 0x11, ASCQ: 0x00, Information: 0xdeadbeef, HasInfo: true}
	got = hex.EncodeToString(withInfo.Bytes())
	if want := hx("f0 00 03 deadbeef 0a 00000000 11 00 00 000000"); got != want {
		t.Fatalf("Sense.Bytes\n got %s\nwant %s", got, want)
	}
	for _, s := range []Sense{
		{Key: KeyUnitAttention, ASC: 0x2a, ASCQ: 0x09},
		{Key: KeyAbortedCommand, ASC: 0x47},
		{Key: KeyMiscompare, ASC: 0x1d, Information: 7, HasInfo: true},
		{Key: KeyDataProtect, ASC: 0x27, Information: 0xffffffff, HasInfo: true},
	} {
		back, err := ParseSense(s.Bytes())
		if err != nil || back != s {
			t.Errorf("ParseSense(%+v.Bytes()) = %+v, %v", s, back, err)
		}
	}
}

func TestSenseText(t *testing.T) {
	names := []string{"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
		"ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
		"COPY ABORTED", "ABORTED COMMAND", "RESERVED", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED"}
	for k, want := range names {
		if got := SenseKey(k).String(); got != want {
			t.Errorf("SenseKey(%d) = %q, want %q", k, got, want)
		}
	}
	for _, tc := range []struct {
		s    Sense
		want string
	}{
		{Sense{Key: KeyMediumError, ASC: 0x11}, "MEDIUM ERROR: UNRECOVERED READ ERROR (0x11/0x00)"},
		{Sense{Key: KeyNotReady, ASC: 0x04, ASCQ: 0x0a}, "NOT READY: LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION (0x04/0x0a)"},
		{Sense{Key: KeyIllegalRequest, ASC: 0x21}, "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (0x21/0x00)"},
		{Sense{Key: KeyUnitAttention, ASC: 0x2a, ASCQ: 0x09}, "UNIT ATTENTION: CAPACITY DATA HAS CHANGED (0x2a/0x09)"},
		{Sense{Key: KeyDataProtect, ASC: 0x27}, "DATA PROTECT: WRITE PROTECTED (0x27/0x00)"},
		{Sense{Key: KeyHardwareError, ASC: 0x44, ASCQ: 0x00}, "HARDWARE ERROR: ADDITIONAL SENSE CODE (0x44/0x00)"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestStatusName(t *testing.T) {
	for s, want := range map[uint8]string{StatusGood: "GOOD", StatusCheckCondition: "CHECK CONDITION",
		StatusConditionMet: "CONDITION MET", StatusBusy: "BUSY", StatusReservationConflict: "RESERVATION CONFLICT",
		StatusTaskSetFull: "TASK SET FULL", StatusACAActive: "ACA ACTIVE", StatusTaskAborted: "TASK ABORTED",
		0x22: "status 0x22"} {
		if got := StatusName(s); got != want {
			t.Errorf("StatusName(%#x) = %q", s, got)
		}
	}
}

func TestNewError(t *testing.T) {
	medium := FixedSense(KeyMediumError, 0x11, 0)
	for _, tc := range []struct {
		status uint8
		sense  []byte
		want   string // "" means nil
	}{
		{StatusGood, nil, ""},
		{StatusConditionMet, nil, ""},
		{StatusGood, medium, ""},
		{StatusCheckCondition, medium, "scsi: CHECK CONDITION: MEDIUM ERROR: UNRECOVERED READ ERROR (0x11/0x00)"},
		{StatusCheckCondition, nil, "scsi: CHECK CONDITION"},
		{StatusCheckCondition, []byte{0x70, 0, 3}, "scsi: CHECK CONDITION"}, // sense too short to use
		{StatusBusy, nil, "scsi: BUSY"},
		{StatusTaskSetFull, nil, "scsi: TASK SET FULL"},
		{StatusReservationConflict, nil, "scsi: RESERVATION CONFLICT"},
		{StatusTaskAborted, nil, "scsi: TASK ABORTED"},
		{0x22, nil, "scsi: status 0x22"},
	} {
		err := NewError(tc.status, tc.sense)
		if tc.want == "" {
			if err != nil {
				t.Errorf("NewError(%#x): %v, want nil", tc.status, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || err.Error() != tc.want || e.Status != tc.status {
			t.Errorf("NewError(%#x, %x) = %v, want %q", tc.status, tc.sense, err, tc.want)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	cc := func(k SenseKey, asc, ascq uint8) error {
		return NewError(StatusCheckCondition, FixedSense(k, asc, ascq))
	}
	for _, tc := range []struct {
		name                 string
		err                  error
		unitAttention, retry bool
	}{
		{"power on reset", cc(KeyUnitAttention, 0x29, 0), true, true},
		{"capacity changed", cc(KeyUnitAttention, 0x2a, 0x09), true, true},
		{"deferred unit attention", NewError(StatusCheckCondition, unhex(t, "71 00 06 00000000 0a 00000000 29 00 00 000000")), true, true},
		{"descriptor unit attention", NewError(StatusCheckCondition, unhex(t, "72 06 3f 0e 000000 00")), true, true},
		{"aborted command", cc(KeyAbortedCommand, 0x47, 0), false, true},
		{"becoming ready", cc(KeyNotReady, 0x04, 0x01), false, true},
		{"ALUA transition", cc(KeyNotReady, 0x04, 0x0a), false, true},
		{"not ready, cause not reportable", cc(KeyNotReady, 0x04, 0x00), false, false},
		{"medium not present", cc(KeyNotReady, 0x3a, 0), false, false},
		{"medium error", cc(KeyMediumError, 0x11, 0), false, false},
		{"illegal request", cc(KeyIllegalRequest, 0x24, 0), false, false},
		{"write protected", cc(KeyDataProtect, 0x27, 0), false, false},
		{"check condition without sense", NewError(StatusCheckCondition, nil), false, false},
		{"busy", NewError(StatusBusy, nil), false, true},
		{"task set full", NewError(StatusTaskSetFull, nil), false, true},
		{"reservation conflict", NewError(StatusReservationConflict, nil), false, false},
		{"task aborted", NewError(StatusTaskAborted, nil), false, false},
		{"wrapped unit attention", fmt.Errorf("read lba 8: %w", cc(KeyUnitAttention, 0x29, 0)), true, true},
		{"wrapped busy", fmt.Errorf("path 2: %w", NewError(StatusBusy, nil)), false, true},
		{"not a SCSI error", errors.New("connection reset"), false, false},
		{"nil", nil, false, false},
	} {
		if got := IsUnitAttention(tc.err); got != tc.unitAttention {
			t.Errorf("%s: IsUnitAttention = %v", tc.name, got)
		}
		if got := IsRetryable(tc.err); got != tc.retry {
			t.Errorf("%s: IsRetryable = %v", tc.name, got)
		}
	}
}
