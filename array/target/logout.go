package target

import (
	"github.com/hitkit/hitkit/iscsi"
)

// handleLogout ends the session (with one connection per session,
// closing the connection and closing the session are the same). The
// session's tasks are aborted first, and nothing follows the response.
func (c *conn) handleLogout(h *iscsi.BHS) error {
	var r iscsi.LogoutRequest
	r.Unmarshal(h)
	if err := c.fr.DiscardData(h); err != nil {
		return err
	}
	s := c.sess
	if !s.admit(r.CmdSN, r.Immediate, false) {
		return nil
	}
	resp := iscsi.LogoutResponse{InitiatorTaskTag: r.InitiatorTaskTag, Response: iscsi.LogoutOK}
	switch {
	case r.Reason == iscsi.LogoutRecovery:
		resp.Response = iscsi.LogoutRecoveryUnsupp
	case r.Reason == iscsi.LogoutConnection && r.CID != c.cid:
		resp.Response = iscsi.LogoutCIDNotFound
	case r.Reason != iscsi.LogoutSession && r.Reason != iscsi.LogoutConnection:
		c.reject(h, iscsi.RejectInvalidPDUField)
		return nil
	}
	if resp.Response != iscsi.LogoutOK {
		return c.write(&resp, nil, true)
	}
	waitGone(s.abortTasks(func(*task) bool { return true }), c.done)
	resp.Time2Wait = uint16(s.params.DefaultTime2Wait)
	resp.Time2Retain = uint16(s.params.DefaultTime2Retain)
	c.lockWrite()
	err := c.writeLocked(&resp, nil, true)
	c.writesDone = true
	if err := c.unlockWrite(err); err != nil {
		return err
	}
	s.log.Info("initiator logged out")
	return errLoggedOut
}
