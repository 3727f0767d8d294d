package iscsi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// refCRC32C is a bit-at-a-time CRC32C (reflected polynomial 0x82F63B78),
// written from the definition, to check the table-driven one against.
func refCRC32C(b []byte) uint32 {
	crc := ^uint32(0)
	for _, x := range b {
		crc ^= uint32(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82f63b78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func TestCRC32CMoreVectors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
	}{
		{"", 0},
		{"a", 0xc1d04330},
		{"abc", 0x364b3fb7},
		{"123456789", 0xe3069283}, // the CRC-32C check value
		{"The quick brown fox jumps over the lazy dog", 0x22620404},
	} {
		if got := crc32c([]byte(tc.in)); got != tc.want {
			t.Errorf("crc32c(%q) = %#08x, want %#08x", tc.in, got, tc.want)
		}
		if got := refCRC32C([]byte(tc.in)); got != tc.want {
			t.Errorf("reference crc32c(%q) = %#08x, want %#08x", tc.in, got, tc.want)
		}
	}
	// The wire order is least significant byte first (RFC 7143 B.4).
	var b [4]byte
	putDigest(b[:], crc32c([]byte("123456789")))
	if hex.EncodeToString(b[:]) != "839206e3" || getDigest(b[:]) != 0xe3069283 {
		t.Fatalf("digest bytes %x", b)
	}
}

func TestCRC32CAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(32, 0x1edc6f41))
	for range 300 {
		buf := make([]byte, r.IntN(2000))
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		want := refCRC32C(buf)
		if got := crc32c(buf); got != want {
			t.Fatalf("crc32c of %d bytes = %#x, want %#x", len(buf), got, want)
		}
		// Parts digest like their concatenation.
		cut := r.IntN(len(buf) + 1)
		if got := crc32c(buf[:cut], buf[cut:]); got != want {
			t.Fatalf("crc32c in two parts (%d+%d) = %#x, want %#x", cut, len(buf)-cut, got, want)
		}
	}
}

func TestPadLen(t *testing.T) {
	for n, want := range []int{0, 3, 2, 1, 0, 3, 2, 1, 0} {
		if got := padLen(n); got != want {
			t.Errorf("padLen(%d) = %d, want %d", n, got, want)
		}
	}
	if padLen(MaxDataSegmentLength) != 1 {
		t.Errorf("padLen(max) = %d", padLen(MaxDataSegmentLength))
	}
}

// The complete wire image of a NOP-Out with both digests, built by hand.
func TestFramerWireImage(t *testing.T) {
	f, buf := framerPair(true)
	hdr := &NopOut{Immediate: true, InitiatorTaskTag: 0x10, TargetTransferTag: ReservedTag, CmdSN: 1, ExpStatSN: 2}
	if err := f.Write(hdr, []byte("abcde")); err != nil {
		t.Fatal(err)
	}
	if f.Buffered() != 48+4+8+4 {
		t.Fatalf("Buffered = %d", f.Buffered())
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	var bhs BHS
	hdr.Marshal(&bhs)
	bhs[7] = 5 // DataSegmentLength: unpadded
	want := append([]byte(nil), bhs[:]...)
	want = binary.LittleEndian.AppendUint32(want, refCRC32C(bhs[:]))
	want = append(want, "abcde\x00\x00\x00"...)
	want = binary.LittleEndian.AppendUint32(want, refCRC32C([]byte("abcde\x00\x00\x00"))) // covers the padding
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("wire\n got %x\nwant %x", buf.Bytes(), want)
	}
}

// Without digests a PDU is its BHS, its data, and zero padding to 4 bytes.
func TestFramerPadding(t *testing.T) {
	for size := range 13 {
		data := bytes.Repeat([]byte{0xa5}, size)
		wire := writeOne(t, false, data)
		pad := padLen(size)
		if len(wire) != BHSSize+size+pad {
			t.Fatalf("%d data bytes: %d on the wire", size, len(wire))
		}
		if !bytes.Equal(wire[BHSSize+size:], make([]byte, pad)) {
			t.Fatalf("%d data bytes: padding %x", size, wire[BHSSize+size:])
		}
		var h BHS
		copy(h[:], wire)
		if h.DataSegmentLength() != size {
			t.Fatalf("DataSegmentLength %d for %d bytes", h.DataSegmentLength(), size)
		}
	}
}

