package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// requestTimeout bounds how long a client may take to send its request.
const requestTimeout = 10 * time.Second

// listen creates the control socket with mode 0600 from the start: it is
// bound in a private directory, restricted, and renamed into place, so no
// other user can connect in between (the socket carries CHAP secrets).
func listen(path string) (*net.UnixListener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another hitkitd is already listening on %s", path)
	}
	private, err := os.MkdirTemp(filepath.Dir(path), ".hitkitd-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // the daemon removes the real path itself
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	os.Remove(path) // a stale socket from a daemon that died
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serveConn answers one request. Request bodies are never logged: a
// connect request holds the CHAP secret.
func (d *Daemon) serveConn(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	var req Request
	if err := json.NewDecoder(conn).Decode(&req); err != nil {
		d.log.WithError(err).Warn("unreadable control request")
		json.NewEncoder(conn).Encode(Response{Error: "unreadable request: " + err.Error()})
		return
	}
	resp := d.handle(ctx, req)
	conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		d.log.WithError(err).WithField("op", req.Op).Warn("sending a control reply")
	}
}

func (d *Daemon) handle(ctx context.Context, req Request) Response {
	var (
		resp Response
		err  error
	)
	switch req.Op {
	case "ping":
		resp.PID = os.Getpid()
	case "connect":
		if req.Connect == nil {
			err = errors.New("connect without a volume")
			break
		}
		var v VolumeInfo
		if v, err = d.connect(ctx, *req.Connect); err == nil {
			resp.Volumes = []VolumeInfo{v}
		}
	case "disconnect":
		err = d.disconnect(req.Name)
	case "request":
		resp.Connect, err = d.request(req.Name)
	case "list", "status":
		resp.Volumes, err = d.list(req.Name)
	case "shutdown":
		d.Stop()
	default:
		err = fmt.Errorf("unknown request %q", req.Op)
	}
	if err != nil {
		resp.Error = err.Error()
		resp.NotConnected = errors.Is(err, ErrNotConnected)
	}
	return resp
}
