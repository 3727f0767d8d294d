package vss

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hitkit/hitkit/internal/atomicfile"
)

// File name endings of images and their manifests.
const (
	ImageExt    = ".hkimg"
	ManifestExt = ".manifest.json"
)

// ManifestPath is where the manifest of the image at path lives.
func ManifestPath(image string) string {
	return strings.TrimSuffix(image, ImageExt) + ManifestExt
}

// ImageFile is an image and its manifest.
type ImageFile struct {
	Path     string
	Manifest Manifest
}

// LoadImage reads the manifest of the image at path; the image itself is
// checked by Restore.
func LoadImage(path string) (ImageFile, error) {
	if _, err := os.Stat(path); err != nil {
		return ImageFile{}, err
	}
	b, err := os.ReadFile(ManifestPath(path))
	if err != nil {
		return ImageFile{}, fmt.Errorf("manifest of %s: %w", path, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ImageFile{}, fmt.Errorf("manifest %s: %v", ManifestPath(path), err)
	}
	if err := m.Header.check(); err != nil {
		return ImageFile{}, fmt.Errorf("manifest %s: %v", ManifestPath(path), err)
	}
	if len(m.ImageSHA256) != 64 {
		return ImageFile{}, fmt.Errorf("manifest %s has no image digest", ManifestPath(path))
	}
	return ImageFile{Path: path, Manifest: m}, nil
}

func writeManifest(image string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(ManifestPath(image), append(b, '\n'), 0o600)
}

// maxChain bounds how many parents Chain follows.
const maxChain = 10000

// Chain orders the images to restore. With one image, it follows the
// parent images named in the manifests, in the image's directory, back to
// a full image. With several, they must be given oldest first. Either
// way, every incremental image must build on the one before it (the same
// volume, its parent snapshot, and the parent image's digest).
func Chain(paths []string) ([]ImageFile, error) {
	if len(paths) == 0 {
		return nil, errors.New("no image given")
	}
	var chain []ImageFile
	if len(paths) == 1 {
		img, err := LoadImage(paths[0])
		if err != nil {
			return nil, err
		}
		chain = []ImageFile{img}
		for img.Manifest.Kind == KindIncremental {
			if len(chain) > maxChain {
				return nil, fmt.Errorf("more than %d images in the chain", maxChain)
			}
			parent := filepath.Join(filepath.Dir(img.Path), filepath.Base(img.Manifest.ParentImage))
			if img, err = LoadImage(parent); err != nil {
				return nil, fmt.Errorf("the chain of %s: %w", paths[0], err)
			}
			chain = append([]ImageFile{img}, chain...)
		}
	} else {
		for _, p := range paths {
			img, err := LoadImage(p)
			if err != nil {
				return nil, err
			}
			chain = append(chain, img)
		}
	}
	return chain, checkChain(chain)
}

func checkChain(chain []ImageFile) error {
	if chain[0].Manifest.Kind != KindFull {
		return fmt.Errorf("%s is an incremental image: a chain starts with a full one (give its parent %s first)",
			chain[0].Path, chain[0].Manifest.ParentImage)
	}
	for i := 1; i < len(chain); i++ {
		prev, m := chain[i-1].Manifest, chain[i].Manifest
		switch {
		case m.Kind != KindIncremental:
			return fmt.Errorf("%s is a full image; only incremental images follow the first", chain[i].Path)
		case m.Volume != prev.Volume:
			return fmt.Errorf("%s is of volume %s, %s of %s", chain[i].Path, m.Volume, chain[i-1].Path, prev.Volume)
		case m.Parent != prev.Snapshot:
			return fmt.Errorf("%s holds the changes since snapshot %s, but %s holds snapshot %s",
				chain[i].Path, m.Parent, chain[i-1].Path, prev.Snapshot)
		case m.ParentImageSHA256 != prev.ImageSHA256:
			return fmt.Errorf("%s builds on another image of snapshot %s than %s (digests differ)",
				chain[i].Path, m.Parent, chain[i-1].Path)
		case m.BlockSize != prev.BlockSize:
			return fmt.Errorf("%s has blocks of %d bytes, %s of %d", chain[i].Path, m.BlockSize, chain[i-1].Path, prev.BlockSize)
		}
	}
	return nil
}
