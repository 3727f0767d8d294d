package vss

import (
	"context"
	"errors"
	"fmt"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/sirupsen/logrus"
)

// Stray is a snapshot that should be offline: online on the array with no
// use on this host, or recorded as used by a mount or backup that is gone.
type Stray struct {
	Volume   string  `json:"volume"`
	Snapshot string  `json:"snapshot"`
	Online   bool    `json:"online"`
	Reason   string  `json:"reason"`
	Record   *Record `json:"record,omitempty"`
}

// OnlineSnapshots finds the stray snapshots of a volume (its name on the
// array): online ones that no live record in the state directory
// accounts for, and records whose mount or backup is gone. The health
// check calls it; Cleanup sets what it finds offline.
func OnlineSnapshots(api *groupapi.Client, state, volume string) ([]Stray, error) {
	snaps, err := api.Snapshots(volume)
	if err != nil {
		return nil, fmt.Errorf("snapshots of %s: %w", volume, err)
	}
	recs, err := Records(state)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Record{}
	for i := range recs {
		if recs[i].Volume == volume {
			byName[recs[i].Snapshot] = &recs[i]
		}
	}
	var out []Stray
	for _, s := range snaps {
		rec := byName[s.Name]
		delete(byName, s.Name)
		switch {
		case rec != nil && rec.Live():
			continue
		case rec != nil:
			out = append(out, Stray{Volume: volume, Snapshot: s.Name, Online: s.Online, Record: rec,
				Reason: fmt.Sprintf("the %s by pid %d is gone", rec.Use, rec.PID)})
		case s.Online:
			out = append(out, Stray{Volume: volume, Snapshot: s.Name, Online: true, Reason: "online, but not in use on this host"})
		}
	}
	for _, rec := range byName {
		if !rec.Live() {
			out = append(out, Stray{Volume: volume, Snapshot: rec.Snapshot, Record: rec, Reason: "recorded, but the snapshot is gone"})
		}
	}
	return out, nil
}

// CleanupResult is one stray snapshot that Cleanup handled.
type CleanupResult struct {
	Stray
	Error string `json:"error,omitempty"`
}

// Cleanup sets the stray snapshots of a volume offline, after unmounting
// and disconnecting what is left of them on this host. Online snapshots
// with no record are set offline too: nothing on this host uses them,
// and a snapshot a crash left online is exactly that.
func Cleanup(ctx context.Context, api *groupapi.Client, hitkitd *daemon.Client, state, volume string) ([]CleanupResult, error) {
	strays, err := OnlineSnapshots(api, state, volume)
	if err != nil {
		return nil, err
	}
	var out []CleanupResult
	var errs []error
	for _, s := range strays {
		rec := Record{Volume: volume, Snapshot: s.Snapshot, Device: SnapshotDevice(volume, s.Snapshot)}
		if s.Record != nil {
			rec = *s.Record
		}
		log := logrus.WithFields(logrus.Fields{"volume": volume, "snapshot": s.Snapshot})
		r := CleanupResult{Stray: s}
		if err := release(ctx, api, hitkitd, state, rec, log); err != nil {
			r.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", s.Snapshot, err))
		} else {
			log.WithField("reason", s.Reason).Warn("stray snapshot set offline")
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}
