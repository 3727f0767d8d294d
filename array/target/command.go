package target

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/scsi"
	"github.com/sirupsen/logrus"
)

// ahsExtendedCDB is the AHS type that carries CDB bytes beyond 16.
const ahsExtendedCDB = 1

// taskState is where a task is in its life.
type taskState int

const (
	taskGathering  taskState = iota // waiting for Data-Out
	taskRunning                     // in Unit.Execute
	taskResponding                  // its response is on the way
)

// task is one SCSI command, from its arrival to its response.
type task struct {
	itt       uint32
	lunField  uint64 // as sent
	lun       uint16
	lunValid  bool
	cdb       []byte
	read      bool
	write     bool
	edtl      uint32
	holdsSlot bool // a CmdSN window slot, freed when the response goes out
	ctx       context.Context
	cancel    context.CancelFunc
	arrived   time.Time // when the command PDU came in, for the latency

	// Write data, gathered by the reader goroutine alone (dataout.go).
	data     []byte
	received uint32
	unsol    *sequence   // the unsolicited burst, while expected
	r2ts     []*sequence // outstanding R2Ts
	r2tNext  uint32      // buffer offset of the next R2T
	r2tSN    uint32

	// Guarded by session.mu.
	state     taskState
	aborted   bool
	forgotten bool
	done      chan struct{} // closed once the task is forgotten
}

// handleCommand takes in a SCSI Command PDU: it checks the CmdSN window,
// reads any immediate data, and either runs the command or asks for the
// rest of its data.
func (c *conn) handleCommand(h *iscsi.BHS, ahs []byte) error {
	s := c.sess
	if s.discovery() {
		return c.rejectAndDiscard(h, iscsi.RejectProtocolError)
	}
	var cmd iscsi.SCSICommand
	cmd.Unmarshal(h)
	if !s.admit(cmd.CmdSN, cmd.Immediate, true) {
		return c.fr.DiscardData(h)
	}
	s.commands.Add(1)
	t := c.newTask(&cmd, ahs)
	if reason, bad := c.badCommand(t, h.DataSegmentLength()); bad {
		c.log.WithFields(logrus.Fields{"itt": t.itt, "reason": reason}).Warn("rejecting a SCSI command")
		if t.holdsSlot {
			s.release()
		}
		t.cancel()
		return c.rejectAndDiscard(h, rejectReason(reason))
	}
	if t.write && int64(t.edtl) > int64(c.srv.cfg.MaxTransfer) {
		if err := c.fr.DiscardData(h); err != nil {
			return err
		}
		c.track(t)
		c.finishEarly(t, checkCondition(scsi.KeyIllegalRequest, 0x24, 0x00))
		return nil
	}
	n := h.DataSegmentLength()
	if t.write {
		t.data = getBuffer(int(t.edtl))
		if err := c.fr.ReadData(h, t.data[:n]); err != nil {
			putBuffer(t.data)
			return err
		}
		t.received = uint32(n)
		s.bytesIn.Add(uint64(n))
	}
	c.track(t)
	if t.write && t.received < t.edtl {
		return c.startDataOut(t, &cmd, uint32(n))
	}
	c.run(t)
	return nil
}

func (c *conn) newTask(cmd *iscsi.SCSICommand, ahs []byte) *task {
	ctx, cancel := context.WithCancel(c.ctx)
	lun, ok := decodeLUN(cmd.LUN)
	t := &task{
		itt: cmd.InitiatorTaskTag, lunField: cmd.LUN, lun: lun, lunValid: ok,
		read: cmd.Read, write: cmd.Write, edtl: cmd.ExpectedDataTransferLength,
		holdsSlot: !cmd.Immediate, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		arrived: time.Now(),
	}
	t.cdb = append(make([]byte, 0, 16), cmd.CDB[:]...)
	if ext := extendedCDB(ahs); ext != nil {
		t.cdb = append(t.cdb, ext...)
	}
	return t
}

// extendedCDB finds the CDB bytes beyond 16 in the AHS, if any.
func extendedCDB(ahs []byte) []byte {
	for len(ahs) >= 4 {
		n := int(binary.BigEndian.Uint16(ahs))
		end := 3 + n
		if end > len(ahs) {
			return nil
		}
		if ahs[2] == ahsExtendedCDB && n > 1 {
			return ahs[4:end]
		}
		ahs = ahs[(end+3)&^3:]
	}
	return nil
}

