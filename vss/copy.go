package vss

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hitkit/hitkit/groupapi"
)

// fullChunk is the unit in which a full copy skips zeroes.
const fullChunk = 1 << 20

// SnapshotReader is what a copy reads: the snapshot's logical unit.
type SnapshotReader interface {
	ReadAt(p []byte, off int64) (int, error)
	Size() int64
	BlockSize() int
}

// CopyResult reports a copy.
type CopyResult struct {
	Manifest  Manifest
	BytesRead int64
}

// copyImage writes an image of src to w. changed nil copies everything
// that is not zero (a full image); otherwise only the changed extents
// (an incremental image), clipped to the snapshot's size.
func copyImage(ctx context.Context, src SnapshotReader, w io.Writer, h Header, changed []groupapi.Extent, progress func(int64)) (CopyResult, error) {
	var res CopyResult
	h.Size, h.BlockSize = src.Size(), src.BlockSize()
	if changed == nil {
		h.Kind, h.Granularity = KindFull, fullChunk
	} else {
		h.Kind = KindIncremental
	}
	iw, err := NewImageWriter(w, h)
	if err != nil {
		return res, err
	}
	if progress == nil {
		progress = func(int64) {}
	}
	buf := make([]byte, MaxExtent)
	read := func(off, n int64) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := buf[:n]
		if _, err := src.ReadAt(p, off); err != nil {
			return nil, fmt.Errorf("reading the snapshot at %d+%d: %w", off, n, err)
		}
		res.BytesRead += n
		progress(n)
		return p, nil
	}
	bs := int64(h.BlockSize)
	if changed == nil {
		for off := int64(0); off < h.Size; off += fullChunk {
			p, err := read(off, min(fullChunk, h.Size-off))
			if err != nil {
				return res, err
			}
			if !allZero(p) {
				if err := iw.WriteExtent(off, p); err != nil {
					return res, err
				}
			}
		}
	} else {
		for _, e := range changed {
			start := e.Offset - e.Offset%bs
			end := min(e.Offset+e.Length, h.Size)
			if r := end % bs; r != 0 {
				end += bs - r
			}
			for off := start; off < end; off += MaxExtent {
				p, err := read(off, min(MaxExtent, end-off))
				if err != nil {
					return res, err
				}
				if err := iw.WriteExtent(off, p); err != nil {
					return res, err
				}
			}
		}
	}
	res.Manifest, err = iw.Close()
	return res, err
}

// writeImageFile writes the image to path through a temporary file in
// the same directory, and its manifest beside it, so that a failed or
// interrupted copy leaves neither behind.
func writeImageFile(ctx context.Context, path string, src SnapshotReader, h Header, changed []groupapi.Extent, progress func(int64)) (CopyResult, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return CopyResult{}, err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	res, err := copyImage(ctx, src, tmp, h, changed, progress)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return res, err
	}
	res.Manifest.Image = filepath.Base(path)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return res, err
	}
	if err := writeManifest(path, res.Manifest); err != nil {
		os.Remove(path)
		return res, err
	}
	return res, nil
}
