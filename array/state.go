package array

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/hitkit/hitkit/internal/atomicfile"
)

// configVersion is group.json's format version.
const configVersion = 1

// Config is a group's configuration, as DIR/group.json holds it. Starting
// a group from the same Config and directory serves the same volumes,
// with the same identities and data.
type Config struct {
	Version int        `json:"version"`
	Name    string     `json:"name"`
	BaseIP  netip.Addr `json:"base_ip"`
	// PageSize is the unit in which volumes are spread over members.
	PageSize int64 `json:"page_size"`
	// ForwardLatency is added to a command that touches pages the
	// receiving member does not hold.
	ForwardLatency Duration `json:"forward_latency"`
	// GroupIP is where the group answers; BASE+1 when unset. A site whose
	// members are all uninitialised has no group: no name, no group IP.
	GroupIP netip.Addr `json:"group_ip,omitzero"`
	// PortsPerMember is how many ports a member has once it is set up.
	PortsPerMember int            `json:"ports_per_member,omitempty"`
	Members        []MemberConfig `json:"members"`
	Volumes        []VolumeConfig `json:"volumes"`
}

// MemberConfig is one member as configured.
type MemberConfig struct {
	Number int    `json:"number"`         // 1-based; fixes the member's addresses
	Name   string `json:"name,omitempty"` // empty while uninitialised
	Serial string `json:"serial"`
	// Initialized members are in the group and serve iSCSI; the others
	// wait for the setup wizard.
	Initialized bool  `json:"initialized"`
	Ports       int   `json:"ports"`
	Capacity    int64 `json:"capacity"` // raw bytes of storage, before RAID
	// IP is the first port's address as the setup wizard chose it; port p
	// listens on IP+(p-1). Unset, the address plan applies.
	IP      netip.Prefix `json:"ip,omitzero"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	RAID    string       `json:"raid,omitempty"` // see setupapi.RAIDPolicies; unset counts the raw capacity
}

// VolumeConfig is one volume as configured. Its CHAP secret is in
// CHAPSecretFile, not here.
type VolumeConfig struct {
	Name     string     `json:"name"`
	IQN      string     `json:"iqn"`
	Serial   string     `json:"serial"` // VPD page 0x80, and the seed of the NAA in page 0x83
	Size     int64      `json:"size"`
	Thin     bool       `json:"thin"`
	Members  []int      `json:"members"` // who holds its pages, round-robin
	CHAPUser string     `json:"chap_user,omitempty"`
	Access   AccessList `json:"access"`
	// SnapshotReserve is the snapshot reserve in percent of Size; nil
	// means DefaultSnapshotReserve. SnapshotWhenFull is ReserveDeleteOldest
	// (the default, "") or ReserveRefuse. The snapshots themselves are in
	// DIR/snapshots/NAME (see snapshot.go).
	SnapshotReserve  *int   `json:"snapshot_reserve_percent,omitempty"`
	SnapshotWhenFull string `json:"snapshot_when_full,omitempty"`
}

// Duration is a time.Duration that reads and writes as "500µs" in JSON.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Spec describes a group to create. Zero fields take the defaults of
// `hitkit lab up`.
type Spec struct {
	Name           string
	BaseIP         netip.Addr
	Members        int
	PortsPerMember int
	Uninitialized  int
	Volumes        []VolumeSpec
	PageSize       int64
	ForwardLatency time.Duration
	MemberCapacity int64
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	Name  string
	Size  int64
	Thick bool
	// Access defaults to one record for the volume's own CHAP user.
	Access AccessList
	// CHAPSecret, when set, is written to the volume's secret file instead
	// of a random secret. It is never logged or shown.
	CHAPSecret string
}

// Defaults of a new group.
const (
	DefaultGroupName      = "lab"
	DefaultMembers        = 2
	DefaultPortsPerMember = 2
	DefaultUninitialized  = 1
	DefaultVolumeName     = "vol1"
	DefaultVolumeSize     = 1 << 30
	DefaultForwardLatency = 500 * time.Microsecond
	DefaultMemberCapacity = 1 << 40
	// IQNPrefix starts every volume's IQN: IQNPrefix:GROUP:VOLUME.
	IQNPrefix = "iqn.2026-11.org.hitkit.lab"
)

// DefaultBaseIP is the lab's address base: the group IP is 127.0.10.1.
var DefaultBaseIP = netip.MustParseAddr("127.0.10.0")

// Address-plan limits: member m's port p is BASE+10*m+p, so a port
// number is one digit and all members must fit in BASE's /24.
const (
	maxPortsPerMember = 9
	portOctetLimit    = 254
)

func (s *Spec) defaults() {
	if s.Name == "" {
		s.Name = DefaultGroupName
	}
	if !s.BaseIP.IsValid() {
		s.BaseIP = DefaultBaseIP
	}
	if s.Members == 0 {
		s.Members = DefaultMembers
	}
	noGroup := s.Members < 0
	s.Members = max(s.Members, 0)
	if s.PortsPerMember == 0 {
		s.PortsPerMember = DefaultPortsPerMember
	}
	if s.Volumes == nil && !noGroup {
		s.Volumes = []VolumeSpec{{Name: DefaultVolumeName, Size: DefaultVolumeSize}}
	}
	if s.PageSize == 0 {
		s.PageSize = DefaultPageSize
	}
	if s.MemberCapacity == 0 {
		s.MemberCapacity = DefaultMemberCapacity
	}
}

// NewConfig turns a spec into a configuration with fresh serial numbers.
// Spec.Uninitialized < 0 means none; 0 means the default. Spec.Members < 0
// means none: a site of uninitialised members that holds no group until
// the setup wizard creates one (no name, no volumes).
func NewConfig(s Spec) (Config, error) {
	if s.Uninitialized == 0 {
		s.Uninitialized = DefaultUninitialized
	}
	s.Uninitialized = max(s.Uninitialized, 0)
	s.defaults()
	c := Config{
		Version: configVersion, Name: s.Name, BaseIP: s.BaseIP,
		PageSize: s.PageSize, ForwardLatency: Duration(s.ForwardLatency),
		PortsPerMember: s.PortsPerMember,
	}
	if s.Members == 0 {
		c.Name = ""
	}
	for m := 1; m <= s.Members+s.Uninitialized; m++ {
		mc := MemberConfig{Number: m, Serial: newSerial("HK", 10), Capacity: s.MemberCapacity}
		if m <= s.Members {
			mc.Name, mc.Initialized, mc.Ports = fmt.Sprintf("member%d", m), true, s.PortsPerMember
		}
		c.Members = append(c.Members, mc)
	}
	for _, vs := range s.Volumes {
		c.Volumes = append(c.Volumes, c.newVolume(vs))
	}
	return c, c.Validate()
}

// newVolume configures a volume whose pages go to every online member.
func (c *Config) newVolume(vs VolumeSpec) VolumeConfig {
	vc := VolumeConfig{
		Name: vs.Name, IQN: VolumeIQN(c.Name, vs.Name), Serial: newSerial("", 32),
		Size: vs.Size, Thin: !vs.Thick, Members: c.onlineMembers(),
		CHAPUser: vs.Name, Access: vs.Access,
	}
	if vc.Access == nil {
		vc.Access = AccessList{{CHAPUser: vc.CHAPUser}}
	}
	return vc
}

func (c *Config) onlineMembers() []int {
	var out []int
	for _, m := range c.Members {
		if m.Initialized {
			out = append(out, m.Number)
		}
	}
	return out
}

// VolumeIQN is the target name of a volume.
func VolumeIQN(group, volume string) string {
	return IQNPrefix + ":" + group + ":" + volume
}

// newSerial returns prefix followed by n random hex digits.
func newSerial(prefix string, n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b) // crypto/rand.Read never fails on Linux
	return prefix + hex.EncodeToString(b)[:n]
}

// nameRE is what group and volume names may be: they end up in IQNs
// (lower case, no ':' inside a part) and in file names.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)

// ValidName says whether name may name a group, a member or a volume.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Validate says what is wrong with a configuration, if anything.
func (c Config) Validate() error {
	if c.Version != configVersion {
		return fmt.Errorf("group.json version %d is not %d", c.Version, configVersion)
	}
	if err := c.validateSite(); err != nil {
		return err
	}
	if err := c.validateAddresses(); err != nil {
		return err
	}
	if c.PageSize <= 0 || c.PageSize%512 != 0 {
		return fmt.Errorf("page size %d is not a positive multiple of 512", c.PageSize)
	}
	seen := map[string]bool{}
	for _, v := range c.Volumes {
		if seen[v.Name] {
			return fmt.Errorf("volume %s is defined twice", v.Name)
		}
		seen[v.Name] = true
		if err := c.validateVolume(v); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) validateAddresses() error {
	if !c.BaseIP.Is4() || !c.BaseIP.IsLoopback() {
		return fmt.Errorf("base address %s: the lab listens on loopback only; use an address in 127.0.0.0/8 such as 127.0.10.0", c.BaseIP)
	}
	for i, m := range c.Members {
		if m.Number != i+1 {
			return fmt.Errorf("member %d is listed as number %d", i+1, m.Number)
		}
		if m.Ports < 0 || m.Ports > maxPortsPerMember {
			return fmt.Errorf("member %d: %d ports; the address plan allows 1 to %d", m.Number, m.Ports, maxPortsPerMember)
		}
	}
	last := int(c.BaseIP.As4()[3]) + 10*len(c.Members) + maxPortsPerMember
	if last > portOctetLimit {
		return fmt.Errorf("%d members do not fit after %s: member m's port p is BASE+10*m+p; use fewer members or a base ending in .0", len(c.Members), c.BaseIP)
	}
	return nil
}

func (c Config) validateVolume(v VolumeConfig) error {
	if !nameRE.MatchString(v.Name) {
		return fmt.Errorf("volume name %q: use 1 to 63 lower-case letters, digits, '.' or '-'", v.Name)
	}
	if v.Size <= 0 || v.Size%512 != 0 {
		return fmt.Errorf("volume %s: size %d is not a positive multiple of 512 bytes", v.Name, v.Size)
	}
	if len(v.Members) == 0 {
		return fmt.Errorf("volume %s: no member holds its pages", v.Name)
	}
	for _, m := range v.Members {
		if m < 1 || m > len(c.Members) || !c.Members[m-1].Initialized {
			return fmt.Errorf("volume %s: member %d is not an initialised member of the group", v.Name, m)
		}
	}
	if err := v.Access.Validate(); err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	return nil
}

func (c Config) volume(name string) (VolumeConfig, int, bool) {
	i := slices.IndexFunc(c.Volumes, func(v VolumeConfig) bool { return v.Name == name })
	if i < 0 {
		return VolumeConfig{}, -1, false
	}
	return c.Volumes[i], i, true
}

func configFile(dir string) string { return filepath.Join(dir, "group.json") }

// LoadConfig reads DIR/group.json.
func LoadConfig(dir string) (Config, error) {
	var c Config
	b, err := os.ReadFile(configFile(dir))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", configFile(dir), err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", configFile(dir), err)
	}
	return c, nil
}

// Exists says whether dir holds a group.
func Exists(dir string) bool {
	_, err := os.Stat(configFile(dir))
	return err == nil
}

// saveConfig writes DIR/group.json atomically.
func saveConfig(dir string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(configFile(dir), append(b, '\n'), 0o600)
}
