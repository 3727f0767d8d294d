// Package daemon is hitkitd, the long-running process that owns the
// multipathed volumes: their iSCSI sessions (package mpio) and their
// exports (an NBD socket, and a FUSE file with a loop device). It answers
// a small JSON control API on a unix socket, which the mpio commands use
// through Client.
package daemon

import (
	"fmt"
	"regexp"
	"time"

	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/mpio"
)

// ConnectRequest describes one volume to connect. It is also what the
// daemon persists for --login-at-boot, without CHAPSecret, which goes in
// a file of its own.
type ConnectRequest struct {
	Name          string `json:"name"`
	Portal        string `json:"portal"`
	Target        string `json:"target"`
	LUN           int    `json:"lun"`
	InitiatorName string `json:"initiator_name,omitempty"`

	CHAPUser       string `json:"chap_user,omitempty"`
	CHAPSecret     string `json:"chap_secret,omitempty"`
	CHAPAlgorithms string `json:"chap_algorithms,omitempty"`
	// Mutual CHAP: the array answers as MutualUser with MutualSecret,
	// which is persisted like CHAPSecret, in a file of its own.
	MutualUser   string `json:"mutual_user,omitempty"`
	MutualSecret string `json:"mutual_secret,omitempty"`
	HeaderDigest bool   `json:"header_digest,omitempty"` // require CRC32C
	DataDigest   bool   `json:"data_digest,omitempty"`

	// Sources and NICs are the host's ways out (one path each); the
	// subnets filter Sources. See planPaths.
	Sources          []string `json:"sources,omitempty"`
	NICs             []string `json:"nics,omitempty"`
	IncludeSubnets   []string `json:"include_subnets,omitempty"`
	ExcludeSubnets   []string `json:"exclude_subnets,omitempty"`
	SessionsPerSlice int      `json:"sessions_per_slice,omitempty"`
	MaxSessions      int      `json:"max_sessions,omitempty"`

	// The group's management API, for the volume's page map: with it the
	// session count follows the number of members holding the volume, and
	// I/O goes to a session on the member that holds its page. GroupAPI is
	// HOST[:PORT] (default: the portal's host, port 8443); the certificate
	// must have the SHA-256 GroupFingerprint. GroupAdminPassword is
	// persisted like CHAPSecret, in a file of its own. Without a password
	// the daemon does not ask the group.
	GroupAPI           string `json:"group_api,omitempty"`
	GroupFingerprint   string `json:"group_fingerprint,omitempty"`
	GroupAdminPassword string `json:"group_admin_password,omitempty"`

	Policy        string `json:"policy,omitempty"`
	NoPathTimeout string `json:"no_path_timeout,omitempty"` // a time.ParseDuration string
	LoginAtBoot   bool   `json:"login_at_boot,omitempty"`
	// ReadOnly exports the volume read-only: the loop device is attached
	// read-only, the NBD export says so, and writes are refused before
	// they reach the array (for mounted snapshots).
	ReadOnly bool `json:"read_only,omitempty"`
}

// Defaults of ConnectRequest fields left zero.
const (
	DefaultSessionsPerSlice = 2
	DefaultMaxSessions      = 6
)

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName reports whether hitkitd takes name for a volume.
func ValidName(name string) bool { return validName.MatchString(name) }

// Check validates what can be checked without the network.
func (r ConnectRequest) Check() error {
	if !ValidName(r.Name) {
		return fmt.Errorf("volume name %q: use letters, digits, '.', '_' and '-' (at most 64)", r.Name)
	}
	if r.Portal == "" || r.Target == "" {
		return fmt.Errorf("a portal and a target are needed")
	}
	if r.LUN < 0 {
		return fmt.Errorf("LUN %d is negative", r.LUN)
	}
	if len(r.Sources) > 0 && len(r.NICs) > 0 {
		return fmt.Errorf("give source addresses or NICs, not both")
	}
	if r.Policy != "" {
		if _, err := mpio.ParsePolicy(r.Policy); err != nil {
			return err
		}
	}
	if r.NoPathTimeout != "" {
		if _, err := time.ParseDuration(r.NoPathTimeout); err != nil {
			return fmt.Errorf("no-path timeout: %v", err)
		}
	}
	if r.SessionsPerSlice < 0 || r.MaxSessions < 0 {
		return fmt.Errorf("session counts must not be negative")
	}
	if r.GroupAdminPassword != "" || r.GroupFingerprint != "" || r.GroupAPI != "" {
		if r.GroupAdminPassword == "" || r.GroupFingerprint == "" {
			return fmt.Errorf("the group's management API needs both its admin password and its certificate fingerprint")
		}
		if _, err := groupapi.ParseFingerprint(r.GroupFingerprint); err != nil {
			return fmt.Errorf("group fingerprint: %v", err)
		}
	}
	_, err := planPaths(r) // bad addresses and subnets
	return err
}

// VolumeInfo is one connected volume: where it is exposed, and the
// multipath device's status (its fields are inlined in JSON, so that
// `volumes[].paths[].state` is where scripts expect it).
type VolumeInfo struct {
	Name        string `json:"name"`
	Portal      string `json:"portal"`
	BlockDevice string `json:"block_device"`
	Link        string `json:"link"`
	NBDURI      string `json:"nbd_uri"`
	LoginAtBoot bool   `json:"login_at_boot"`
	// GroupAPI (HOST[:PORT]) and GroupFingerprint are the group's
	// management API, when the volume was connected with it, so that
	// `hitkit health` can ask the group too. The admin password is never
	// reported.
	GroupAPI         string `json:"group_api,omitempty"`
	GroupFingerprint string `json:"group_fingerprint,omitempty"`
	mpio.Status
}

// SavedVolumes are the --login-at-boot volumes that hitkitd keeps in its
// state directory, secrets included: what should be connected, for
// `hitkit health`, even while hitkitd is down.
func SavedVolumes(stateDir string) ([]ConnectRequest, error) {
	return (&store{dir: stateDir}).load()
}

// Request is one call on the control socket.
type Request struct {
	Op      string          `json:"op"` // connect, disconnect, list, status, ping, shutdown
	Name    string          `json:"name,omitempty"`
	Connect *ConnectRequest `json:"connect,omitempty"`
}

// Response answers a Request. Error is set when it failed.
type Response struct {
	Error string `json:"error,omitempty"`
	// NotConnected marks an Error that says the named volume is not
	// connected, so that the client can return ErrNotConnected for it.
	NotConnected bool         `json:"not_connected,omitempty"`
	Volumes      []VolumeInfo `json:"volumes,omitempty"`
	PID          int          `json:"pid,omitempty"`
	// Connect answers a "request" op: how a connected volume was
	// connected, secrets included (the socket is root's alone).
	Connect *ConnectRequest `json:"connect,omitempty"`
}
