package target

import (
	"fmt"
	"slices"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/scsi"
	"github.com/sirupsen/logrus"
)

// sequence is one expected run of Data-Out PDUs: the unsolicited burst
// (TTT 0xffffffff), or the answer to one R2T. With DataPDUInOrder and
// DataSequenceInOrder, which the engine always negotiates, offsets and
// DataSNs arrive in order.
type sequence struct {
	ttt    uint32
	next   uint32 // next buffer offset expected
	end    uint32
	dataSN uint32 // next DataSN expected
}

// startDataOut sets up the rest of a write after its command PDU: the
// unsolicited burst the initiator may send (InitialR2T=No), and R2Ts for
// what lies beyond it.
func (c *conn) startDataOut(t *task, cmd *iscsi.SCSICommand, immediate uint32) error {
	p := &c.sess.params
	unsolEnd := immediate
	if !p.InitialR2T && !cmd.Final {
		unsolEnd = max(immediate, min(p.FirstBurstLength, t.edtl))
	}
	if unsolEnd > immediate {
		t.unsol = &sequence{ttt: iscsi.ReservedTag, next: immediate, end: unsolEnd}
	}
	t.r2tNext = unsolEnd
	return c.sendR2Ts(t)
}

// sendR2Ts asks for more data, keeping at most MaxOutstandingR2T requests
// of at most MaxBurstLength bytes each in flight.
func (c *conn) sendR2Ts(t *task) error {
	p := &c.sess.params
	for t.r2tNext < t.edtl && uint32(len(t.r2ts)) < p.MaxOutstandingR2T {
		n := min(p.MaxBurstLength, t.edtl-t.r2tNext)
		q := &sequence{ttt: c.newTTT(), next: t.r2tNext, end: t.r2tNext + n}
		t.r2ts = append(t.r2ts, q)
		r := iscsi.R2T{
			LUN: t.lunField, InitiatorTaskTag: t.itt, TargetTransferTag: q.ttt, R2TSN: t.r2tSN,
			BufferOffset: t.r2tNext, DesiredDataTransferLength: n,
		}
		t.r2tSN++
		t.r2tNext += n
		c.lockWrite()
		r.Marshal(&c.wbhs)
		if err := c.unlockWrite(c.sendLocked(nil, false)); err != nil {
			return err
		}
	}
	return nil
}

// handleDataOut lands write data straight in the task's buffer.
func (c *conn) handleDataOut(h *iscsi.BHS) error {
	var d iscsi.DataOut
	d.Unmarshal(h)
	t := c.sess.gathering(d.InitiatorTaskTag)
	if t == nil {
		// The task ended (or was aborted) meanwhile; its late data goes.
		return c.fr.DiscardData(h)
	}
	n := uint32(h.DataSegmentLength())
	q := t.sequenceFor(d.TargetTransferTag)
	if reason := q.check(&d, n); reason != "" {
		if err := c.fr.DiscardData(h); err != nil {
			return err
		}
		c.failDataOut(t, reason)
		return nil
	}
	if err := c.fr.ReadData(h, t.data[d.BufferOffset:d.BufferOffset+n]); err != nil {
		return err
	}
	q.next += n
	q.dataSN++
	t.received += n
	c.sess.bytesIn.Add(uint64(n))
	if q.next == q.end {
		t.retire(q)
		if err := c.sendR2Ts(t); err != nil {
			return err
		}
	} else if d.Final {
		c.failDataOut(t, fmt.Sprintf("sequence ended at offset %d of %d", q.next, q.end))
		return nil
	}
	if t.received == t.edtl {
		c.run(t)
	}
	return nil
}

// failDataOut ends a write whose data broke the rules; at
// ErrorRecoveryLevel 0 there is no asking again.
func (c *conn) failDataOut(t *task, reason string) {
	c.log.WithFields(logrus.Fields{"itt": t.itt, "reason": reason}).Warn("bad Data-Out; failing the command")
	c.finishEarly(t, checkCondition(scsi.KeyAbortedCommand, 0x4b, 0x00)) // data phase error
}

// gathering returns the task with itt if it still waits for data.
func (s *session) gathering(itt uint32) *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tasks[itt]; ok && t.state == taskGathering {
		return t
	}
	return nil
}

func (t *task) sequenceFor(ttt uint32) *sequence {
	if ttt == iscsi.ReservedTag {
		return t.unsol
	}
	for _, q := range t.r2ts {
		if q.ttt == ttt {
			return q
		}
	}
	return nil
}

// retire forgets a sequence that has all its data.
func (t *task) retire(q *sequence) {
	if q == t.unsol {
		t.unsol = nil
		return
	}
	t.r2ts = slices.DeleteFunc(t.r2ts, func(x *sequence) bool { return x == q })
}

// check says what is wrong with a Data-Out PDU for q, or "".
func (q *sequence) check(d *iscsi.DataOut, n uint32) string {
	switch {
	case q == nil:
		return fmt.Sprintf("Data-Out with TTT 0x%x matches no R2T or unsolicited burst", d.TargetTransferTag)
	case d.DataSN != q.dataSN:
		return fmt.Sprintf("DataSN %d where %d was due", d.DataSN, q.dataSN)
	case d.BufferOffset != q.next:
		return fmt.Sprintf("buffer offset %d where %d was due", d.BufferOffset, q.next)
	case n > q.end-q.next:
		return fmt.Sprintf("%d bytes where at most %d were asked for", n, q.end-q.next)
	}
	return ""
}
