package vss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
)

// BlockVolume is what Restore writes to and Backup reads from: a logical
// unit, such as an initiator.LogicalUnit.
type BlockVolume interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Size() int64
	BlockSize() int
}

// segment is a byte range of the restored volume and the image that
// provides it (an index into the chain), or zeroes (src -1).
type segment struct {
	start, end int64
	src        int
}

// overlay lays the extents of image src over base (which covers the
// volume from 0 without gaps), and cuts the result at size; beyond base
// the volume reads zeroes. Later images win.
func overlay(base []segment, extents []ExtentSum, src int, size int64) []segment {
	under := append(append([]segment(nil), base...), segment{lastEnd(base), max(size, lastEnd(base)), -1})
	var out []segment
	add := func(s segment) {
		s.end = min(s.end, size)
		if s.start >= s.end {
			return
		}
		if n := len(out); n > 0 && out[n-1].src == s.src && out[n-1].end == s.start {
			out[n-1].end = s.end
			return
		}
		out = append(out, s)
	}
	ui := 0
	fromBase := func(from, to int64) {
		for from < to {
			for under[ui].end <= from {
				ui++
			}
			end := min(to, under[ui].end)
			add(segment{from, end, under[ui].src})
			from = end
		}
	}
	pos := int64(0)
	for _, e := range extents {
		fromBase(pos, e.Offset)
		add(segment{e.Offset, e.Offset + e.Length, src})
		pos = max(pos, e.Offset+e.Length)
	}
	fromBase(pos, size)
	return out
}

func lastEnd(s []segment) int64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].end
}

// layout is what the chain makes of the volume: every byte up to the last
// image's size, from the newest image that holds it, or zero.
func layout(chain []ImageFile) []segment {
	var segs []segment
	for i, img := range chain {
		segs = overlay(segs, img.Manifest.Extents, i, img.Manifest.Size)
	}
	return segs
}

// RestoreResult reports a restore.
type RestoreResult struct {
	Images       []string `json:"images"`
	Size         int64    `json:"size"`
	BytesWritten int64    `json:"bytes_written"` // data and zeroes written
	ZeroedBytes  int64    `json:"zeroed_bytes"`  // of those, zeroes over old data
	Verified     int64    `json:"verified_bytes"`
}

