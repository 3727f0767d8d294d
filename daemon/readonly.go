package daemon

import (
	"context"
	"errors"

	"github.com/hitkit/hitkit/blockdev"
)

// errReadOnly is the answer to a write on a read-only export; the front
// ends refuse writes before they get here, so it is a second line.
var errReadOnly = errors.New("the volume is connected read-only")

// readOnlyDevice exports a device read-only: blockdev attaches the loop
// device read-only and advertises a read-only NBD export for it.
type readOnlyDevice struct{ dev blockdev.Device }

var _ blockdev.ReadOnlyDevice = readOnlyDevice{}

func (r readOnlyDevice) ReadAt(p []byte, off int64) (int, error) { return r.dev.ReadAt(p, off) }
func (r readOnlyDevice) WriteAt([]byte, int64) (int, error)      { return 0, errReadOnly }
func (r readOnlyDevice) Unmap(int64, int64) error                { return errReadOnly }
func (r readOnlyDevice) Sync() error                             { return nil }
func (r readOnlyDevice) Size() int64                             { return r.dev.Size() }
func (r readOnlyDevice) BlockSize() int                          { return r.dev.BlockSize() }
func (r readOnlyDevice) ReadOnly() bool                          { return true }

// request returns how a connected volume was connected, secrets included,
// so that a command working on the same volume (a snapshot of it, a
// backup) needs no flags of its own.
func (d *Daemon) request(name string) (*ConnectRequest, error) {
	v, ok := d.lookup(name)
	if !ok {
		return nil, notConnected(name)
	}
	r := v.req
	return &r, nil
}

// Request returns the connect request of a connected volume, with its
// CHAP secrets and group admin password.
func (c *Client) Request(ctx context.Context, name string) (ConnectRequest, error) {
	resp, err := c.call(ctx, Request{Op: "request", Name: name})
	if err != nil {
		return ConnectRequest{}, err
	}
	if resp.Connect == nil {
		return ConnectRequest{}, errors.New("hitkitd answered without the volume's request")
	}
	return *resp.Connect, nil
}
