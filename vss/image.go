package vss

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// An image file holds one snapshot's data, or the data that changed
// since an earlier snapshot, and describes itself:
//
//	magic "HITKITIMG\n" (10 bytes), header length (uint32, big endian),
//	header (JSON, Header), then records:
//	  offset, length (uint64 each), flags (uint32), SHA-256 of the
//	  extent's contents (32 bytes), then length bytes of data unless
//	  the extent is all zeroes (flagZero);
//	an end record: offset 2^64-1, length = the number of extents, flags 0,
//	  and the SHA-256 of every byte before it.
//
// The manifest beside it (Manifest, JSON) repeats the header and the
// extents with their checksums, and adds the SHA-256 of the whole image
// file, so that a chain can be checked and ordered without reading data.
const (
	imageMagic    = "HITKITIMG\n"
	FormatVersion = 1
	recordSize    = 8 + 8 + 4 + sha256.Size
	endOffset     = ^uint64(0)
	flagZero      = 1
	// maxHeader bounds the header that a reader accepts.
	maxHeader = 1 << 20
	// MaxExtent is the largest extent a record holds; longer ranges are
	// split, so that a reader never needs more memory than this.
	MaxExtent = 4 << 20
)

// Image kinds.
const (
	KindFull        = "full"
	KindIncremental = "incremental"
)

// Header describes an image: which volume and snapshot it holds, and, for
// an incremental image, which snapshot and image it builds on.
type Header struct {
	FormatVersion int       `json:"format_version"`
	Kind          string    `json:"kind"` // KindFull or KindIncremental
	Volume        string    `json:"volume"`
	Size          int64     `json:"size"` // the volume's size at the snapshot
	BlockSize     int       `json:"block_size"`
	Snapshot      string    `json:"snapshot"`
	SnapshotTime  time.Time `json:"snapshot_created"`
	Created       time.Time `json:"created"`
	// Granularity is the alignment of the extents: the array's
	// changed-block granularity for an incremental image, the chunk in
	// which zeroes are skipped for a full one.
	Granularity int64 `json:"granularity"`
	// Parent is the snapshot an incremental image holds the changes
	// since, and ParentImage the image file (a base name, in the same
	// directory) that holds it, with its SHA-256.
	Parent            string `json:"parent_snapshot,omitempty"`
	ParentImage       string `json:"parent_image,omitempty"`
	ParentImageSHA256 string `json:"parent_image_sha256,omitempty"`
}

// ExtentSum is one extent of an image: the byte range of the volume, and
// the SHA-256 of its contents there.
type ExtentSum struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Zero   bool   `json:"zero,omitempty"` // all zeroes; no data in the image
	SHA256 string `json:"sha256"`
}

// Manifest is the JSON file beside an image.
type Manifest struct {
	Header
	Image       string      `json:"image"` // base name of the image file
	ImageSHA256 string      `json:"image_sha256"`
	ImageBytes  int64       `json:"image_bytes"`
	DataBytes   int64       `json:"data_bytes"` // the bytes of the extents, zeroes included
	Extents     []ExtentSum `json:"extents"`
}

func (h Header) check() error {
	switch {
	case h.FormatVersion != FormatVersion:
		return fmt.Errorf("image format version %d; this hitkit reads version %d", h.FormatVersion, FormatVersion)
	case h.Kind != KindFull && h.Kind != KindIncremental:
		return fmt.Errorf("image kind %q is neither full nor incremental", h.Kind)
	case h.Size <= 0 || h.BlockSize < 512 || h.Size%int64(h.BlockSize) != 0:
		return fmt.Errorf("image of %d bytes in blocks of %d: not a volume's geometry", h.Size, h.BlockSize)
	case h.Kind == KindIncremental && (h.Parent == "" || h.ParentImage == ""):
		return errors.New("an incremental image without its parent snapshot and image")
	case h.Volume == "" || h.Snapshot == "":
		return errors.New("an image without its volume or snapshot name")
	}
	return nil
}

// ImageWriter writes an image file. Extents must come in increasing
// order of offset, aligned to the block size, within the volume.
type ImageWriter struct {
	w       *bufio.Writer
	sum     hash.Hash // of the whole file
	header  Header
	extents []ExtentSum
	next    int64 // the lowest offset the next extent may start at
	bytes   int64
	data    int64
	closed  bool
}

// NewImageWriter writes the magic and the header.
func NewImageWriter(w io.Writer, h Header) (*ImageWriter, error) {
	h.FormatVersion = FormatVersion
	if err := h.check(); err != nil {
		return nil, err
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	iw := &ImageWriter{sum: sha256.New(), header: h}
	iw.w = bufio.NewWriterSize(io.MultiWriter(w, iw.sum, countWriter{&iw.bytes}), 1<<20)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(hb)))
	iw.w.WriteString(imageMagic)
	iw.w.Write(n[:])
	if _, err := iw.w.Write(hb); err != nil {
		return nil, err
	}
	return iw, nil
}

type countWriter struct{ n *int64 }

func (c countWriter) Write(p []byte) (int, error) { *c.n += int64(len(p)); return len(p), nil }

// WriteExtent adds the volume's contents p at off. Longer than MaxExtent,
// it is split; all zeroes, it is stored without data.
func (iw *ImageWriter) WriteExtent(off int64, p []byte) error {
	if iw.closed {
		return errors.New("image already closed")
	}
	bs := int64(iw.header.BlockSize)
	if off < iw.next || off%bs != 0 || int64(len(p))%bs != 0 || len(p) == 0 || off+int64(len(p)) > iw.header.Size {
		return fmt.Errorf("extent %d+%d: out of order, unaligned or outside the volume", off, len(p))
	}
	for len(p) > 0 {
		n := min(len(p), MaxExtent)
		if err := iw.record(off, p[:n]); err != nil {
			return err
		}
		off += int64(n)
		p = p[n:]
	}
	iw.next = off
	return nil
}

