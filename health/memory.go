package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hitkit/hitkit/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Memory is what a run leaves for the next one, in STATE/health.json: the
// path counters (to report errors since the last run), the volumes seen
// (to notice when hitkitd stops serving them), and the states for alerts.
type Memory struct {
	Time      time.Time `json:"time"`
	State     State     `json:"state"`
	DaemonPID int       `json:"daemon_pid,omitempty"`
	// Notified is the state the last alert reported (OK before any), so
	// that a mail that could not be sent is tried again on the next run.
	Notified State                   `json:"notified"`
	Volumes  map[string]VolumeMemory `json:"volumes,omitempty"`
}

// VolumeMemory holds a volume's path counters, by path id.
type VolumeMemory struct {
	WWID  string              `json:"wwid"`
	Paths map[int]PathCounter `json:"paths"`
}

// PathCounter is a path's counters at the end of a run.
type PathCounter struct {
	Errors     uint64 `json:"errors"`
	Reinstated uint64 `json:"reinstated"`
}

// File names under the state directory.
const (
	memoryFile = "health.json"
	lockFile   = "health.lock"
)

// LoadMemory reads the last run's memory; none yet is not an error.
func LoadMemory(stateDir string) (Memory, error) {
	path := filepath.Join(stateDir, memoryFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Memory{}, nil
	}
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	if err := json.Unmarshal(b, &m); err != nil {
		// A damaged file costs one run's deltas, not the check.
		return Memory{}, fmt.Errorf("%s is damaged (%v); starting afresh", path, err)
	}
	return m, nil
}

// Save writes the memory atomically.
func (m Memory) Save(stateDir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(stateDir, memoryFile), append(b, '\n'), 0o600)
}

// Remember turns a report into the next run's memory. Notified is carried
// over; the caller updates it when an alert goes out. While hitkitd is
// down, the volumes of the last run are kept: the next run must still know
// what should be served.
func Remember(r Report, prev Memory) Memory {
	m := Memory{Time: r.Time, State: r.State, DaemonPID: r.Daemon.PID, Notified: prev.Notified,
		Volumes: map[string]VolumeMemory{}}
	if !r.Daemon.Running {
		m.Volumes = prev.Volumes
		return m
	}
	for _, v := range r.Volumes {
		vm := VolumeMemory{WWID: v.WWID, Paths: map[int]PathCounter{}}
		for _, p := range v.Paths {
			vm.Paths[p.ID] = PathCounter{Errors: p.Errors, Reinstated: p.Reinstated}
		}
		m.Volumes[v.Name] = vm
	}
	return m
}

// ErrLocked says another run holds the lock.
var ErrLocked = errors.New("another hitkit health run is in progress")

// Lock takes STATE/health.lock (flock), so that runs never overlap: a slow
// run from cron and the next one would otherwise race on the memory and
// send an alert twice. The lock goes with the process, even on a crash.
func Lock(stateDir string) (unlock func(), err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(stateDir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s is locked)", ErrLocked, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
