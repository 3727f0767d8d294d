package initiator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hitkit/hitkit/iscsi"
)

// errNoWindow sends a command back to wait for the window: the window or
// the connection changed between waitReady and taking the write lock.
var errNoWindow = errors.New("command window closed")

// Execute runs one SCSI command and returns the target's result. A CHECK
// CONDITION is a Result, not an error; errors are transport failures. If
// the connection is lost, the command is sent again once the session has
// recovered. If ctx ends first, the command is aborted, and its buffers are
// no longer touched when Execute returns.
func (s *Session) Execute(ctx context.Context, cmd Command) (Result, error) {
	t := getTask(kindSCSI, cmd)
	defer putTask(t)
	s.register(t)
	for {
		c, err := s.waitReady(ctx, true)
		if err != nil {
			s.forget(t)
			return Result{}, err
		}
		if err := c.sendCommand(t); err == errNoWindow {
			continue
		}
		select {
		case w := <-t.wake:
			if w == wakeDone {
				return t.result, t.err
			}
		case <-ctx.Done():
			return Result{}, s.cancel(t)
		}
	}
}

// sendCommand assigns the next CmdSN and sends the command with its
// immediate and unsolicited data. CmdSN is assigned under the write lock so
// that commands leave in CmdSN order.
func (c *conn) sendCommand(t *task) error {
	s := c.s
	c.lockWriter()
	s.mu.Lock()
	if s.conn != c || s.state != stateLoggedIn || !s.windowOpenLocked() {
		s.mu.Unlock()
		c.unlockWriter(nil)
		return errNoWindow
	}
	t.cmdSN = s.cmdSN
	s.cmdSN++
	t.conn = c
	t.resetProgress()
	s.mu.Unlock()

	cmd := &t.cmd
	hdr := iscsi.SCSICommand{
		Final: true, Read: cmd.ReadBuf != nil, Write: cmd.WriteBuf != nil, Attr: cmd.Attr,
		LUN: cmd.LUN, InitiatorTaskTag: t.itt, CmdSN: t.cmdSN, ExpStatSN: c.expStatSN.Load(),
		ExpectedDataTransferLength: uint32(len(cmd.ReadBuf) + len(cmd.WriteBuf)),
	}
	if hdr.Attr == iscsi.AttrUntagged {
		hdr.Attr = iscsi.AttrSimple
	}
	copy(hdr.CDB[:], cmd.CDB.Bytes())
	immediate, unsolicited := c.unsolicitedSplit(len(cmd.WriteBuf))
	if unsolicited > immediate {
		hdr.Final = false // Data-Out PDUs follow
	}
	// Marshalled here rather than through writeLocked, whose interface
	// argument would move hdr to the heap on every command.
	hdr.Marshal(&c.wbhs)
	err := c.unlockWriter(c.fr.WritePDU(&c.wbhs, nil, cmd.WriteBuf[:immediate]))
	if err == nil && unsolicited > immediate {
		t.dataOut.Add(1)
		go func() {
			defer t.dataOut.Done()
			c.sendData(t, iscsi.ReservedTag, immediate, unsolicited)
		}()
	}
	return err
}

// unsolicitedSplit says how much of an n-byte write goes in the command PDU
// itself, and how much is sent before any R2T (RFC 7143 section 4.2.5.2).
func (c *conn) unsolicitedSplit(n int) (immediate, unsolicited int) {
	p := c.params
	if !p.InitialR2T || p.ImmediateData {
		unsolicited = min(n, int(p.FirstBurstLength))
	}
	if p.ImmediateData {
		immediate = min(unsolicited, int(p.TargetMaxRecvDSL))
	}
	if p.InitialR2T {
		unsolicited = immediate
	}
	return immediate, unsolicited
}

// cancel aborts a command whose caller gave up. It returns only when the
// target can no longer write into the command's buffers: after the target
// confirmed the abort, or after the connection was dropped.
func (s *Session) cancel(t *task) error {
	s.mu.Lock()
	c := t.conn
	s.mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.NopTimeout)
		err := s.abortTask(ctx, c, t)
		cancel()
		if err != nil {
			c.close(err)
			<-c.done
		}
	}
	s.forget(t)
	return context.Canceled
}

// abortTask sends ABORT TASK for t on c and waits for the answer. The
// target sends it after the last PDU of the aborted task, and the reader
// handles PDUs in order, so once it is back the task is quiet.
func (s *Session) abortTask(ctx context.Context, c *conn, t *task) error {
	tmf := &iscsi.TaskMgmtRequest{
		Immediate: true, Function: iscsi.TMFAbortTask, LUN: t.cmd.LUN,
		ReferencedTaskTag: t.itt, RefCmdSN: t.cmdSN,
	}
	_, err := s.taskMgmt(ctx, c, tmf)
	return err
}