// Why a SCSI command is refused outright.
const (
	badTagInUse       = "initiator task tag already in use"
	badImmediateData  = "immediate data not allowed"
	badDataTooLong    = "more data than ExpectedDataTransferLength or FirstBurstLength"
	badDataNotAWrite  = "data with a command that does not write"
	badReservedTagITT = "the reserved tag as initiator task tag"
)

func (c *conn) badCommand(t *task, n int) (string, bool) {
	p := &c.sess.params
	switch {
	case t.itt == iscsi.ReservedTag:
		return badReservedTagITT, true
	case c.sess.hasTask(t.itt):
		return badTagInUse, true
	case n > 0 && !t.write:
		return badDataNotAWrite, true
	case n > 0 && !p.ImmediateData:
		return badImmediateData, true
	case uint32(n) > t.edtl || uint32(n) > p.FirstBurstLength:
		return badDataTooLong, true
	}
	return "", false
}

func rejectReason(bad string) uint8 {
	if bad == badTagInUse {
		return iscsi.RejectTaskInProgress
	}
	return iscsi.RejectProtocolError
}

func (s *session) hasTask(itt uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tasks[itt]
	return ok
}

// track makes t known to the session, for Data-Out and task management.
func (c *conn) track(t *task) {
	s := c.sess
	s.mu.Lock()
	s.tasks[t.itt] = t
	s.mu.Unlock()
}

// run hands a task whose data is all there to its own goroutine.
func (c *conn) run(t *task) {
	s := c.sess
	s.mu.Lock()
	if t.aborted {
		s.mu.Unlock()
		return // task management got there first and has forgotten it
	}
	t.state = taskRunning
	s.mu.Unlock()
	c.tasks.Add(1)
	go c.execute(t)
}

func (c *conn) execute(t *task) {
	defer c.tasks.Done()
	c.complete(t, c.executeUnit(t))
}

// executeUnit runs the command: the engine answers REPORT LUNS and
// commands to absent LUNs, the unit everything else.
func (c *conn) executeUnit(t *task) (resp Response) {
	defer func() {
		if r := recover(); r != nil {
			c.log.WithFields(logrus.Fields{"itt": t.itt, "panic": r}).Error("logical unit panicked")
			resp = checkCondition(scsi.KeyHardwareError, 0x44, 0x00) // internal target failure
		}
	}()
	tgt := c.sess.target
	if t.cdb[0] == scsi.OpReportLuns {
		return reportLuns(tgt, t.cdb)
	}
	u, ok := tgt.Unit(t.lun)
	if !t.lunValid || !ok {
		return noSuchLUN(t.cdb)
	}
	req := &Request{Nexus: c.sess.nexus, LUN: uint64(t.lun), CDB: t.cdb}
	if t.write {
		req.DataOut = t.data[:t.received]
	}
	if t.read {
		req.ExpectedDataIn = t.edtl
	}
	return u.Execute(t.ctx, req)
}

// complete answers a task, unless task management aborted it meanwhile,
// and recycles its write buffer: the unit is done with it.
func (c *conn) complete(t *task, r Response) {
	s := c.sess
	defer c.recycle(t)
	s.mu.Lock()
	if t.aborted {
		s.mu.Unlock()
		s.forget(t)
		return
	}
	t.state = taskResponding
	if t.holdsSlot {
		// Free the slot first, so that the response itself opens the window.
		t.holdsSlot = false
		s.outstanding--
	}
	s.mu.Unlock()
	c.respond(t, r)
	s.forget(t)
}

func (c *conn) recycle(t *task) {
	if t.data != nil {
		putBuffer(t.data)
		t.data = nil
	}
}

// finishEarly answers a task that never reached its unit. Only the
// reader calls it, for a task still gathering data.
func (c *conn) finishEarly(t *task, r Response) {
	s := c.sess
	s.mu.Lock()
	if t.aborted {
		s.mu.Unlock()
		return
	}
	t.state = taskRunning
	s.mu.Unlock()
	c.complete(t, r)
}

// forget drops a finished or aborted task, once.
func (s *session) forget(t *task) {
	s.mu.Lock()
	if t.forgotten {
		s.mu.Unlock()
		return
	}
	t.forgotten = true
	if s.tasks[t.itt] == t {
		delete(s.tasks, t.itt)
	}
	if t.holdsSlot {
		t.holdsSlot = false
		s.outstanding--
	}
	s.mu.Unlock()
	t.cancel()
	close(t.done)
}

