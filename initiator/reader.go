package initiator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hitkit/hitkit/iscsi"
)

// readLoop is the connection's only reader. It routes each PDU to its task;
// read data goes straight from the socket into the caller's buffer.
func (c *conn) readLoop() {
	defer close(c.done)
	defer c.s.connGone(c)
	var h iscsi.BHS
	for {
		_, err := c.fr.ReadHeader(&h)
		if err == nil {
			c.lastRecv.Store(time.Now().UnixNano())
			err = c.dispatch(&h)
		}
		if err != nil {
			c.close(err)
			if !errors.Is(c.closeErr, ErrClosed) && !c.loggedOut.Load() {
				c.log.WithError(c.closeErr).Info("connection lost")
			}
			return
		}
	}
}

func (c *conn) dispatch(h *iscsi.BHS) error {
	switch h.Opcode() {
	case iscsi.OpDataIn:
		return c.onDataIn(h)
	case iscsi.OpSCSIResponse:
		return c.onSCSIResponse(h)
	case iscsi.OpR2T:
		return c.onR2T(h)
	case iscsi.OpNopIn:
		return c.onNopIn(h)
	case iscsi.OpLogoutResp:
		// The target closes the connection next; that is no loss.
		c.loggedOut.Store(true)
		return c.onResponse(h)
	case iscsi.OpTextResp, iscsi.OpTaskMgmtResp:
		return c.onResponse(h)
	case iscsi.OpAsyncMessage:
		return c.onAsync(h)
	case iscsi.OpReject:
		return c.onReject(h)
	}
	return protocolErrorf("unexpected %v in full feature phase", h.Opcode())
}

func (c *conn) onDataIn(h *iscsi.BHS) error {
	var d iscsi.DataIn
	d.Unmarshal(h)
	t := c.s.lookup(d.InitiatorTaskTag, c, kindSCSI)
	if t == nil {
		// An aborted task's data may still be on the wire.
		return c.fr.DiscardData(h)
	}
	n := h.DataSegmentLength()
	buf := t.cmd.ReadBuf
	if d.DataSN != t.nextDataSN {
		return protocolErrorf("Data-In DataSN %d, expected %d (itt %#x)", d.DataSN, t.nextDataSN, d.InitiatorTaskTag)
	}
	if uint64(d.BufferOffset)+uint64(n) > uint64(len(buf)) {
		return protocolErrorf("Data-In of %d bytes at offset %d overruns a %d-byte read (itt %#x)", n, d.BufferOffset, len(buf), d.InitiatorTaskTag)
	}
	if err := c.fr.ReadData(h, buf[d.BufferOffset:int(d.BufferOffset)+n]); err != nil {
		return err
	}
	t.nextDataSN++
	if !d.HasStatus {
		c.s.updateWindow(d.ExpCmdSN, d.MaxCmdSN)
		return nil
	}
	c.ackStatSN(d.StatSN)
	t.result = Result{Status: d.Status, Residual: residual(d.Underflow, d.ResidualCount), Overflow: d.Overflow}
	c.s.finish(t, d.ExpCmdSN, d.MaxCmdSN)
	return nil
}

func residual(underflow bool, count uint32) int {
	if underflow {
		return int(count)
	}
	return 0
}

func (c *conn) onSCSIResponse(h *iscsi.BHS) error {
	var r iscsi.SCSIResponse
	r.Unmarshal(h)
	data, err := c.fr.ReadDataBuffer(h)
	if err != nil {
		return err
	}
	c.ackStatSN(r.StatSN)
	t := c.s.lookup(r.InitiatorTaskTag, c, kindSCSI)
	if t == nil {
		c.s.updateWindow(r.ExpCmdSN, r.MaxCmdSN)
		return nil
	}
	t.result = Result{Status: r.Status, Response: r.Response, Residual: residual(r.Underflow, r.ResidualCount), Overflow: r.Overflow}
	if len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		if n > len(data)-2 {
			return protocolErrorf("sense length %d exceeds the %d-byte data segment", n, len(data))
		}
		t.result.Sense = append([]byte(nil), data[2:2+n]...)
	}
	c.s.finish(t, r.ExpCmdSN, r.MaxCmdSN)
	return nil
}

func (c *conn) onR2T(h *iscsi.BHS) error {
	var r iscsi.R2T
	r.Unmarshal(h)
	c.s.updateWindow(r.ExpCmdSN, r.MaxCmdSN)
	t := c.s.lookup(r.InitiatorTaskTag, c, kindSCSI)
	if t == nil {
		return nil
	}
	end := uint64(r.BufferOffset) + uint64(r.DesiredDataTransferLength)
	if end > uint64(len(t.cmd.WriteBuf)) || r.DesiredDataTransferLength == 0 {
		return protocolErrorf("R2T for %d bytes at offset %d of a %d-byte write (itt %#x)", r.DesiredDataTransferLength, r.BufferOffset, len(t.cmd.WriteBuf), r.InitiatorTaskTag)
	}
	if r.DesiredDataTransferLength > c.params.MaxBurstLength && !c.warnedBurst.Swap(true) {
		// istgt does this. Answering costs nothing, as Data-Out PDUs stay
		// within MaxRecvDataSegmentLength; refusing would drop every write.
		c.log.Debugf("target asks for %d bytes in one R2T, more than MaxBurstLength %d; answering anyway",
			r.DesiredDataTransferLength, c.params.MaxBurstLength)
	}
	// Data-Out is sent from its own goroutine: the reader must keep reading,
	// or a target blocked on sending to us would never read our data.
	t.dataOut.Add(1)
	go func() {
		defer t.dataOut.Done()
		c.sendData(t, r.TargetTransferTag, int(r.BufferOffset), int(end))
	}()
	return nil
}

