package target

import (
	"errors"
	"time"

	"github.com/hitkit/hitkit/iscsi"
)

var errNopTimeout = errors.New("initiator stopped answering NOP-In pings")

// handleNopOut answers a ping with a NOP-In echoing its data. A NOP-Out
// with the reserved ITT is an answer to our own ping, and gets none.
func (c *conn) handleNopOut(h *iscsi.BHS) error {
	var n iscsi.NopOut
	n.Unmarshal(h)
	data, err := c.fr.ReadDataBuffer(h)
	if err != nil {
		return err
	}
	if n.InitiatorTaskTag == iscsi.ReservedTag {
		c.ping.CompareAndSwap(n.TargetTransferTag, iscsi.ReservedTag)
		return nil
	}
	if n.TargetTransferTag != iscsi.ReservedTag {
		c.reject(h, iscsi.RejectInvalidPDUField)
		return nil
	}
	if !c.sess.admit(n.CmdSN, n.Immediate, false) {
		return nil
	}
	if max := int(c.sess.params.InitiatorMaxRecvDSL); len(data) > max {
		data = data[:max]
	}
	c.delay()
	// write copies data into the Framer's buffer before the next read
	// reuses it.
	return c.write(&iscsi.NopIn{
		LUN: n.LUN, InitiatorTaskTag: n.InitiatorTaskTag, TargetTransferTag: iscsi.ReservedTag,
	}, data, true)
}

// keepalive pings an idle connection and drops it when the ping goes
// unanswered: that is how a target notices an initiator that vanished
// without closing TCP.
func (c *conn) keepalive() {
	defer c.tasks.Done()
	interval, timeout := c.srv.cfg.NopInterval, c.srv.cfg.NopTimeout
	tick := time.NewTicker(max(interval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-tick.C:
			if c.portal.blackholed() {
				// A blackhole keeps connections open, silently.
				c.lastRecv.Store(now.UnixNano())
				c.ping.Store(iscsi.ReservedTag)
				continue
			}
			if !c.checkPing(now, interval, timeout) {
				c.log.Warn("initiator stopped answering pings; dropping the connection")
				c.close(errNopTimeout)
				return
			}
		}
	}
}

// checkPing sends a ping when due, and reports false when the last one
// timed out. Any PDU that arrived since the ping proves the initiator alive.
func (c *conn) checkPing(now time.Time, interval, timeout time.Duration) bool {
	lastRecv := time.Unix(0, c.lastRecv.Load())
	if c.ping.Load() != iscsi.ReservedTag {
		sent := time.Unix(0, c.pingSent.Load())
		if lastRecv.After(sent) {
			c.ping.Store(iscsi.ReservedTag)
		} else if now.Sub(sent) > timeout {
			return false
		}
		return true
	}
	if now.Sub(lastRecv) > interval {
		ttt := c.newTTT()
		c.pingSent.Store(now.UnixNano())
		c.ping.Store(ttt)
		c.write(&iscsi.NopIn{InitiatorTaskTag: iscsi.ReservedTag, TargetTransferTag: ttt}, nil, false)
	}
	return true
}
