package groupapi

import (
	"net/http"
	"net/url"
	"time"
)

// Snapshot reserve policies: what a volume does when its snapshot reserve
// is full and a write needs more of it.
const (
	// ReserveDeleteOldest deletes the oldest snapshots until the write fits.
	ReserveDeleteOldest = "delete-oldest"
	// ReserveRefuse keeps every snapshot: the write that needs more reserve
	// fails (SPACE ALLOCATION FAILED), and so does a new snapshot.
	ReserveRefuse = "refuse"
)

// Snapshot is one element of GET /api/v1/volumes/{name}/snapshots.
type Snapshot struct {
	Name    string    `json:"name"`
	Volume  string    `json:"volume"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"` // the volume's size when it was taken
	// Reserve is the bytes of the volume's snapshot reserve that this
	// snapshot holds (copied-on-write data).
	Reserve int64 `json:"reserve_used"`
	Online  bool  `json:"online"`
	// IQN is the snapshot's own iSCSI target; it takes logins while Online.
	IQN      string `json:"iqn"`
	ReadOnly bool   `json:"read_only"`
	// Description is free text from the creator, such as what was frozen.
	Description string `json:"description,omitempty"`
}

// CreateSnapshot is the body of POST /api/v1/volumes/{name}/snapshots. An
// empty Name gets one from the time: VOLUME-YYYYMMDD-HHMMSS.mmm.
type CreateSnapshot struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
}

// SetSnapshot is the body of PATCH /api/v1/volumes/{name}/snapshots/{snap}:
// set a snapshot online (its target takes logins) or offline (its sessions
// are logged out and it takes none). ReadWrite is refused unless Online.
type SetSnapshot struct {
	Online    *bool `json:"online,omitempty"`
	ReadWrite *bool `json:"read_write,omitempty"`
}

// SnapshotPolicy is GET and PUT /api/v1/volumes/{name}/snapshot-policy.
type SnapshotPolicy struct {
	// ReservePercent is the snapshot reserve as a percentage of the
	// volume's size (0 to 200; 0 means no snapshots can be taken).
	ReservePercent int `json:"reserve_percent"`
	// WhenFull is ReserveDeleteOldest or ReserveRefuse.
	WhenFull string `json:"when_full"`
	// ReserveUsed is the bytes all snapshots hold (read-only).
	ReserveUsed int64 `json:"reserve_used"`
}

// ChangedBlocks is GET /api/v1/volumes/{name}/changes?from=SNAP[&to=SNAP]:
// the byte ranges whose contents may differ between snapshot From and
// snapshot To, or the live volume when To is empty. Extents are sorted,
// do not overlap, and are aligned to Granularity.
type ChangedBlocks struct {
	Volume      string   `json:"volume"`
	From        string   `json:"from"`
	To          string   `json:"to,omitempty"`
	Size        int64    `json:"size"` // the size of To (or the live volume)
	Granularity int64    `json:"granularity"`
	Extents     []Extent `json:"extents"`
}

// Extent is a byte range.
type Extent struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// RestoreVolume is the body of POST /api/v1/volumes/{name}/restore: the
// volume's contents (and size) become those of the snapshot. The volume's
// sessions are logged out first; the snapshot stays.
type RestoreVolume struct {
	Snapshot string `json:"snapshot"`
}

func snapPath(volume, snap string) string {
	return volPath(volume, "/snapshots/"+url.PathEscape(snap))
}

// Snapshots lists a volume's snapshots, oldest first.
func (c *Client) Snapshots(volume string) ([]Snapshot, error) {
	var s []Snapshot
	err := c.do(http.MethodGet, volPath(volume, "/snapshots"), nil, &s)
	return s, err
}

// Snapshot fetches one snapshot.
func (c *Client) Snapshot(volume, snap string) (Snapshot, error) {
	var s Snapshot
	err := c.do(http.MethodGet, snapPath(volume, snap), nil, &s)
	return s, err
}

// CreateSnapshot takes a crash-consistent snapshot of a volume.
func (c *Client) CreateSnapshot(volume string, req CreateSnapshot) (Snapshot, error) {
	var s Snapshot
	err := c.do(http.MethodPost, volPath(volume, "/snapshots"), req, &s)
	return s, err
}

// SetSnapshot sets a snapshot online or offline, read-only or read-write.
func (c *Client) SetSnapshot(volume, snap string, req SetSnapshot) (Snapshot, error) {
	var s Snapshot
	err := c.do(http.MethodPatch, snapPath(volume, snap), req, &s)
	return s, err
}

// DeleteSnapshot deletes a snapshot; an online one is logged out first.
func (c *Client) DeleteSnapshot(volume, snap string) error {
	return c.do(http.MethodDelete, snapPath(volume, snap), nil, nil)
}

// SnapshotPolicy fetches a volume's snapshot reserve and its policy.
func (c *Client) SnapshotPolicy(volume string) (SnapshotPolicy, error) {
	var p SnapshotPolicy
	err := c.do(http.MethodGet, volPath(volume, "/snapshot-policy"), nil, &p)
	return p, err
}

// SetSnapshotPolicy changes a volume's snapshot reserve and its policy.
func (c *Client) SetSnapshotPolicy(volume string, p SnapshotPolicy) (SnapshotPolicy, error) {
	var out SnapshotPolicy
	err := c.do(http.MethodPut, volPath(volume, "/snapshot-policy"), p, &out)
	return out, err
}

// ChangedBlocks lists the extents that differ between snapshot from and
// snapshot to, or the live volume when to is "".
func (c *Client) ChangedBlocks(volume, from, to string) (ChangedBlocks, error) {
	q := url.Values{"from": {from}}
	if to != "" {
		q.Set("to", to)
	}
	var cb ChangedBlocks
	err := c.do(http.MethodGet, volPath(volume, "/changes?"+q.Encode()), nil, &cb)
	return cb, err
}

// RestoreVolume makes a volume's contents those of one of its snapshots.
func (c *Client) RestoreVolume(volume, snap string) (Volume, error) {
	var v Volume
	err := c.do(http.MethodPost, volPath(volume, "/restore"), RestoreVolume{Snapshot: snap}, &v)
	return v, err
}