func (iw *ImageWriter) record(off int64, p []byte) error {
	sum := sha256.Sum256(p)
	zero := allZero(p)
	var rec [recordSize]byte
	binary.BigEndian.PutUint64(rec[0:], uint64(off))
	binary.BigEndian.PutUint64(rec[8:], uint64(len(p)))
	if zero {
		binary.BigEndian.PutUint32(rec[16:], flagZero)
	}
	copy(rec[20:], sum[:])
	if _, err := iw.w.Write(rec[:]); err != nil {
		return err
	}
	if !zero {
		if _, err := iw.w.Write(p); err != nil {
			return err
		}
	}
	iw.extents = append(iw.extents, ExtentSum{Offset: off, Length: int64(len(p)), Zero: zero, SHA256: fmt.Sprintf("%x", sum)})
	iw.data += int64(len(p))
	return nil
}

// Close writes the end record and flushes; it returns the manifest, whose
// Image the caller sets.
func (iw *ImageWriter) Close() (Manifest, error) {
	if iw.closed {
		return Manifest{}, errors.New("image already closed")
	}
	iw.closed = true
	if err := iw.w.Flush(); err != nil {
		return Manifest{}, err
	}
	body := iw.sum.Sum(nil) // of every byte before the end record
	var rec [recordSize]byte
	binary.BigEndian.PutUint64(rec[0:], endOffset)
	binary.BigEndian.PutUint64(rec[8:], uint64(len(iw.extents)))
	copy(rec[20:], body)
	iw.w.Write(rec[:])
	if err := iw.w.Flush(); err != nil {
		return Manifest{}, err
	}
	return Manifest{
		Header: iw.header, ImageSHA256: fmt.Sprintf("%x", iw.sum.Sum(nil)),
		ImageBytes: iw.bytes, DataBytes: iw.data, Extents: iw.extents,
	}, nil
}

func allZero(p []byte) bool {
	var zero [4096]byte
	for len(p) > 0 {
		n := min(len(p), len(zero))
		if !bytes.Equal(p[:n], zero[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// ReadImage reads and checks an image from r: the header, every extent's
// checksum, the end record and the digest of the whole file. For each
// extent it calls fn (if not nil) with the extent's contents, which are
// only valid during the call, after their checksum matched. It returns
// what a manifest of the image says, Image left empty.
func ReadImage(r io.Reader, fn func(ExtentSum, []byte) error) (Manifest, error) {
	var m Manifest
	raw := bufio.NewReaderSize(r, 1<<20)
	br := &hashingReader{r: raw, h: sha256.New()}
	fail := func(format string, args ...any) (Manifest, error) {
		return Manifest{}, fmt.Errorf("image: "+format, args...)
	}
	magic := make([]byte, len(imageMagic)+4)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic[:len(imageMagic)]) != imageMagic {
		return fail("not a hitkit image (no magic)")
	}
	hlen := binary.BigEndian.Uint32(magic[len(imageMagic):])
	if hlen == 0 || hlen > maxHeader {
		return fail("header of %d bytes", hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(br, hb); err != nil {
		return fail("header: %v", err)
	}
	if err := json.Unmarshal(hb, &m.Header); err != nil {
		return fail("header: %v", err)
	}
	if err := m.Header.check(); err != nil {
		return fail("%v", err)
	}
	bs := int64(m.BlockSize)
	buf := make([]byte, MaxExtent)
	next := int64(0)
	for {
		var rec [recordSize]byte
		body := br.h.Sum(nil) // of every byte before this record
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return fail("truncated after %d extents: %v", len(m.Extents), err)
		}
		off := binary.BigEndian.Uint64(rec[0:])
		length := binary.BigEndian.Uint64(rec[8:])
		flags := binary.BigEndian.Uint32(rec[16:])
		if off == endOffset {
			if length != uint64(len(m.Extents)) {
				return fail("the end record counts %d extents, the image has %d", length, len(m.Extents))
			}
			if !bytes.Equal(body, rec[20:]) {
				return fail("the end record's digest does not match the image")
			}
			if _, err := raw.ReadByte(); err != io.EOF {
				return fail("data after the end record")
			}
			m.ImageSHA256 = fmt.Sprintf("%x", br.h.Sum(nil))
			m.ImageBytes = br.n
			return m, nil
		}
		if flags&^flagZero != 0 || length == 0 || length > MaxExtent || int64(off) < next ||
			int64(off)%bs != 0 || int64(length)%bs != 0 || int64(off+length) > m.Size {
			return fail("bad extent record %d+%d (flags %#x) after %d extents", off, length, flags, len(m.Extents))
		}
		p := buf[:length]
		if flags&flagZero != 0 {
			clear(p)
		} else if _, err := io.ReadFull(br, p); err != nil {
			return fail("extent %d+%d truncated: %v", off, length, err)
		}
		sum := sha256.Sum256(p)
		if !bytes.Equal(sum[:], rec[20:]) {
			return fail("extent %d+%d: checksum mismatch", off, length)
		}
		e := ExtentSum{Offset: int64(off), Length: int64(length), Zero: flags&flagZero != 0, SHA256: fmt.Sprintf("%x", sum)}
		m.Extents = append(m.Extents, e)
		m.DataBytes += e.Length
		if fn != nil {
			if err := fn(e, p); err != nil {
				return Manifest{}, err
			}
		}
		next = int64(off + length)
	}
}

// hashingReader hashes and counts exactly the bytes read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	return n, err
}