// Restore writes a chain of images (from Chain) to vol. It first checks
// every image in full: its digest against the manifest, every extent's
// checksum, and the chain's links; nothing is written unless all match.
// It then writes each byte once, from the newest image that holds it,
// writes zeroes where the chain has none and the volume is not already
// zero, and ends by reading the whole volume back and comparing it with
// the chain. progress (if not nil) is told how many bytes were handled.
func Restore(ctx context.Context, chain []ImageFile, vol BlockVolume, progress func(int64)) (RestoreResult, error) {
	var res RestoreResult
	if len(chain) == 0 {
		return res, errors.New("no image to restore")
	}
	if err := checkChain(chain); err != nil {
		return res, err
	}
	final := chain[len(chain)-1].Manifest
	res.Size = final.Size
	if vol.Size() < final.Size {
		return res, fmt.Errorf("the volume has %d bytes, the image %d: grow the volume first", vol.Size(), final.Size)
	}
	if final.BlockSize%vol.BlockSize() != 0 {
		return res, fmt.Errorf("the volume's blocks are %d bytes, the image's %d", vol.BlockSize(), final.BlockSize)
	}
	for _, img := range chain {
		if err := verifyImage(img); err != nil {
			return res, err
		}
		res.Images = append(res.Images, img.Path)
	}
	if progress == nil {
		progress = func(int64) {}
	}
	segs := layout(chain)
	write := func(off int64, want []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := vol.WriteAt(want, off); err != nil {
			return fmt.Errorf("writing %d bytes at %d: %w", len(want), off, err)
		}
		res.BytesWritten += int64(len(want))
		progress(int64(len(want)))
		return nil
	}
	if err := walkChain(chain, segs, write, func(off int64, n int64) error {
		return zeroRange(ctx, vol, off, n, &res, progress)
	}); err != nil {
		return res, err
	}
	buf := make([]byte, MaxExtent)
	compare := func(off int64, want []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		got := buf[:len(want)]
		if _, err := vol.ReadAt(got, off); err != nil {
			return fmt.Errorf("verify: reading %d bytes at %d: %w", len(got), off, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("verify: the volume differs from the images at %d+%d", off, len(want))
		}
		res.Verified += int64(len(want))
		return nil
	}
	zeroes := make([]byte, MaxExtent)
	err := walkChain(chain, segs, compare, func(off, n int64) error {
		for n > 0 {
			c := min(n, MaxExtent)
			if err := compare(off, zeroes[:c]); err != nil {
				return err
			}
			off, n = off+c, n-c
		}
		return nil
	})
	return res, err
}

// verifyImage reads an image in full and checks it against its manifest.
func verifyImage(img ImageFile) error {
	f, err := os.Open(img.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := ReadImage(f, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", img.Path, err)
	}
	m := img.Manifest
	if got.ImageSHA256 != m.ImageSHA256 {
		return fmt.Errorf("%s: the image's SHA-256 is %s, its manifest says %s", img.Path, got.ImageSHA256, m.ImageSHA256)
	}
	if got.Header != m.Header || len(got.Extents) != len(m.Extents) {
		return fmt.Errorf("%s: the image does not match its manifest", img.Path)
	}
	for i := range got.Extents {
		if got.Extents[i] != m.Extents[i] {
			return fmt.Errorf("%s: extent %d does not match its manifest", img.Path, i)
		}
	}
	return nil
}

// walkChain hands data to fn for every segment that an image provides,
// reading each image once in order (and checking each extent's checksum
// again), and hands the zero segments to zero.
func walkChain(chain []ImageFile, segs []segment, fn func(off int64, p []byte) error, zero func(off, n int64) error) error {
	for _, s := range segs {
		if s.src < 0 {
			if err := zero(s.start, s.end-s.start); err != nil {
				return err
			}
		}
	}
	for i, img := range chain {
		var mine []segment
		for _, s := range segs {
			if s.src == i {
				mine = append(mine, s)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if err := walkImage(img, mine, fn); err != nil {
			return err
		}
	}
	return nil
}

func walkImage(img ImageFile, mine []segment, fn func(off int64, p []byte) error) error {
	f, err := os.Open(img.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	si := 0
	got, err := ReadImage(f, func(e ExtentSum, p []byte) error {
		end := e.Offset + e.Length
		for si < len(mine) && mine[si].end <= e.Offset {
			si++
		}
		for j := si; j < len(mine) && mine[j].start < end; j++ {
			lo, hi := max(mine[j].start, e.Offset), min(mine[j].end, end)
			if err := fn(lo, p[lo-e.Offset:hi-e.Offset]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", img.Path, err)
	}
	if got.ImageSHA256 != img.Manifest.ImageSHA256 {
		return fmt.Errorf("%s changed while it was restored", img.Path)
	}
	return nil
}

// zeroRange makes a range read as zeroes, writing only where it does not
// already: a fresh thin volume stays thin.
func zeroRange(ctx context.Context, vol BlockVolume, off, n int64, res *RestoreResult, progress func(int64)) error {
	buf := make([]byte, min(n, MaxExtent))
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := min(n, int64(len(buf)))
		p := buf[:c]
		if _, err := vol.ReadAt(p, off); err != nil {
			return fmt.Errorf("reading %d bytes at %d: %w", c, off, err)
		}
		if !allZero(p) {
			clear(p)
			if _, err := vol.WriteAt(p, off); err != nil {
				return fmt.Errorf("zeroing %d bytes at %d: %w", c, off, err)
			}
			res.BytesWritten += c
			res.ZeroedBytes += c
		}
		progress(c)
		off, n = off+c, n-c
	}
	return nil
}
