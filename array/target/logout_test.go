package target_test

import (
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/scsi"
)

// TestLogoutWithCommandsOutstanding logs a session out while commands are
// still running or waiting to send their responses (the portal delays
// every response). RFC 7143 section 11.14: the target terminates the
// session's pending commands, and "for the terminated commands, no
// additional responses should be expected". So every command completes
// at most once, every completion comes before the Logout Response, and
// nothing follows it. libiscsi relies on this: after an async logout it
// sends the commands it has no status for again on its new session
// (iscsi_reconnect_cb), so a status after the Logout Response would be
// a second completion of the same I/O.
func TestLogoutWithCommandsOutstanding(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	if err := l.srv.Delay(l.portal.Addr, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, l.portal.Addr)
	c.mustLogin(loginOpts{target: testIQN})

	// The first half has answered by the time the logout arrives; the
	// second half is still running or waiting for the delay.
	const commands = 16
	sent := map[uint32]bool{}
	for i := range commands {
		if i == commands/2 {
			time.Sleep(500 * time.Millisecond)
		}
		cmd := iscsi.SCSICommand{
			Final: true, Read: true, Attr: iscsi.AttrSimple,
			LUN: scsi.EncodeLUN(0), InitiatorTaskTag: c.nextITT(), CmdSN: c.cmdSN, ExpStatSN: c.expStatSN,
			ExpectedDataTransferLength: 8 * 512,
		}
		copy(cmd.CDB[:], cdb(scsi.Read10(uint32(i*8), 8, false)))
		c.cmdSN++
		c.send(&cmd, nil)
		sent[cmd.InitiatorTaskTag] = true
	}
	logoutITT := c.nextITT()
	c.send(&iscsi.LogoutRequest{Immediate: true, Reason: iscsi.LogoutSession, InitiatorTaskTag: logoutITT, CmdSN: c.cmdSN, ExpStatSN: c.expStatSN}, nil)

	completed := map[uint32]int{}
	loggedOut := false
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		hdr, _, err := c.tryRead(time.Until(deadline))
		if err != nil {
			break // closed, or the deadline; checked below
		}
		if loggedOut {
			t.Fatalf("%v (%+v) after the Logout Response", hdr.Opcode(), hdr)
		}
		switch h := hdr.(type) {
		case *iscsi.LogoutResponse:
			if h.InitiatorTaskTag != logoutITT || h.Response != iscsi.LogoutOK {
				t.Fatalf("logout response %+v", h)
			}
			loggedOut = true
		case *iscsi.DataIn:
			if h.HasStatus {
				completed[h.InitiatorTaskTag]++
			}
		case *iscsi.SCSIResponse:
			completed[h.InitiatorTaskTag]++
		case *iscsi.NopIn:
		default:
			t.Fatalf("unexpected %v: %+v", hdr.Opcode(), hdr)
		}
	}
	if !loggedOut {
		t.Fatal("no Logout Response within 10 s")
	}
	if len(completed) < commands/2 {
		t.Errorf("%d commands completed; want at least the %d sent before the pause", len(completed), commands/2)
	}
	for itt, n := range completed {
		if !sent[itt] || n != 1 {
			t.Errorf("task 0x%x: %d completions", itt, n)
		}
	}
	c.expectClosed(5 * time.Second)
	t.Logf("%d of %d commands completed before the Logout Response; the rest were terminated", len(completed), commands)
	waitFor(t, 5*time.Second, "no sessions", func() bool { return len(l.srv.Sessions()) == 0 })
}
