package hosttune

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hitkit/hitkit/internal/atomicfile"
)

// Sysctls reads and writes kernel settings under Root (/proc/sys on a
// real host; tests may point it elsewhere).
type Sysctls struct {
	Root string
}

// DefaultSysctlDir is where --fix persists what it set.
const DefaultSysctlDir = "/etc/sysctl.d"

// SysctlFile is the file --fix writes in the sysctl directory. The 90
// orders it after distribution defaults, which sysctl.d applies first.
const SysctlFile = "90-hitkit-iscsi.conf"

// path turns a dotted key into its file: dots separate, and a '/' inside
// a component stands for a dot in the name (eth0/100 is eth0.100).
func (s Sysctls) path(key string) string {
	parts := strings.Split(key, ".")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "/", ".")
	}
	return filepath.Join(append([]string{s.Root}, parts...)...)
}

// Read returns a setting's value with its whitespace normalised (tcp_rmem
// reads back tab-separated).
func (s Sysctls) Read(key string) (string, error) {
	b, err := os.ReadFile(s.path(key))
	if err != nil {
		return "", err
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}

// Write sets a setting.
func (s Sysctls) Write(key, value string) error {
	f, err := os.OpenFile(s.path(key), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Change is one setting --fix changed.
type Change struct {
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
}

// Apply sets the sysctl fixes among the findings, host-wide ones only when
// hostWide is true, and returns what changed. It stops at the first
// setting the kernel refuses.
func (s Sysctls) Apply(fs []Finding, hostWide bool) ([]Change, error) {
	var out []Change
	for _, f := range fs {
		fix := f.Sysctl
		if fix == nil || (fix.HostWide && !hostWide) {
			continue
		}
		if slices.ContainsFunc(out, func(c Change) bool { return c.Key == fix.Key }) {
			continue
		}
		old, err := s.Read(fix.Key)
		if err != nil {
			return out, fmt.Errorf("read %s: %w", fix.Key, err)
		}
		if err := s.Write(fix.Key, fix.Value); err != nil {
			return out, fmt.Errorf("set %s=%s: %w", fix.Key, fix.Value, err)
		}
		out = append(out, Change{Key: fix.Key, Old: old, New: fix.Value})
	}
	return out, nil
}

// Persist records the changes in dir/SysctlFile, so that they survive a
// reboot: systemd-sysctl applies the file at boot, and its udev rule
// applies a NIC's net.ipv4.conf.NIC keys when the NIC appears. Lines of
// the file for other keys are kept; a key set again is replaced in place.
// It returns the file's path.
func Persist(dir string, changes []Change) (string, error) {
	path := filepath.Join(dir, SysctlFile)
	if len(changes) == 0 {
		return path, nil
	}
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	data := mergeSysctlFile(old, changes)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

const fileHeader = "# Written by `hitkit tune --fix`: iSCSI host tuning (see `hitkit tune`).\n"

// mergeSysctlFile replaces the lines of the changed keys in a sysctl.d
// file, keeps every other line, and appends the keys it did not have.
func mergeSysctlFile(old []byte, changes []Change) []byte {
	pending := map[string]string{}
	for _, c := range changes {
		pending[c.Key] = c.New
	}
	var b bytes.Buffer
	if len(old) == 0 {
		b.WriteString(fileHeader)
	}
	sc := bufio.NewScanner(bytes.NewReader(old))
	for sc.Scan() {
		line := sc.Text()
		if key, ok := sysctlFileKey(line); ok {
			if v, set := pending[key]; set {
				line = key + " = " + v
				delete(pending, key)
			}
		}
		b.WriteString(line + "\n")
	}
	for _, c := range changes {
		if v, ok := pending[c.Key]; ok {
			b.WriteString(c.Key + " = " + v + "\n")
			delete(pending, c.Key)
		}
	}
	return b.Bytes()
}

// sysctlFileKey is the key of a "key = value" line of a sysctl.d file,
// which may start with '-' (ignore errors); comments have none.
func sysctlFileKey(line string) (string, bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' || line[0] == ';' {
		return "", false
	}
	key, _, ok := strings.Cut(line, "=")
	if !ok {
		return "", false
	}
	return strings.TrimPrefix(strings.TrimSpace(key), "-"), true
}
