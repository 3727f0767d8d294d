package vss

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hitkit/hitkit/internal/atomicfile"
)

// Record says that this host uses a snapshot online: mounted, or being
// read by a backup. Records live in STATE/snapshots/, one file each,
// written before the snapshot is set online and removed after it is set
// offline, so that a crash in between leaves a trace for Cleanup.
type Record struct {
	Use      string `json:"use"`      // UseMount or UseBackup
	Name     string `json:"name"`     // the volume's name on this host
	Volume   string `json:"volume"`   // on the array
	Snapshot string `json:"snapshot"` // its name
	Path     string `json:"path,omitempty"`
	// Device is the snapshot's name in hitkitd, BlockDevice its loop
	// device.
	Device      string    `json:"device,omitempty"`
	BlockDevice string    `json:"block_device,omitempty"`
	Mounted     bool      `json:"mounted"` // the mount completed
	MadeDir     bool      `json:"made_dir,omitempty"`
	PID         int       `json:"pid"`
	Started     time.Time `json:"started"`
	// PIDStart is the process's start time in clock ticks since boot
	// (/proc/PID/stat), so that a reused PID is not taken for it.
	PIDStart uint64 `json:"pid_start,omitempty"`
}

// Uses of a snapshot.
const (
	UseMount  = "mount"
	UseBackup = "backup"
)

func recordDir(state string) string { return filepath.Join(state, "snapshots") }

func recordPath(state, volume, snap string) string {
	return filepath.Join(recordDir(state), url.PathEscape(volume)+"@"+url.PathEscape(snap)+".json")
}

func saveRecord(state string, r Record) error {
	if err := os.MkdirAll(recordDir(state), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(recordPath(state, r.Volume, r.Snapshot), append(b, '\n'), 0o600)
}

func removeRecord(state string, r Record) error {
	err := os.Remove(recordPath(state, r.Volume, r.Snapshot))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Records lists the records in the state directory.
func Records(state string) ([]Record, error) {
	entries, err := os.ReadDir(recordDir(state))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(recordDir(state), e.Name()))
		if err != nil {
			return nil, err
		}
		var r Record
		if json.Unmarshal(b, &r) != nil || r.Volume == "" || r.Snapshot == "" {
			continue // not ours, or torn by hand: Cleanup reports the snapshot
		}
		out = append(out, r)
	}
	return out, nil
}

// Live reports whether a record still stands for a use in progress: the
// process that made it runs, or the snapshot is mounted where it says.
func (r Record) Live() bool {
	if r.PID > 0 && processAlive(r.PID) && processStart(r.PID) == r.PIDStart {
		return true
	}
	if r.Use != UseMount || !r.Mounted || r.BlockDevice == "" {
		return false
	}
	m, ok, err := mountedAt(r.Path)
	if err != nil || !ok {
		return false
	}
	_, rdev, err := BlockDevice(r.BlockDevice)
	return err == nil && m.onDevice(rdev)
}

// processStart reads a process's start time from /proc/PID/stat (field
// 22, counted after the command name, which may hold spaces); 0 if gone.
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// newRecord starts a record for this process.
func newRecord(use string) Record {
	return Record{Use: use, PID: os.Getpid(), PIDStart: processStart(os.Getpid()), Started: time.Now().UTC()}
}

func processAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
