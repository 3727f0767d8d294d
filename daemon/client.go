package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// Client calls a daemon's control API.
type Client struct {
	Socket string
}

// NewClient returns a client of the daemon whose runtime directory is dir.
func NewClient(runtimeDir string) *Client { return &Client{Socket: SocketPath(runtimeDir)} }

// ErrNotRunning means no daemon answers on the socket.
var ErrNotRunning = errors.New("hitkitd is not running")

// ErrNotConnected means hitkitd has no volume of the name asked for.
var ErrNotConnected = errors.New("volume not connected")

// notConnectedError is hitkitd's answer about a volume it does not
// have, on both sides of the control socket.
type notConnectedError struct{ msg string }

func (e notConnectedError) Error() string        { return e.msg }
func (e notConnectedError) Is(target error) bool { return target == ErrNotConnected }

func notConnected(name string) error {
	return notConnectedError{fmt.Sprintf("no volume %s is connected", name)}
}

// call sends one request. A connect may take as long as the logins do,
// so the deadline comes from ctx.
func (c *Client) call(ctx context.Context, req Request) (Response, error) {
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	conn, err := dialer.DialContext(dctx, "unix", c.Socket)
	cancel()
	if err != nil {
		return Response{}, fmt.Errorf("%w (%v)", ErrNotRunning, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("reading hitkitd's reply: %w", err)
	}
	switch {
	case resp.NotConnected:
		return resp, notConnectedError{resp.Error}
	case resp.Error != "":
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// Ping returns the daemon's process id.
func (c *Client) Ping(ctx context.Context) (int, error) {
	resp, err := c.call(ctx, Request{Op: "ping"})
	return resp.PID, err
}

// Connect connects a volume and returns once its device is ready.
func (c *Client) Connect(ctx context.Context, r ConnectRequest) (VolumeInfo, error) {
	resp, err := c.call(ctx, Request{Op: "connect", Connect: &r})
	if err != nil {
		return VolumeInfo{}, err
	}
	if len(resp.Volumes) != 1 {
		return VolumeInfo{}, errors.New("hitkitd answered a connect without the volume")
	}
	return resp.Volumes[0], nil
}

// Disconnect removes a volume's devices and logs its sessions out.
func (c *Client) Disconnect(ctx context.Context, name string) error {
	_, err := c.call(ctx, Request{Op: "disconnect", Name: name})
	return err
}

// Status reports the named volume, or every volume when name is empty.
func (c *Client) Status(ctx context.Context, name string) ([]VolumeInfo, error) {
	resp, err := c.call(ctx, Request{Op: "status", Name: name})
	return resp.Volumes, err
}

// Shutdown asks the daemon to close every volume and exit.
func (c *Client) Shutdown(ctx context.Context) error {
	_, err := c.call(ctx, Request{Op: "shutdown"})
	return err
}