// respond sends the task's read data and status: Data-In PDUs of at most
// the initiator's MaxRecvDataSegmentLength, the last one carrying the
// status when there is no sense to send (phase collapse), else a SCSI
// Response.
func (c *conn) respond(t *task, r Response) {
	c.delay()
	res := residualOf(t, &r)
	data := r.DataIn
	if !t.read {
		data = nil
	} else if uint32(len(data)) > t.edtl {
		data = data[:t.edtl]
	}
	collapse := len(data) > 0 && len(r.Sense) == 0 &&
		(r.Status == scsi.StatusGood || r.Status == scsi.StatusConditionMet)
	c.lockWrite()
	dataSN, err := c.sendDataIn(t, data, r.Status, res, collapse)
	if err == nil && !collapse {
		err = c.sendSCSIResponse(t, r, res, dataSN)
	}
	c.unlockWrite(err)
	c.sess.bytesOut.Add(uint64(len(data)))
	c.sess.commandNanos.Add(uint64(time.Since(t.arrived)))
}

// residual is what a response reports about ExpectedDataTransferLength.
type residual struct {
	overflow, underflow bool
	count               uint32
}

func residualOf(t *task, r *Response) residual {
	var actual uint32
	switch {
	case t.read:
		actual = uint32(min(len(r.DataIn), 1<<32-1))
	case t.write && r.DataOutLength > 0:
		actual = r.DataOutLength
	case t.write:
		return residual{}
	}
	switch {
	case actual > t.edtl:
		return residual{overflow: true, count: actual - t.edtl}
	case actual < t.edtl:
		return residual{underflow: true, count: t.edtl - actual}
	}
	return residual{}
}

// sendDataIn writes data as Data-In PDUs, ending a sequence every
// MaxBurstLength bytes. The write lock is held. It returns the number of
// PDUs sent, the next DataSN.
func (c *conn) sendDataIn(t *task, data []byte, status uint8, res residual, collapse bool) (uint32, error) {
	p := &c.sess.params
	maxSeg, burst := int(p.InitiatorMaxRecvDSL), int(p.MaxBurstLength)
	var dataSN uint32
	for off := 0; off < len(data); dataSN++ {
		n := min(maxSeg, len(data)-off, burst-off%burst)
		last := off+n == len(data)
		d := iscsi.DataIn{
			Final: last || (off+n)%burst == 0, LUN: t.lunField, InitiatorTaskTag: t.itt,
			TargetTransferTag: iscsi.ReservedTag, DataSN: dataSN, BufferOffset: uint32(off),
		}
		if last && collapse {
			d.HasStatus, d.Status = true, status
			d.Overflow, d.Underflow, d.ResidualCount = res.overflow, res.underflow, res.count
		}
		d.Marshal(&c.wbhs)
		if err := c.sendLocked(data[off:off+n], d.HasStatus); err != nil {
			return dataSN, err
		}
		off += n
	}
	return dataSN, nil
}

// sendSCSIResponse writes the status PDU; the write lock is held.
func (c *conn) sendSCSIResponse(t *task, r Response, res residual, dataSN uint32) error {
	resp := iscsi.SCSIResponse{
		Response: iscsi.RespCommandCompleted, Status: r.Status, InitiatorTaskTag: t.itt,
		ExpDataSN: dataSN, Overflow: res.overflow, Underflow: res.underflow, ResidualCount: res.count,
	}
	var sense []byte
	if len(r.Sense) > 0 {
		sense = make([]byte, 2+len(r.Sense))
		binary.BigEndian.PutUint16(sense, uint16(len(r.Sense)))
		copy(sense[2:], r.Sense)
	}
	resp.Marshal(&c.wbhs)
	return c.sendLocked(sense, true)
}

func checkCondition(key scsi.SenseKey, asc, ascq uint8) Response {
	return Response{Status: scsi.StatusCheckCondition, Sense: scsi.FixedSense(key, asc, ascq)}
}

// decodeLUN reads a single-level LUN in peripheral or flat space
// addressing; anything else addresses a unit this target does not have.
func decodeLUN(v uint64) (uint16, bool) {
	if v&0x0000_ffff_ffff_ffff != 0 {
		return 0, false
	}
	switch v >> 62 {
	case 0: // peripheral device addressing: bus 0 only
		if (v>>56)&0x3f != 0 {
			return 0, false
		}
		return uint16(v>>48) & 0xff, true
	case 1: // flat space
		return uint16(v>>48) & 0x3fff, true
	}
	return 0, false
}
