package target

import (
	"github.com/hitkit/hitkit/iscsi"
)

// textState is a text exchange in progress on a connection: the
// initiator's request arriving over several PDUs (its C bit), or our
// answer leaving over several (ours).
type textState struct {
	acc     iscsi.TextAccumulator
	itt     uint32
	ttt     uint32 // of the answer being sent; ReservedTag when none
	pending []byte // what is left of the answer
}

// handleText answers a Text Request: SendTargets, in discovery and
// normal sessions alike. Answers longer than the initiator's
// MaxRecvDataSegmentLength go out in pieces, each fetched by an empty
// request that echoes our target transfer tag.
func (c *conn) handleText(h *iscsi.BHS) error {
	var r iscsi.TextRequest
	r.Unmarshal(h)
	data, err := c.fr.ReadDataBuffer(h)
	if err != nil {
		return err
	}
	if !c.sess.admit(r.CmdSN, r.Immediate, false) {
		return nil
	}
	st := &c.text
	if r.TargetTransferTag != iscsi.ReservedTag {
		if r.TargetTransferTag != st.ttt || r.InitiatorTaskTag != st.itt || len(st.pending) == 0 {
			c.reject(h, iscsi.RejectInvalidPDUField)
			return nil
		}
		return c.sendTextPart(&r)
	}
	if r.InitiatorTaskTag != st.itt {
		// A new exchange replaces one left unfinished.
		*st = textState{itt: r.InitiatorTaskTag, ttt: iscsi.ReservedTag}
	}
	if err := st.acc.Add(data, r.Continue); err != nil {
		c.reject(h, iscsi.RejectProtocolError)
		*st = textState{ttt: iscsi.ReservedTag}
		return nil
	}
	if r.Continue {
		return c.write(&iscsi.TextResponse{LUN: r.LUN, InitiatorTaskTag: r.InitiatorTaskTag, TargetTransferTag: iscsi.ReservedTag}, nil, true)
	}
	keys, err := st.acc.Text()
	st.acc = iscsi.TextAccumulator{}
	if err != nil {
		c.log.WithError(err).Warn("malformed text request")
		c.reject(h, iscsi.RejectProtocolError)
		return nil
	}
	st.pending = c.answerText(keys).Encode()
	return c.sendTextPart(&r)
}

// sendTextPart sends the next piece of the pending answer.
func (c *conn) sendTextPart(r *iscsi.TextRequest) error {
	st := &c.text
	n := min(len(st.pending), int(c.sess.params.InitiatorMaxRecvDSL))
	part := st.pending[:n]
	st.pending = st.pending[n:]
	more := len(st.pending) > 0
	st.ttt = iscsi.ReservedTag
	if more {
		st.ttt = c.newTTT()
	}
	c.delay()
	return c.write(&iscsi.TextResponse{
		Final: !more, Continue: more, LUN: r.LUN,
		InitiatorTaskTag: r.InitiatorTaskTag, TargetTransferTag: st.ttt,
	}, part, true)
}

// answerText answers SendTargets; other keys are not understood in the
// full feature phase.
func (c *conn) answerText(keys iscsi.Text) iscsi.Text {
	var out iscsi.Text
	for _, p := range keys {
		if p.Key == "SendTargets" {
			out = append(out, c.sendTargets(p.Value)...)
			continue
		}
		out = append(out, iscsi.Pair{Key: p.Key, Value: "NotUnderstood"})
	}
	return out
}

// sendTargets lists targets and their addresses (RFC 7143 appendix C).
// A normal session hears only about its own target, and a discovery
// session only about targets its initiator may log in to.
func (c *conn) sendTargets(which string) iscsi.Text {
	s := c.sess
	var targets []*Target
	switch {
	case !s.discovery() && (which == "" || which == "All" || which == s.target.Name):
		targets = []*Target{s.target}
	case s.discovery() && which == "All":
		targets = c.srv.Targets()
	case s.discovery() && which != "":
		if t, ok := c.srv.Target(which); ok {
			targets = []*Target{t}
		}
	}
	var out iscsi.Text
	for _, t := range targets {
		if s.discovery() && t.Access != nil && t.Access(s.initiator, s.chapUser, c.remote.Addr()) != nil {
			continue
		}
		out = append(out, iscsi.Pair{Key: "TargetName", Value: t.Name})
		for _, a := range c.targetAddresses(t) {
			out = append(out, iscsi.Pair{Key: "TargetAddress", Value: a})
		}
	}
	return out
}

func (c *conn) targetAddresses(t *Target) []string {
	local := PortalInfo{Addr: c.nc.LocalAddr().String(), TPGT: c.portal.info.TPGT}
	if hook := c.srv.cfg.TargetAddresses; hook != nil {
		return hook(t.Name, local)
	}
	return []string{local.String()}
}