func TestFramerAHS(t *testing.T) {
	for _, digests := range []bool{false, true} {
		f, buf := framerPair(digests)
		ahs := make([]byte, 1020)
		for i := range ahs {
			ahs[i] = byte(i)
		}
		var h BHS
		(&SCSICommand{Final: true, Read: true, InitiatorTaskTag: 3}).Marshal(&h)
		if err := f.WritePDU(&h, ahs, []byte("x")); err != nil {
			t.Fatal(err)
		}
		f.Flush()
		if h[4] != 255 || h.TotalAHSLength() != 1020 {
			t.Fatalf("TotalAHSLength %d", h.TotalAHSLength())
		}
		wire := bytes.Clone(buf.Bytes())
		var in BHS
		gotAHS, data, err := f.ReadPDU(&in)
		if err != nil || !bytes.Equal(gotAHS, ahs) || string(data) != "x" {
			t.Fatalf("digests=%v: %v, %d AHS bytes, data %q", digests, err, len(gotAHS), data)
		}
		if digests {
			// The header digest covers the AHS too.
			wire[BHSSize+500] ^= 0x80
			g := NewFramer(bytes.NewReader(wire), io.Discard, 4096)
			g.HeaderDigest, g.DataDigest = true, true
			if _, _, err := g.ReadPDU(&in); !errors.Is(err, ErrHeaderDigest) {
				t.Fatalf("corrupted AHS: %v", err)
			}
			if !bytes.Equal(wire[BHSSize+1020:BHSSize+1024], binary.LittleEndian.AppendUint32(nil, refCRC32C(append(h[:], ahs...)))) {
				t.Fatal("header digest is not CRC32C of BHS || AHS")
			}
		}
	}
	f, _ := framerPair(false)
	var h BHS
	for _, n := range []int{1, 2, 3, 6, 1021, 1024} {
		if err := f.WritePDU(&h, make([]byte, n), nil); err == nil {
			t.Errorf("AHS of %d bytes accepted", n)
		}
	}
	if f.Buffered() != 0 {
		t.Fatalf("a refused PDU left %d bytes buffered", f.Buffered())
	}
}

func TestFramerRefusesHugeSegment(t *testing.T) {
	f, _ := framerPair(false)
	var h BHS
	if err := f.WritePDU(&h, nil, make([]byte, MaxDataSegmentLength+1)); err == nil {
		t.Fatal("a 16 MiB data segment was accepted")
	}
	if f.Buffered() != 0 {
		t.Fatalf("a refused PDU left %d bytes buffered", f.Buffered())
	}
}

func TestFramerDataSegmentLimit(t *testing.T) {
	for _, tc := range []struct {
		limit, size int
		ok          bool
	}{
		{0, 8192, true}, {0, 8193, false}, // zero: the login default 8192
		{512, 512, true}, {512, 513, false},
		{262144, 262144, true}, {262144, 262145, false},
	} {
		wire := writeOne(t, false, make([]byte, tc.size))
		f := NewFramer(bytes.NewReader(wire), io.Discard, 4096)
		f.MaxRecvDataSegment = tc.limit
		var h BHS
		_, _, err := f.ReadPDU(&h)
		if tc.ok {
			if err != nil {
				t.Errorf("limit %d, %d bytes: %v", tc.limit, tc.size, err)
			}
			continue
		}
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "NOP-Out data segment") ||
			!strings.Contains(err.Error(), "iscsi: malformed PDU:") {
			t.Errorf("limit %d, %d bytes: %v, want a FormatError", tc.limit, tc.size, err)
		}
	}
}

