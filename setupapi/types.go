// Package setupapi is the contract of an uninitialised member's setup
// endpoint: HTTPS JSON on the member's first port address, port 8444,
// with a self-signed certificate whose SHA-256 fingerprint the member
// announces in its discovery answer (UDP probe and mDNS). The server is
// array/setup; the host side (remotesetup, cmd) uses the Client here and
// never imports array.
//
// An uninitialised member has no password yet, so the endpoint takes no
// credentials; pinning the announced fingerprint is what tells the host it
// talks to the member it discovered.
//
//	GET  /setup/v1/info        -> Info
//	POST /setup/v1/initialize  Request -> 202 Progress (setup runs on)
//	GET  /setup/v1/progress    -> Progress
//
// Errors are {"error": "..."} with 400 (a field is wrong; Field names it),
// 403 (wrong membership password), 409 (group IP in use, member already
// initialised or a setup already running), 429 (too many wrong passwords;
// wait Retry-After seconds). A refused request changes nothing: the member
// stays uninitialised and a corrected request can be sent again.
package setupapi

// Port is where a member's setup endpoint listens.
const Port = 8444

// Modes of a Request.
const (
	ModeCreate = "create" // the member founds a new group at GroupIP
	ModeJoin   = "join"   // the member joins the group at GroupIP
)

// RAID policies a member accepts.
var RAIDPolicies = []string{"raid10", "raid50", "raid6", "raid5"}

// Info is GET /setup/v1/info: what the member is.
type Info struct {
	Serial   string   `json:"serial"`
	Model    string   `json:"model"`
	Firmware string   `json:"firmware"`
	MACs     []string `json:"macs"`
	State    string   `json:"state"` // uninitialized, initializing, initialized
	// Address is where the member answers now (its first port), and
	// Network the subnet it sits on, as CIDR: the member's IP must be in it.
	Address string `json:"address"`
	Network string `json:"network"`
	Ports   int    `json:"ports"`
	// RawCapacity is the bytes of disk before RAID.
	RawCapacity int64 `json:"raw_capacity"`
}

// Request is the body of POST /setup/v1/initialize.
type Request struct {
	MemberName string `json:"member_name"` // 1-63 of a-z 0-9 . - , starting alphanumeric
	// IP is the member's first port address with its prefix length, such as
	// 127.0.10.31/24; its further ports take the following addresses.
	IP        string `json:"ip"`
	Gateway   string `json:"gateway"`    // in IP's subnet
	GroupName string `json:"group_name"` // same rule as MemberName
	GroupIP   string `json:"group_ip"`   // an address, no port; in IP's subnet
	Mode      string `json:"mode"`       // ModeCreate or ModeJoin
	// MembershipPassword lets members join the group: set by a create,
	// checked by a join.
	MembershipPassword string `json:"membership_password"`
	// AdminPassword becomes the group admin password (create only; a join
	// leaves it unset).
	AdminPassword string `json:"admin_password,omitempty"`
	RAID          string `json:"raid"` // one of RAIDPolicies
}

// Progress is GET /setup/v1/progress, and the answer to initialize.
type Progress struct {
	State   string `json:"state"`   // idle, running, done, failed
	Step    string `json:"step"`    // what the member does now, for people
	Percent int    `json:"percent"` // 0 to 100
	// Error says why a setup failed; the member is uninitialised again.
	Error  string  `json:"error,omitempty"`
	Result *Result `json:"result,omitempty"` // set when State is done
}

// Progress states.
const (
	StateIdle    = "idle"
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
)

// Result is what a finished setup tells the host: where the group is and
// how to reach its management API. The fingerprint is trustworthy because
// it came over the pinned setup connection.
type Result struct {
	GroupName             string `json:"group_name"`
	GroupIP               string `json:"group_ip"`        // iSCSI portal, host:port
	ManagementAddr        string `json:"management_addr"` // host:port
	ManagementFingerprint string `json:"management_fingerprint"`
	Member                int    `json:"member"` // the member's number in the group
	MemberName            string `json:"member_name"`
	Capacity              int64  `json:"capacity"` // usable bytes after RAID
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"` // the Request field at fault
}
