package array

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrNotRunning says that no group answers on a directory's control socket.
var ErrNotRunning = errors.New("no lab group is running there")

// Client talks to a running group over its control socket; see the
// protocol in control.go.
type Client struct {
	Dir     string
	Timeout time.Duration // per request; DefaultClientTimeout when zero
}

// DefaultClientTimeout bounds a control request.
const DefaultClientTimeout = 10 * time.Second

// NewClient returns a client for the group in dir.
func NewClient(dir string) *Client { return &Client{Dir: dir} }

// Ping checks that the group is up and answering.
func (c *Client) Ping() error {
	_, err := c.Do(ControlRequest{Op: OpPing})
	return err
}

// Status fetches the group's status.
func (c *Client) Status() (Status, error) {
	resp, err := c.Do(ControlRequest{Op: OpStatus})
	if err != nil {
		return Status{}, err
	}
	if resp.Status == nil {
		return Status{}, errors.New("the group answered a status request without a status")
	}
	return *resp.Status, nil
}

// Fault injects a fault and returns the group's one-line account of it.
func (c *Client) Fault(r FaultRequest) (string, error) {
	resp, err := c.Do(ControlRequest{Op: OpFault, Fault: &r})
	return resp.Message, err
}

// Down asks the group to stop. It returns once the group has answered;
// WaitDown waits for it to be gone.
func (c *Client) Down() error {
	_, err := c.Do(ControlRequest{Op: OpDown})
	return err
}

// WaitDown polls until the control socket stops answering, or d passes.
func (c *Client) WaitDown(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := c.Ping(); errors.Is(err, ErrNotRunning) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the group in %s is still running after %v", c.Dir, d)
}

// Do sends one request and reads its response. A refused or missing
// socket is ErrNotRunning; a response with ok false is an error carrying
// the group's message.
func (c *Client) Do(req ControlRequest) (ControlResponse, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	conn, err := net.DialTimeout("unix", ControlSocket(c.Dir), timeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return ControlResponse{}, fmt.Errorf("%s: %w", c.Dir, ErrNotRunning)
		}
		return ControlResponse{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	b, err := json.Marshal(req)
	if err != nil {
		return ControlResponse{}, err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return ControlResponse{}, err
	}
	line, err := bufio.NewReader(io.LimitReader(conn, 16<<20)).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return ControlResponse{}, fmt.Errorf("control socket %s: no answer: %w", ControlSocket(c.Dir), err)
	}
	var resp ControlResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return ControlResponse{}, fmt.Errorf("control socket %s: malformed answer: %w", ControlSocket(c.Dir), err)
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}
