package iscsi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxRecvDataSegmentLength is what each side may send before the
// peer declares its own limit, and the limit that applies during login.
const DefaultMaxRecvDataSegmentLength = 8192

// MaxDataSegmentLength is the largest data segment the 24-bit length field
// can describe.
const MaxDataSegmentLength = 1<<24 - 1

// Digest failures. A data digest error at ErrorRecoveryLevel 0 ends the
// connection just like a header digest error, but the target may first
// answer it with a Reject, so callers tell them apart.
var (
	ErrHeaderDigest = errors.New("iscsi: header digest mismatch")
	ErrDataDigest   = errors.New("iscsi: data digest mismatch")
)

// A FormatError reports a PDU that cannot be framed: the stream is out of
// step with the peer and the connection must be dropped.
type FormatError struct{ Reason string }

func (e *FormatError) Error() string { return "iscsi: malformed PDU: " + e.Reason }

// Framer reads and writes PDUs on a byte stream. It is not safe for
// concurrent use: a connection has one reader and serialises its writers.
type Framer struct {
	r *bufio.Reader
	w *bufio.Writer

	// HeaderDigest and DataDigest switch CRC32C digests on. They take
	// effect after login, so they start false.
	HeaderDigest bool
	DataDigest   bool

	// MaxRecvDataSegment bounds incoming data segments: what this side
	// declared as its MaxRecvDataSegmentLength. Zero means the login default.
	MaxRecvDataSegment int

	// Scratch space, separate for each direction because a connection's
	// reader and writers run concurrently.
	rdigest, wdigest [DigestSize]byte
	rpad, wpad       [4]byte
	ahs, data        []byte
}

// NewFramer returns a Framer over r and w with buffers of bufSize bytes.
func NewFramer(r io.Reader, w io.Writer, bufSize int) *Framer {
	return &Framer{r: bufio.NewReaderSize(r, bufSize), w: bufio.NewWriterSize(w, bufSize)}
}

func (f *Framer) maxData() int {
	if f.MaxRecvDataSegment > 0 {
		return f.MaxRecvDataSegment
	}
	return DefaultMaxRecvDataSegmentLength
}

// ReadHeader reads the next PDU's basic header segment, its additional
// header segments and its header digest. The returned AHS is valid until the
// next ReadHeader. The caller must then consume exactly the data segment,
// with ReadData, ReadDataBuffer or DiscardData.
func (f *Framer) ReadHeader(h *BHS) (ahs []byte, err error) {
	if _, err := io.ReadFull(f.r, h[:]); err != nil {
		return nil, err
	}
	if n := h.TotalAHSLength(); n > 0 {
		f.ahs = grow(f.ahs, n)
		if _, err := io.ReadFull(f.r, f.ahs); err != nil {
			return nil, unexpected(err)
		}
		ahs = f.ahs
	}
	if f.HeaderDigest {
		if _, err := io.ReadFull(f.r, f.rdigest[:]); err != nil {
			return nil, unexpected(err)
		}
		if getDigest(f.rdigest[:]) != crc32c(h[:], ahs) {
			return nil, ErrHeaderDigest
		}
	}
	if n := h.DataSegmentLength(); n > f.maxData() {
		return nil, &FormatError{fmt.Sprintf("%v data segment of %d bytes exceeds the declared limit of %d", h.Opcode(), n, f.maxData())}
	}
	return ahs, nil
}

// ReadData reads the data segment of the PDU whose header h was just read
// into dst, which must be exactly DataSegmentLength bytes long. Read data
// lands in the caller's buffer directly: this is the zero-copy path.
func (f *Framer) ReadData(h *BHS, dst []byte) error {
	n := h.DataSegmentLength()
	if len(dst) != n {
		return fmt.Errorf("iscsi: ReadData into %d bytes for a %d-byte segment", len(dst), n)
	}
	if n == 0 {
		return nil
	}
	if _, err := io.ReadFull(f.r, dst); err != nil {
		return unexpected(err)
	}
	pad := f.rpad[:padLen(n)]
	if _, err := io.ReadFull(f.r, pad); err != nil {
		return unexpected(err)
	}
	if !f.DataDigest {
		return nil
	}
	if _, err := io.ReadFull(f.r, f.rdigest[:]); err != nil {
		return unexpected(err)
	}
	if getDigest(f.rdigest[:]) != crc32c(dst, pad) {
		return ErrDataDigest
	}
	return nil
}

// ReadDataBuffer reads the data segment into a buffer owned by the Framer,
// valid until the next read.
func (f *Framer) ReadDataBuffer(h *BHS) ([]byte, error) {
	f.data = grow(f.data, h.DataSegmentLength())
	return f.data, f.ReadData(h, f.data)
}

// DiscardData skips the data segment (and checks its digest, so that a
// corrupted stream is still noticed).
func (f *Framer) DiscardData(h *BHS) error {
	_, err := f.ReadDataBuffer(h)
	return err
}

// ReadPDU reads a whole PDU. Its AHS and data are valid until the next read.
func (f *Framer) ReadPDU(h *BHS) (ahs, data []byte, err error) {
	if ahs, err = f.ReadHeader(h); err != nil {
		return nil, nil, err
	}
	data, err = f.ReadDataBuffer(h)
	return ahs, data, err
}

// WritePDU buffers one PDU: h (whose lengths it sets), the AHS, which must be
// a multiple of 4 bytes, and the data segment, with padding and digests.
// Call Flush to send it.
func (f *Framer) WritePDU(h *BHS, ahs, data []byte) error {
	if len(ahs)%4 != 0 || len(ahs) > 255*4 {
		return fmt.Errorf("iscsi: AHS of %d bytes is not a multiple of 4 up to 1020", len(ahs))
	}
	if len(data) > MaxDataSegmentLength {
		return fmt.Errorf("iscsi: data segment of %d bytes is too long", len(data))
	}
	h.setLengths(len(ahs), len(data))
	f.w.Write(h[:])
	f.w.Write(ahs)
	if f.HeaderDigest {
		putDigest(f.wdigest[:], crc32c(h[:], ahs))
		f.w.Write(f.wdigest[:])
	}
	if len(data) == 0 {
		return nil
	}
	f.w.Write(data)
	pad := f.wpad[:padLen(len(data))]
	f.w.Write(pad)
	if f.DataDigest {
		putDigest(f.wdigest[:], crc32c(data, pad))
		f.w.Write(f.wdigest[:])
	}
	// bufio.Writer errors are sticky; Flush reports them.
	return nil
}

// Write marshals hdr and buffers it with its data segment.
func (f *Framer) Write(hdr Header, data []byte) error {
	var h BHS
	hdr.Marshal(&h)
	return f.WritePDU(&h, nil, data)
}

// Flush sends what WritePDU buffered.
func (f *Framer) Flush() error { return f.w.Flush() }

// Buffered reports how many bytes wait to be flushed.
func (f *Framer) Buffered() int { return f.w.Buffered() }

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// unexpected turns a clean EOF inside a PDU into ErrUnexpectedEOF: only the
// boundary between PDUs is a clean place for the stream to end.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
