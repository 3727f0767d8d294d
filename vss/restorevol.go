package vss

import (
	"context"
	"fmt"

	"github.com/hitkit/hitkit/groupapi"
)

// RestoreVolume writes a chain of images to the volume through a session
// of its own. It refuses a volume in use: connected on this host, or with
// sessions on the array, since writing under a mounted filesystem
// corrupts it.
func RestoreVolume(ctx context.Context, a *Access, api *groupapi.Client, chain []ImageFile, progress func(total int64) func(int64)) (RestoreResult, error) {
	if a.Connected {
		return RestoreResult{}, fmt.Errorf("volume %s is connected on this host: unmount it and run hitkit mpio disconnect %s first", a.Name, a.Name)
	}
	v, err := api.Volume(a.Volume)
	if err != nil {
		return RestoreResult{}, err
	}
	if v.Sessions > 0 {
		return RestoreResult{}, fmt.Errorf("volume %s has %d sessions on the array: disconnect every host first", a.Volume, v.Sessions)
	}
	lu, closeUnit, err := a.openUnit(ctx, v.IQN)
	if err != nil {
		return RestoreResult{}, err
	}
	defer closeUnit()
	var fn func(int64)
	if progress != nil && len(chain) > 0 {
		fn = progress(chain[len(chain)-1].Manifest.Size)
	}
	res, err := Restore(ctx, chain, lu, fn)
	if err != nil {
		return res, err
	}
	if err := lu.Sync(); err != nil {
		return res, fmt.Errorf("flushing the volume: %w", err)
	}
	return res, nil
}