// request sends a non-SCSI request (text, task management, logout) on c
// and waits for its answer. The request is immediate: it carries the
// current CmdSN without taking a slot in the window.
func (s *Session) request(ctx context.Context, c *conn, hdr requestHeader, data []byte) (*iscsi.BHS, []byte, error) {
	t := getTask(kindRequest, Command{})
	defer putTask(t)
	s.mu.Lock()
	t.itt = s.allocITTLocked()
	s.tasks[t.itt] = t
	t.conn = c
	cmdSN := s.cmdSN
	s.mu.Unlock()
	hdr.setTags(t.itt, cmdSN, c.expStatSN.Load())
	if err := c.write(hdr, data); err != nil {
		s.forget(t)
		return nil, nil, err
	}
	select {
	case w := <-t.wake:
		if w == wakeRetry {
			return nil, nil, ErrConnectionLost
		}
		if t.err != nil {
			return nil, nil, t.err
		}
		resp := t.resp
		return &resp, t.respData, nil
	case <-ctx.Done():
		s.forget(t)
		return nil, nil, ctx.Err()
	}
}

// requestHeader is a request PDU that request can fill in.
type requestHeader interface {
	iscsi.Header
	setTags(itt, cmdSN, expStatSN uint32)
}

type taskMgmtReq struct{ *iscsi.TaskMgmtRequest }

func (r taskMgmtReq) setTags(itt, cmdSN, expStatSN uint32) {
	r.InitiatorTaskTag, r.CmdSN, r.ExpStatSN = itt, cmdSN, expStatSN
}

type textReq struct{ *iscsi.TextRequest }

func (r textReq) setTags(itt, cmdSN, expStatSN uint32) {
	r.InitiatorTaskTag, r.CmdSN, r.ExpStatSN = itt, cmdSN, expStatSN
}

type logoutReq struct{ *iscsi.LogoutRequest }

func (r logoutReq) setTags(itt, cmdSN, expStatSN uint32) {
	r.InitiatorTaskTag, r.CmdSN, r.ExpStatSN = itt, cmdSN, expStatSN
}

// TMFError is a task management function the target did not complete.
type TMFError struct {
	Function iscsi.TMFunction
	Response uint8
}

func (e *TMFError) Error() string {
	return "task management function " + tmfName(e.Function) + " failed: " + tmfResponse(e.Response)
}

func tmfName(f iscsi.TMFunction) string {
	switch f {
	case iscsi.TMFAbortTask:
		return "ABORT TASK"
	case iscsi.TMFLogicalUnitReset:
		return "LOGICAL UNIT RESET"
	}
	return "TMF"
}

func tmfResponse(r uint8) string {
	switch r {
	case iscsi.TMFTaskNotExist:
		return "task does not exist"
	case iscsi.TMFLUNNotExist:
		return "LUN does not exist"
	case iscsi.TMFNotSupported:
		return "not supported"
	case iscsi.TMFAuthorizationFailed:
		return "not authorized"
	case iscsi.TMFRejected:
		return "rejected"
	}
	return fmt.Sprintf("response %d", r)
}

func (s *Session) taskMgmt(ctx context.Context, c *conn, tmf *iscsi.TaskMgmtRequest) (uint8, error) {
	h, _, err := s.request(ctx, c, taskMgmtReq{tmf}, nil)
	if err != nil {
		return 0, err
	}
	var resp iscsi.TaskMgmtResponse
	resp.Unmarshal(h)
	// An abort of a task that already finished is a success for our purpose.
	if resp.Response == iscsi.TMFComplete || tmf.Function == iscsi.TMFAbortTask && resp.Response == iscsi.TMFTaskNotExist {
		return resp.Response, nil
	}
	return resp.Response, &TMFError{Function: tmf.Function, Response: resp.Response}
}

// LogicalUnitReset resets a logical unit: the target aborts every task on it.
func (s *Session) LogicalUnitReset(ctx context.Context, lun uint64) error {
	c, err := s.waitReady(ctx, false)
	if err != nil {
		return err
	}
	_, err = s.taskMgmt(ctx, c, &iscsi.TaskMgmtRequest{Immediate: true, Function: iscsi.TMFLogicalUnitReset, LUN: lun, ReferencedTaskTag: iscsi.ReservedTag})
	return err
}

// Ping sends a NOP-Out and waits for the answer, to check the path end to
// end. It returns the round-trip time.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	c, err := s.waitReady(ctx, false)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, _, err := s.request(ctx, c, nopReq{&iscsi.NopOut{Immediate: true, TargetTransferTag: iscsi.ReservedTag}}, nil); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

type nopReq struct{ *iscsi.NopOut }

func (r nopReq) setTags(itt, cmdSN, expStatSN uint32) {
	r.InitiatorTaskTag, r.CmdSN, r.ExpStatSN = itt, cmdSN, expStatSN
}