// Digest checks apply separately: header digests only, data digests only.
func TestFramerDigestsIndependently(t *testing.T) {
	for _, tc := range []struct{ hd, dd bool }{{true, false}, {false, true}} {
		var buf bytes.Buffer
		w := NewFramer(nil, &buf, 4096)
		w.HeaderDigest, w.DataDigest = tc.hd, tc.dd
		w.Write(&NopOut{InitiatorTaskTag: 1}, []byte("12345"))
		w.Flush()
		wire := buf.Bytes()
		if want := 48 + 8 + 4; len(wire) != want {
			t.Fatalf("%+v: %d bytes on the wire, want %d", tc, len(wire), want)
		}
		read := func(b []byte) error {
			r := NewFramer(bytes.NewReader(b), io.Discard, 4096)
			r.HeaderDigest, r.DataDigest = tc.hd, tc.dd
			var h BHS
			_, _, err := r.ReadPDU(&h)
			return err
		}
		if err := read(wire); err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		bad := bytes.Clone(wire)
		bad[len(bad)-1] ^= 1 // the last digest byte, or padding... see below
		err := read(bad)
		switch {
		case tc.dd && !errors.Is(err, ErrDataDigest):
			t.Errorf("%+v: corrupted data digest: %v", tc, err)
		case tc.hd && err != nil:
			// Only data-segment padding changed, and nothing covers it.
			t.Errorf("%+v: changed padding: %v", tc, err)
		}
		bad = bytes.Clone(wire)
		bad[30] ^= 1
		err = read(bad)
		if tc.hd && !errors.Is(err, ErrHeaderDigest) || !tc.hd && err != nil {
			t.Errorf("%+v: corrupted header: %v", tc, err)
		}
	}
}

func TestFramerReadDataErrors(t *testing.T) {
	wire := writeOne(t, true, []byte("abcdefgh"))
	f := NewFramer(bytes.NewReader(wire), io.Discard, 4096)
	f.HeaderDigest, f.DataDigest = true, true
	var h BHS
	if _, err := f.ReadHeader(&h); err != nil {
		t.Fatal(err)
	}
	if err := f.ReadData(&h, make([]byte, 7)); err == nil || !strings.Contains(err.Error(), "7 bytes for a 8-byte segment") {
		t.Fatalf("short buffer: %v", err)
	}
	// DiscardData still checks the digest.
	bad := bytes.Clone(wire)
	bad[BHSSize+4+2] ^= 0xff
	f = NewFramer(bytes.NewReader(bad), io.Discard, 4096)
	f.HeaderDigest, f.DataDigest = true, true
	if _, err := f.ReadHeader(&h); err != nil {
		t.Fatal(err)
	}
	if err := f.DiscardData(&h); !errors.Is(err, ErrDataDigest) {
		t.Fatalf("DiscardData of corrupted data: %v", err)
	}
}

// A stream may end cleanly only between PDUs.
func TestFramerEOF(t *testing.T) {
	wire := writeOne(t, true, []byte("0123456789"))
	for _, tc := range []struct {
		n    int
		want error
	}{
		{0, io.EOF},
		{1, io.ErrUnexpectedEOF},
		{47, io.ErrUnexpectedEOF},
		{48, io.ErrUnexpectedEOF}, // header digest missing
		{52, io.ErrUnexpectedEOF}, // data missing
		{62, io.ErrUnexpectedEOF}, // padding missing
		{64, io.ErrUnexpectedEOF}, // data digest missing
		{len(wire) - 1, io.ErrUnexpectedEOF},
	} {
		f := NewFramer(bytes.NewReader(wire[:tc.n]), io.Discard, 4096)
		f.HeaderDigest, f.DataDigest = true, true
		var h BHS
		if _, _, err := f.ReadPDU(&h); err != tc.want {
			t.Errorf("%d of %d bytes: %v, want %v", tc.n, len(wire), err, tc.want)
		}
	}
}