func (c *conn) onNopIn(h *iscsi.BHS) error {
	var n iscsi.NopIn
	n.Unmarshal(h)
	data, err := c.fr.ReadDataBuffer(h)
	if err != nil {
		return err
	}
	c.s.updateWindow(n.ExpCmdSN, n.MaxCmdSN)
	if n.InitiatorTaskTag != iscsi.ReservedTag {
		// The answer to a ping of ours: the keepalive's, or Session.Ping's.
		c.ackStatSN(n.StatSN)
		if !c.pingITT.CompareAndSwap(n.InitiatorTaskTag, iscsi.ReservedTag) {
			if t := c.s.lookup(n.InitiatorTaskTag, c, kindRequest); t != nil {
				t.resp = *h
				c.s.complete(t)
			}
		}
		return nil
	}
	if n.TargetTransferTag == iscsi.ReservedTag {
		return nil // a one-way ping: no answer wanted
	}
	// The target pings us: echo its tag and data from another goroutine,
	// for the same reason as Data-Out.
	echo := append([]byte(nil), data...)
	go c.write(&iscsi.NopOut{
		Immediate: true, LUN: n.LUN, InitiatorTaskTag: iscsi.ReservedTag,
		TargetTransferTag: n.TargetTransferTag, CmdSN: c.s.currentCmdSN(), ExpStatSN: c.expStatSN.Load(),
	}, echo)
	return nil
}

// onResponse completes a text, task management or logout request.
func (c *conn) onResponse(h *iscsi.BHS) error {
	data, err := c.fr.ReadDataBuffer(h)
	if err != nil {
		return err
	}
	sn := h.TargetSN()
	c.ackStatSN(sn.StatSN)
	c.s.updateWindow(sn.ExpCmdSN, sn.MaxCmdSN)
	t := c.s.lookup(h.InitiatorTaskTag(), c, kindRequest)
	if t == nil {
		return nil
	}
	t.resp = *h
	t.respData = append([]byte(nil), data...)
	c.s.complete(t)
	return nil
}

// readStatusData reads the data segment of a status-bearing PDU and
// applies its sequence numbers.
func (c *conn) readStatusData(h *iscsi.BHS, sn iscsi.TargetSN) ([]byte, error) {
	data, err := c.fr.ReadDataBuffer(h)
	if err != nil {
		return nil, err
	}
	c.ackStatSN(sn.StatSN)
	c.s.updateWindow(sn.ExpCmdSN, sn.MaxCmdSN)
	return data, nil
}

func (c *conn) onAsync(h *iscsi.BHS) error {
	var a iscsi.AsyncMessage
	a.Unmarshal(h)
	data, err := c.readStatusData(h, a.TargetSN)
	if err != nil {
		return err
	}
	ev := Event{Session: c.s}
	switch a.Event {
	case iscsi.AsyncSCSIEvent:
		ev.Kind = EventSCSI
		if len(data) >= 2 {
			n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
			ev.Sense = append([]byte(nil), data[2:2+n]...)
		}
	case iscsi.AsyncLogoutRequest:
		ev.Kind, ev.Within = EventLogoutRequested, time.Duration(a.Parameter3)*time.Second
	case iscsi.AsyncConnectionDrop:
		ev.Kind, ev.Within = EventConnectionDropping, time.Duration(a.Parameter2)*time.Second
	case iscsi.AsyncSessionDrop:
		ev.Kind, ev.Within = EventSessionDropping, time.Duration(a.Parameter2)*time.Second
	case iscsi.AsyncParameterNegotiate:
		ev.Kind = EventRenegotiate
	case iscsi.AsyncVendor:
		ev.Kind = EventVendor
	default:
		c.log.Warnf("ignoring unknown async event %d", a.Event)
		return nil
	}
	c.s.deliver(c, ev)
	return nil
}

func (c *conn) onReject(h *iscsi.BHS) error {
	var r iscsi.Reject
	r.Unmarshal(h)
	data, err := c.readStatusData(h, r.TargetSN)
	if err != nil {
		return err
	}
	if len(data) < iscsi.BHSSize {
		return protocolErrorf("Reject (reason %#x) without the rejected header", r.Reason)
	}
	var rejected iscsi.BHS
	copy(rejected[:], data)
	reason := fmt.Errorf("target rejected a %v: reason %#x", rejected.Opcode(), r.Reason)
	c.log.WithError(reason).Warn("PDU rejected")
	if r.Reason == iscsi.RejectDataDigest {
		// At ErrorRecoveryLevel 0 a corrupted PDU means starting over.
		return reason
	}
	itt := rejected.InitiatorTaskTag()
	if t := c.s.lookup(itt, c, kindSCSI); t != nil {
		t.err = &ProtocolError{reason.Error()}
		c.s.complete(t)
	} else if t := c.s.lookup(itt, c, kindRequest); t != nil {
		t.err = &ProtocolError{reason.Error()}
		c.s.complete(t)
	}
	return nil
}

// sendData answers an R2T (or sends unsolicited data) for WriteBuf[from:to],
// in PDUs no larger than the target's MaxRecvDataSegmentLength.
func (c *conn) sendData(t *task, ttt uint32, from, to int) {
	seg := int(c.params.TargetMaxRecvDSL)
	var dataSN uint32
	for off := from; off < to; off += seg {
		end := min(off+seg, to)
		err := c.write(&iscsi.DataOut{
			Final: end == to, LUN: t.cmd.LUN, InitiatorTaskTag: t.itt, TargetTransferTag: ttt,
			ExpStatSN: c.expStatSN.Load(), DataSN: dataSN, BufferOffset: uint32(off),
		}, t.cmd.WriteBuf[off:end])
		if err != nil {
			return // the connection is gone; the task will be retried
		}
		dataSN++
	}
}
