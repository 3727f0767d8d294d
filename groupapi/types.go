// Package groupapi is the host side of a group's HTTPS management API: the
// JSON types that the lab group's server (array/mgmt) and its clients share,
// and a Client that pins the group's certificate by its SHA-256
// fingerprint. Host-side code (cmd, mpio, vss, health) imports this
// package, never array. The endpoints are described in docs/api.md.
package groupapi

import "time"

// Firmware is what lab members report as their firmware version.
const Firmware = "lab-1.0"

// MaxVolumeSize is the largest volume the API creates or grows: 64 TiB.
const MaxVolumeSize int64 = 64 << 40

// Error is the body of every 4xx and 5xx response.
type Error struct {
	Error string `json:"error"`
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Password string `json:"password"`
}

// LoginResponse carries a bearer token for the Authorization header.
type LoginResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// Group is GET /api/v1/group.
type Group struct {
	Name           string          `json:"name"`
	GroupIP        string          `json:"group_ip"` // the iSCSI portal, host:port
	ManagementAddr string          `json:"management_addr"`
	PageSize       int64           `json:"page_size"`
	Members        []MemberSummary `json:"members"`
	Volumes        int             `json:"volumes"`
	Sessions       int             `json:"sessions"`
}

// MemberSummary is one member in Group.
type MemberSummary struct {
	Number int    `json:"number"`
	Name   string `json:"name,omitempty"`
	State  string `json:"state"`
	Ports  int    `json:"ports"`
}

// Member is one element of GET /api/v1/members.
type Member struct {
	Number    int    `json:"number"`
	Name      string `json:"name,omitempty"`
	Serial    string `json:"serial"`
	State     string `json:"state"` // control-module state: online, failing-over, uninitialized
	Firmware  string `json:"firmware"`
	Capacity  int64  `json:"capacity"`
	Used      int64  `json:"used"`
	Forwarded uint64 `json:"forwarded_ios"`
	Ports     []Port `json:"ports"`
}

// Port is one Ethernet port of a member.
type Port struct {
	Address  string `json:"address"` // iSCSI portal, host:port
	TPGT     uint16 `json:"tpgt"`
	State    string `json:"state"` // up, down, blackholed
	Sessions int    `json:"sessions"`
}

// AccessRecord is one access control record of a volume. Every field that
// is set must match a login; a record with none set is refused (write
// network "0.0.0.0/0" for everyone).
type AccessRecord struct {
	Initiator string `json:"initiator,omitempty"`
	CHAPUser  string `json:"chap_user,omitempty"`
	Network   string `json:"network,omitempty"` // CIDR
}

// Volume is one element of GET /api/v1/volumes, and GET /api/v1/volumes/{name}.
type Volume struct {
	Name           string           `json:"name"`
	IQN            string           `json:"iqn"`
	Serial         string           `json:"serial"`
	Size           int64            `json:"size"`
	Thin           bool             `json:"thin"`
	Members        []int            `json:"members"`
	Allocated      int64            `json:"allocated"`
	PagesPerMember map[string]int64 `json:"pages_per_member"`
	Forwarded      uint64           `json:"forwarded_ios"`
	Sessions       int              `json:"sessions"`
	CHAPUser       string           `json:"chap_user,omitempty"`
	Access         []AccessRecord   `json:"access"`
}

// CreateVolume is the body of POST /api/v1/volumes. Access defaults to one
// record for the volume's own CHAP user, whose secret stays on the group.
type CreateVolume struct {
	Name   string         `json:"name"`
	Size   int64          `json:"size"`
	Thick  bool           `json:"thick,omitempty"`
	Access []AccessRecord `json:"access,omitempty"`
	// CHAPSecret, when set, becomes the volume's CHAP secret instead of a
	// random one kept on the group: a host that creates its own volume
	// knows the secret without reading it back. 12 to 255 characters. It
	// is never returned or logged.
	CHAPSecret string `json:"chap_secret,omitempty"`
}

// ResizeVolume is the body of PATCH /api/v1/volumes/{name}. A smaller size
// is refused unless Shrink is set, since shrinking discards data.
type ResizeVolume struct {
	Size   int64 `json:"size"`
	Shrink bool  `json:"shrink,omitempty"`
}

// Access is GET and PUT /api/v1/volumes/{name}/access.
type Access struct {
	Records []AccessRecord `json:"records"`
}

// PageMap is GET /api/v1/volumes/{name}/pagemap. Page i, the bytes
// [i*PageSize, (i+1)*PageSize), belongs to Members[i % len(Members)]; Ports
// lists each of those members' iSCSI portals, so that a host can send each
// I/O to a session on the member that holds its page.
type PageMap struct {
	Volume   string           `json:"volume"`
	PageSize int64            `json:"page_size"`
	Size     int64            `json:"size"`
	Pages    int64            `json:"pages"`
	Members  []int            `json:"members"`
	Ports    map[int][]string `json:"ports"` // member number -> portals, host:port
}

// Owner is the member holding page i.
func (m PageMap) Owner(page int64) int {
	if len(m.Members) == 0 {
		return 0
	}
	return m.Members[page%int64(len(m.Members))]
}

// OwnerAt is the member holding the byte at off.
func (m PageMap) OwnerAt(off int64) int {
	if m.PageSize <= 0 {
		return 0
	}
	return m.Owner(off / m.PageSize)
}

// Stats is GET /api/v1/stats: counters since the group started.
type Stats struct {
	Time    time.Time     `json:"time"`
	Ports   []PortStats   `json:"ports"`
	Members []MemberStats `json:"members"`
	Volumes []VolumeStats `json:"volumes"`
}

// PortStats is one portal; Member 0 is the group IP.
type PortStats struct {
	Address  string `json:"address"`
	Member   int    `json:"member"`
	State    string `json:"state"`
	Sessions int    `json:"sessions"`
	Commands uint64 `json:"commands"` // by the sessions logged in there now
	Rates
}

// MemberStats counts a member's forwarded I/Os.
type MemberStats struct {
	Number    int    `json:"number"`
	Forwarded uint64 `json:"forwarded_ios"`
}

// VolumeStats is one volume.
type VolumeStats struct {
	Name      string `json:"name"`
	Sessions  int    `json:"sessions"`
	Commands  uint64 `json:"commands"` // by the sessions logged in now
	Forwarded uint64 `json:"forwarded_ios"`
	Allocated int64  `json:"allocated"`
	Rates
}

// Rates are a port's or a volume's I/O over the management server's last
// one-second sample: commands per second, megabytes (10^6 bytes) per
// second read and written by initiators, and the mean time from a
// command's arrival to its response. All zero when idle.
type Rates struct {
	IOPS         float64 `json:"iops"`
	ReadMBps     float64 `json:"read_mbps"`
	WriteMBps    float64 `json:"write_mbps"`
	AvgLatencyUs float64 `json:"avg_latency_us"`
}

// Event is one change made through the API, in GET /api/v1/events.
type Event struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"` // volume-created, volume-resized, access-changed, login-failed
	Volume string    `json:"volume,omitempty"`
	Detail string    `json:"detail"`
	Remote string    `json:"remote,omitempty"`
}
