package array

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The control socket, DIR/control.sock, is how `hitkit lab status`,
// `lab fault` and `lab down` reach a running group. It is a unix socket
// with mode 0600 in a 0700 directory, so only the group's owner may use
// it. The protocol is JSON: one request and one response per connection,
// each a single object on one line.
//
//	{"op":"ping"}                              {"ok":true}
//	{"op":"status"}                            {"ok":true,"status":{...}}        see Status
//	{"op":"fault","fault":{"kind":"port-down","port":"127.0.10.11:3260"}}
//	                                           {"ok":true,"message":"port-down on 127.0.10.11:3260"}
//	{"op":"down"}                              {"ok":true,"message":"stopping"}  then the group stops
//
// A failure is {"ok":false,"error":"one line saying what is wrong"}.

// ControlRequest is a request on the control socket.
type ControlRequest struct {
	Op    string        `json:"op"`
	Fault *FaultRequest `json:"fault,omitempty"`
}

// ControlResponse is the answer to a ControlRequest.
type ControlResponse struct {
	OK      bool    `json:"ok"`
	Error   string  `json:"error,omitempty"`
	Message string  `json:"message,omitempty"`
	Status  *Status `json:"status,omitempty"`
}

// Control operations.
const (
	OpPing   = "ping"
	OpStatus = "status"
	OpFault  = "fault"
	OpDown   = "down"
)

// controlTimeout bounds one exchange, so that a stuck client cannot hold
// a handler forever.
const controlTimeout = 30 * time.Second

// maxControlRequest bounds a request's size.
const maxControlRequest = 64 << 10

// ControlSocket is where a group in dir listens for control requests.
func ControlSocket(dir string) string { return filepath.Join(dir, "control.sock") }

type controlServer struct {
	g    *Group
	path string
	ln   net.Listener
	wg   sync.WaitGroup
}

// listenControl listens on DIR/control.sock, replacing a socket left
// behind by a group that died (Open has checked that none answers).
func listenControl(g *Group) (*controlServer, error) {
	path := ControlSocket(g.dir)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	s := &controlServer{g: g, path: path, ln: ln}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *controlServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// handle answers one request.
func (s *controlServer) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(controlTimeout))
	var req ControlRequest
	line, err := bufio.NewReader(io.LimitReader(c, maxControlRequest)).ReadBytes('\n')
	if err == nil || len(line) > 0 {
		err = json.Unmarshal(line, &req)
	}
	var resp ControlResponse
	if err != nil {
		resp.Error = "malformed control request: " + err.Error()
	} else {
		resp = s.answer(req)
	}
	b, _ := json.Marshal(resp)
	c.Write(append(b, '\n'))
	if req.Op == OpDown && resp.OK {
		// Stop after answering; Close waits for this handler, so it
		// must run on its own goroutine.
		go s.g.Close()
	}
}

func (s *controlServer) answer(req ControlRequest) ControlResponse {
	switch req.Op {
	case OpPing:
		return ControlResponse{OK: true}
	case OpStatus:
		st := s.g.Status()
		return ControlResponse{OK: true, Status: &st}
	case OpFault:
		if req.Fault == nil {
			return ControlResponse{Error: "a fault request needs a fault"}
		}
		msg, err := s.g.Inject(*req.Fault)
		if err != nil {
			return ControlResponse{Error: err.Error(), Message: msg}
		}
		return ControlResponse{OK: true, Message: msg}
	case OpDown:
		s.g.log.Info("stopping on request from the control socket")
		return ControlResponse{OK: true, Message: "stopping"}
	}
	return ControlResponse{Error: fmt.Sprintf("unknown operation %q", req.Op)}
}

// Close stops listening, waits for the requests in progress, and removes
// the socket.
func (s *controlServer) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	os.Remove(s.path)
	return err
}