// Many PDUs of mixed sizes back to back, through a small buffer.
func TestFramerStream(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	var buf bytes.Buffer
	w := NewFramer(nil, &buf, 64)
	w.HeaderDigest, w.DataDigest = true, true
	var sent [][]byte
	for i := range 200 {
		data := make([]byte, r.IntN(3000))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		sent = append(sent, data)
		if err := w.Write(&DataIn{DataSN: uint32(i), InitiatorTaskTag: 5}, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f := NewFramer(&buf, io.Discard, 64)
	f.HeaderDigest, f.DataDigest = true, true
	f.MaxRecvDataSegment = 4096
	for i, want := range sent {
		var h BHS
		_, data, err := f.ReadPDU(&h)
		if err != nil {
			t.Fatalf("PDU %d: %v", i, err)
		}
		var d DataIn
		if err := d.Unmarshal(&h); err != nil || d.DataSN != uint32(i) || !bytes.Equal(data, want) {
			t.Fatalf("PDU %d: DataSN %d, %d bytes, %v", i, d.DataSN, len(data), err)
		}
	}
	var h BHS
	if _, err := f.ReadHeader(&h); err != io.EOF {
		t.Fatalf("after the last PDU: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("link down") }

func TestFramerFlushReportsWriteError(t *testing.T) {
	f := NewFramer(nil, failWriter{}, 64)
	if err := f.Write(&NopOut{}, make([]byte, 200)); err != nil {
		t.Fatal(err) // buffered; the error is sticky and shows at Flush
	}
	if err := f.Flush(); err == nil || err.Error() != "link down" {
		t.Fatalf("Flush: %v", err)
	}
}

func TestSerialArithmeticMore(t *testing.T) {
	for _, tc := range []struct {
		a, b         uint32
		less, lessEq bool
	}{
		{0, 0, false, true},
		{0xffffffff, 0xffffffff, false, true},
		{0xffffffff, 0, true, true},
		{0, 0xffffffff, false, false},
		{0xffffff00, 0x000000ff, true, true},
		{0x000000ff, 0xffffff00, false, false},
		{0, 0x7fffffff, true, true}, // the largest distance that still orders
		{0x7fffffff, 0, false, false},
		{0x80000000, 0xffffffff, true, true},
		{100, 99, false, false},
	} {
		if got := SerialLess(tc.a, tc.b); got != tc.less {
			t.Errorf("SerialLess(%#x, %#x) = %v", tc.a, tc.b, got)
		}
		if got := SerialLessEq(tc.a, tc.b); got != tc.lessEq {
			t.Errorf("SerialLessEq(%#x, %#x) = %v", tc.a, tc.b, got)
		}
	}
	// For any distance 1..2^31-1, a < a+d and not a+d < a, across the wrap too.
	r := rand.New(rand.NewPCG(1982, 1))
	for range 100000 {
		a := r.Uint32()
		d := 1 + r.Uint32N(1<<31-1)
		if !SerialLess(a, a+d) || SerialLess(a+d, a) || SerialLessEq(a+d, a) {
			t.Fatalf("a=%#x d=%#x", a, d)
		}
	}
}

func TestSerialInWindowAcrossWrap(t *testing.T) {
	lo, hi := uint32(0xfffffffd), uint32(2) // ExpCmdSN, MaxCmdSN: a window of 6
	for _, tc := range []struct {
		sn uint32
		in bool
	}{
		{0xfffffffc, false}, {0xfffffffd, true}, {0xfffffffe, true}, {0xffffffff, true},
		{0, true}, {1, true}, {2, true}, {3, false}, {0x7fffffff, false}, {0x80000000, false},
	} {
		if got := SerialInWindow(tc.sn, lo, hi); got != tc.in {
			t.Errorf("SerialInWindow(%#x, %#x, %#x) = %v", tc.sn, lo, hi, got)
		}
	}
	// A window of one command.
	if !SerialInWindow(0xffffffff, 0xffffffff, 0xffffffff) || SerialInWindow(0, 0xffffffff, 0xffffffff) {
		t.Error("window of one at the wrap")
	}
	// Empty windows, MaxCmdSN = ExpCmdSN - 1, admit nothing, at the wrap as well.
	for _, exp := range []uint32{0, 1, 0x80000000, 0xffffffff} {
		for _, sn := range []uint32{exp - 1, exp, exp + 1} {
			if SerialInWindow(sn, exp, exp-1) {
				t.Errorf("empty window [%#x, %#x] admits %#x", exp, exp-1, sn)
			}
		}
	}
}
