package target_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/scsi"
)

// TestDataIntegrity writes and reads back through every data path:
// immediate data, unsolicited Data-Out, several outstanding R2Ts, Data-In
// split by the initiator's MaxRecvDataSegmentLength and by MaxBurstLength,
// with and without digests.
func TestDataIntegrity(t *testing.T) {
	cases := []struct {
		name   string
		limits iscsi.TargetLimits
		prefs  iscsi.Preferences
	}{
		{"defaults", target.DefaultLimits(), iscsi.Preferences{ImmediateData: true}},
		{"small-pdus-r2t-only", iscsi.TargetLimits{
			MaxRecvDataSegmentLength: 512, MaxBurstLength: 4096, FirstBurstLength: 1024, MaxOutstandingR2T: 3,
		}, iscsi.Preferences{MaxRecvDataSegmentLength: 1024, MaxBurstLength: 8192, FirstBurstLength: 1024, InitialR2T: true}},
		{"unsolicited-and-digests", iscsi.TargetLimits{
			MaxRecvDataSegmentLength: 4096, MaxBurstLength: 16384, FirstBurstLength: 8192, MaxOutstandingR2T: 2,
			ImmediateData: true, Digests: true,
		}, iscsi.Preferences{ImmediateData: true, HeaderDigest: true, DataDigest: true, MaxRecvDataSegmentLength: 3000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, target.Config{Limits: tc.limits}, nil)
			c := dialRaw(t, l.portal.Addr)
			c.mustLogin(loginOpts{target: testIQN, prefs: tc.prefs})
			for _, blocks := range []int{1, 7, 64, 300} {
				want := make([]byte, blocks*512)
				rand.Read(want)
				lba := uint64(blocks * 10)
				w := c.command(0, cdb(scsi.Write16(lba, uint32(blocks), false)), want, 0)
				if w.status != scsi.StatusGood {
					t.Fatalf("WRITE16 of %d blocks: status %#x sense %x", blocks, w.status, w.sense)
				}
				r := c.command(0, cdb(scsi.Read16(lba, uint32(blocks), false)), nil, uint32(len(want)))
				if r.status != scsi.StatusGood || !bytes.Equal(r.data, want) {
					t.Fatalf("READ16 of %d blocks: status %#x, %d bytes, equal %v", blocks, r.status, len(r.data), bytes.Equal(r.data, want))
				}
			}
			if got := l.srv.Sessions(); len(got) != 1 || got[0].BytesIn == 0 || got[0].BytesOut == 0 || got[0].Commands < 8 {
				t.Errorf("session counters: %+v", got)
			}
			c.logout()
		})
	}
}

func cdb(c scsi.CDB) []byte { return append([]byte(nil), c.Bytes()...) }

// TestReadResiduals checks underflow and overflow on reads, and that
// Data-In never exceeds ExpectedDataTransferLength.
func TestReadResiduals(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	c := dialRaw(t, l.portal.Addr)
	c.mustLogin(loginOpts{target: testIQN})
	r := c.command(0, cdb(scsi.Read10(0, 2, false)), nil, 512)
	if r.status != scsi.StatusGood || len(r.data) != 512 || !r.over || r.residual != 512 {
		t.Errorf("overflow: status %#x, %d bytes, over %v residual %d", r.status, len(r.data), r.over, r.residual)
	}
	r = c.command(0, cdb(scsi.Read10(0, 1, false)), nil, 2048)
	if r.status != scsi.StatusGood || len(r.data) != 512 || !r.under || r.residual != 1536 {
		t.Errorf("underflow: status %#x, %d bytes, under %v residual %d", r.status, len(r.data), r.under, r.residual)
	}
}

// TestLUNs checks REPORT LUNS from the engine and the answer for a LUN
// that does not exist.
func TestLUNs(t *testing.T) {
	l := newLab(t, target.Config{}, func(tg *target.Target) { tg.SetLUN(3, newDisk(t, 1<<20)) })
	c := dialRaw(t, l.portal.Addr)
	c.mustLogin(loginOpts{target: testIQN})
	r := c.command(0, cdb(scsi.ReportLuns(4096)), nil, 4096)
	luns, err := scsi.ParseReportLuns(r.data)
	if r.status != scsi.StatusGood || err != nil || fmt.Sprint(luns) != "[0 3]" {
		t.Errorf("REPORT LUNS: status %#x, %v, %v", r.status, luns, err)
	}
	r = c.command(7, cdb(scsi.TestUnitReady()), nil, 0)
	s := senseOf(t, r.sense)
	if r.status != scsi.StatusCheckCondition || s.Key != scsi.KeyIllegalRequest || s.ASC != 0x25 || s.ASCQ != 0 {
		t.Errorf("TUR to LUN 7: status %#x sense %v", r.status, s)
	}
	r = c.command(7, cdb(scsi.Inquiry(false, 0, 96)), nil, 96)
	if r.status != scsi.StatusGood || len(r.data) == 0 || r.data[0] != 0x7f {
		t.Errorf("INQUIRY to LUN 7: status %#x data %x", r.status, r.data)
	}
}

// TestLoginStatuses checks the status class and detail of refused logins.
func TestLoginStatuses(t *testing.T) {
	l := newLab(t, target.Config{}, func(tg *target.Target) {
		tg.Access = func(initiator, _ string, _ netip.Addr) error {
			if initiator == "iqn.2024-01.test.hitkit:intruder" {
				return errors.New("not on the access list")
			}
			return nil
		}
	})
	gone := target.NewTarget("iqn.2024-01.test.hitkit:gone")
	if err := l.srv.AddTarget(gone); err != nil {
		t.Fatal(err)
	}
	if err := l.srv.RemoveTarget(gone.Name); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    loginOpts
		want iscsi.LoginStatus
	}{
		{"unknown target", loginOpts{target: "iqn.2024-01.test.hitkit:nothere"}, iscsi.LoginNotFound},
		{"removed target", loginOpts{target: gone.Name}, iscsi.LoginTargetRemoved},
		{"refused by ACL", loginOpts{target: testIQN, initiator: "iqn.2024-01.test.hitkit:intruder"}, iscsi.LoginAuthorizationFailed},
		{"CHAP to a target without CHAP", loginOpts{target: testIQN, chapUser: "u", chapSecret: "secretsecret"}, iscsi.LoginAuthFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, l.portal.Addr)
			if got := c.login(tc.o); got != tc.want {
				t.Errorf("status 0x%04x, want 0x%04x", uint16(got), uint16(tc.want))
			}
			c.expectClosed(5 * time.Second)
		})
	}
	t.Run("missing InitiatorName", func(t *testing.T) {
		c := dialRaw(t, l.portal.Addr)
		resp, _ := c.loginStep(iscsi.Text{{Key: "TargetName", Value: testIQN}}, iscsi.StageSecurity, iscsi.StageOperational, true)
		if resp.Status != iscsi.LoginMissingParameter {
			t.Errorf("status %v", resp.Status)
		}
	})
	t.Run("bad session type", func(t *testing.T) {
		c := dialRaw(t, l.portal.Addr)
		resp, _ := c.loginStep(iscsi.Text{{Key: "InitiatorName", Value: "iqn.x"}, {Key: "SessionType", Value: "Bogus"}}, iscsi.StageSecurity, iscsi.StageOperational, true)
		if resp.Status != iscsi.LoginSessionTypeUnsupp {
			t.Errorf("status %v", resp.Status)
		}
	})
}

// TestMutualCHAP logs in with each CHAP algorithm, one-way and mutual.
func TestMutualCHAP(t *testing.T) {
	l := newLab(t, target.Config{}, func(tg *target.Target) {
		tg.CHAP = &target.CHAP{
			Lookup: target.StaticUsers(map[string]string{"alice": "alice-secret-1"}),
			Mutual: &iscsi.ChapCredentials{User: "array", Secret: []byte("array-secret-22")},
		}
	})
	for _, mutual := range []bool{false, true} {
		c := dialRaw(t, l.portal.Addr)
		o := loginOpts{target: testIQN, chapUser: "alice", chapSecret: "alice-secret-1"}
		if mutual {
			o.mutual = &iscsi.ChapCredentials{User: "array", Secret: []byte("array-secret-22")}
		}
		c.mustLogin(o)
		if s := l.srv.Sessions(); len(s) != 1 || s[0].CHAPUser != "alice" {
			t.Errorf("sessions: %+v", s)
		}
		c.logout()
	}
	c := dialRaw(t, l.portal.Addr)
	if st := c.login(loginOpts{target: testIQN, chapUser: "alice", chapSecret: "wrong-secret-11"}); st != iscsi.LoginAuthFailed {
		t.Errorf("wrong secret: status %v", st)
	}
	c = dialRaw(t, l.portal.Addr)
	if st := c.login(loginOpts{target: testIQN}); st != iscsi.LoginAuthFailed {
		t.Errorf("no CHAP: status %v", st)
	}
}

// TestReinstatement: a new login with the same initiator and ISID replaces
// the old session.
func TestReinstatement(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	a := dialRaw(t, l.portal.Addr)
	a.mustLogin(loginOpts{target: testIQN})
	b := dialRaw(t, l.portal.Addr)
	b.mustLogin(loginOpts{target: testIQN})
	a.expectClosed(5 * time.Second)
	if err := b.nop([]byte("ping"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "one session", func() bool { return len(l.srv.Sessions()) == 1 })
	if got := l.srv.Sessions()[0].TSIH; got != b.tsih {
		t.Errorf("surviving session %d, want %d", got, b.tsih)
	}
}

// TestNop checks NOP-Out echoes, that a NOP-Out with the reserved ITT gets
// no answer, and that target pings drop an initiator that never answers.
func TestNop(t *testing.T) {
	l := newLab(t, target.Config{NopInterval: 200 * time.Millisecond, NopTimeout: 300 * time.Millisecond}, nil)
	c := dialRaw(t, l.portal.Addr)
	c.mustLogin(loginOpts{target: testIQN})
	if err := c.nop([]byte("hello, target"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.send(&iscsi.NopOut{Immediate: true, InitiatorTaskTag: iscsi.ReservedTag, TargetTransferTag: iscsi.ReservedTag, CmdSN: c.cmdSN}, nil)
	// What comes next must be the target's own ping, not an answer.
	hdr, _ := c.read(2 * time.Second)
	ping, ok := hdr.(*iscsi.NopIn)
	if !ok || ping.InitiatorTaskTag != iscsi.ReservedTag || ping.TargetTransferTag == iscsi.ReservedTag {
		t.Fatalf("expected a target ping, got %+v", hdr)
	}
	// Answer it once, then go silent: the target must drop us.
	c.send(&iscsi.NopOut{Immediate: true, InitiatorTaskTag: iscsi.ReservedTag, TargetTransferTag: ping.TargetTransferTag, CmdSN: c.cmdSN}, nil)
	start := time.Now()
	c.expectClosed(5 * time.Second)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("dropped after %v, before the ping could time out", d)
	}
}

// TestMalformedPDUs sends garbage and protocol violations over raw TCP:
// the server answers or drops that connection, and keeps serving others.
func TestMalformedPDUs(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	good := dialRaw(t, l.portal.Addr)
	good.mustLogin(loginOpts{target: testIQN})

	t.Run("garbage before login", func(t *testing.T) {
		c := dialRaw(t, l.portal.Addr)
		c.sendRaw(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000))
		c.expectClosed(5 * time.Second)
	})
	t.Run("oversized login data", func(t *testing.T) {
		c := dialRaw(t, l.portal.Addr)
		var h iscsi.BHS
		(&iscsi.LoginRequest{CSG: iscsi.StageSecurity}).Marshal(&h)
		h[5], h[6], h[7] = 0xff, 0xff, 0xff
		c.sendRaw(h[:])
		hdr, _ := c.read(5 * time.Second)
		if r, ok := hdr.(*iscsi.LoginResponse); !ok || r.Status.Class() != iscsi.ClassInitiatorErr {
			t.Errorf("got %+v", hdr)
		}
		c.expectClosed(5 * time.Second)
	})
	t.Run("login text without =", func(t *testing.T) {
		c := dialRaw(t, l.portal.Addr)
		c.send(&iscsi.LoginRequest{CSG: iscsi.StageSecurity, NSG: iscsi.StageOperational, Transit: true}, []byte("InitiatorName\x00"))
		hdr, _ := c.read(5 * time.Second)
		if r, ok := hdr.(*iscsi.LoginResponse); !ok || r.Status != iscsi.LoginInitiatorError {
			t.Errorf("got %+v", hdr)
		}
		c.expectClosed(5 * time.Second)
	})
	t.Run("unknown opcode and SNACK in full feature phase", func(t *testing.T) {
		c := dialRaw(t, l.portal.Addr)
		c.isid[5] = 2
		c.mustLogin(loginOpts{target: testIQN})
		var h iscsi.BHS
		h[0] = 0x1c
		c.sendRaw(h[:])
		hdr, _ := c.read(5 * time.Second)
		if r, ok := hdr.(*iscsi.Reject); !ok || r.Reason != iscsi.RejectNotSupported {
			t.Errorf("unknown opcode: got %+v", hdr)
		}
		c.send(&iscsi.SNACKRequest{InitiatorTaskTag: 5}, nil)
		hdr, _ = c.read(5 * time.Second)
		if r, ok := hdr.(*iscsi.Reject); !ok || r.Reason != iscsi.RejectSNACK {
			t.Errorf("SNACK: got %+v", hdr)
		}
		if err := c.nop(nil, 5*time.Second); err != nil {
			t.Errorf("the connection did not survive a Reject: %v", err)
		}
	})
	t.Run("data segment beyond the declared limit", func(t *testing.T) {
		c := dialRaw(t, l.portal.Addr)
		c.isid[5] = 3
		c.mustLogin(loginOpts{target: testIQN})
		var h iscsi.BHS
		(&iscsi.NopOut{Immediate: true, InitiatorTaskTag: 9, TargetTransferTag: iscsi.ReservedTag}).Marshal(&h)
		h[5], h[6], h[7] = 0x7f, 0xff, 0xff
		c.sendRaw(h[:])
		c.expectClosed(5 * time.Second)
	})
	t.Run("Data-Out with a bad DataSN", func(t *testing.T) {
		c := dialRaw(t, l.portal.Addr)
		c.isid[5] = 4
		c.mustLogin(loginOpts{target: testIQN, prefs: iscsi.Preferences{InitialR2T: true}})
		cmd := iscsi.SCSICommand{Final: true, Write: true, InitiatorTaskTag: 77, CmdSN: c.cmdSN, ExpectedDataTransferLength: 1024}
		copy(cmd.CDB[:], cdb(scsi.Write10(0, 2, false)))
		c.cmdSN++
		c.send(&cmd, nil)
		hdr, _ := c.read(5 * time.Second)
		r2t, ok := hdr.(*iscsi.R2T)
		if !ok {
			t.Fatalf("expected an R2T, got %+v", hdr)
		}
		c.send(&iscsi.DataOut{Final: true, InitiatorTaskTag: 77, TargetTransferTag: r2t.TargetTransferTag, DataSN: 27}, make([]byte, 1024))
		hdr, data := c.read(5 * time.Second)
		resp, ok := hdr.(*iscsi.SCSIResponse)
		if !ok || resp.Status != scsi.StatusCheckCondition || len(data) < 4 {
			t.Fatalf("expected CHECK CONDITION, got %+v", hdr)
		}
		if s := senseOf(t, data[2:]); s.Key != scsi.KeyAbortedCommand {
			t.Errorf("sense %v", s)
		}
	})
	if err := good.nop([]byte("still here"), 5*time.Second); err != nil {
		t.Fatalf("another session suffered: %v", err)
	}
}

// TestSendTargetsContinuation has the answer span many Text Response PDUs
// (the initiator declares a small MaxRecvDataSegmentLength) and fetches
// it piece by piece with the target transfer tag.
func TestSendTargetsContinuation(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	for i := range 40 {
		if err := l.srv.AddTarget(target.NewTarget(fmt.Sprintf("iqn.2024-01.test.hitkit:a-rather-long-volume-name-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c := dialRaw(t, l.portal.Addr)
	c.mustLogin(loginOpts{prefs: iscsi.Preferences{MaxRecvDataSegmentLength: 512}})
	c.send(&iscsi.TextRequest{Final: true, InitiatorTaskTag: 0x42, TargetTransferTag: iscsi.ReservedTag, CmdSN: c.cmdSN}, iscsi.Text{{Key: "SendTargets", Value: "All"}}.Encode())
	c.cmdSN++
	var acc iscsi.TextAccumulator
	pdus := 0
	for ; pdus < 100; pdus++ {
		hdr, data := c.read(5 * time.Second)
		tr, ok := hdr.(*iscsi.TextResponse)
		if !ok || len(data) > 512 {
			t.Fatalf("got %+v with %d bytes", hdr, len(data))
		}
		acc.Add(data, tr.Continue)
		if tr.Final {
			break
		}
		c.send(&iscsi.TextRequest{Final: true, InitiatorTaskTag: 0x42, TargetTransferTag: tr.TargetTransferTag, CmdSN: c.cmdSN}, nil)
		c.cmdSN++
	}
	text, err := acc.Text()
	if err != nil {
		t.Fatal(err)
	}
	targets, err := iscsi.ParseSendTargets(text)
	if err != nil || len(targets) != 41 || pdus < 5 {
		t.Fatalf("%d targets over %d PDUs, %v", len(targets), pdus+1, err)
	}
	for _, tg := range targets {
		if len(tg.Portals) != 1 || tg.Portals[0].Address != l.portal.Addr || tg.Portals[0].TPGT != 1 {
			t.Errorf("%s: portals %+v", tg.Name, tg.Portals)
		}
	}
}

// TestAsyncLogout asks a session to log out: the initiator reads
// AsyncEvent 1 with the deadline, and a session that ignores it is dropped.
func TestAsyncLogout(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	c := dialRaw(t, l.portal.Addr)
	c.mustLogin(loginOpts{target: testIQN})
	if err := l.srv.RequestLogout(c.tsih, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	hdr, _ := c.read(5 * time.Second)
	msg, ok := hdr.(*iscsi.AsyncMessage)
	if !ok || msg.Event != iscsi.AsyncLogoutRequest || msg.Parameter3 != 3 {
		t.Fatalf("expected AsyncEvent 1 with 3 s, got %+v", hdr)
	}
	c.logout()

	ignorer := dialRaw(t, l.portal.Addr)
	ignorer.mustLogin(loginOpts{target: testIQN})
	if err := l.srv.RequestLogout(ignorer.tsih, time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ignorer.read(5 * time.Second) // the async message
	ignorer.expectClosed(5 * time.Second)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("dropped after %v, before the deadline", d)
	}
	waitFor(t, 5*time.Second, "no sessions", func() bool { return len(l.srv.Sessions()) == 0 })

	dropped := dialRaw(t, l.portal.Addr)
	dropped.mustLogin(loginOpts{target: testIQN})
	if err := l.srv.DropSession(dropped.tsih, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	hdr, _ = dropped.read(5 * time.Second)
	if msg, ok := hdr.(*iscsi.AsyncMessage); !ok || msg.Event != iscsi.AsyncSessionDrop || msg.Parameter2 != 2 {
		t.Fatalf("expected AsyncEvent 3, got %+v", hdr)
	}
	dropped.expectClosed(5 * time.Second)
}

// TestFaults exercises the fault hooks multipath tests rely on.
func TestFaults(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	addr := l.portal.Addr

	t.Run("drop and restore", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.mustLogin(loginOpts{target: testIQN})
		if err := l.srv.DropPortal(addr); err != nil {
			t.Fatal(err)
		}
		c.expectClosed(5 * time.Second)
		if nc, err := netDial(addr); err == nil {
			nc.Close()
			t.Fatal("a dropped portal accepted a connection")
		}
		if err := l.srv.RestorePortal(addr); err != nil {
			t.Fatal(err)
		}
		dialRaw(t, addr).mustLogin(loginOpts{target: testIQN})
	})
	t.Run("reset", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.isid[5] = 9
		c.mustLogin(loginOpts{target: testIQN})
		if err := l.srv.ResetPortal(addr); err != nil {
			t.Fatal(err)
		}
		c.expectClosed(5 * time.Second)
		d := dialRaw(t, addr)
		d.mustLogin(loginOpts{target: testIQN})
		if err := d.nop(nil, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("blackhole", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.isid[5] = 10
		c.mustLogin(loginOpts{target: testIQN})
		if err := l.srv.Blackhole(addr, true); err != nil {
			t.Fatal(err)
		}
		if err := c.nop([]byte("anyone?"), 300*time.Millisecond); err == nil {
			t.Fatal("a blackholed portal answered")
		}
		fresh := dialRaw(t, addr) // connects, but login hangs
		fresh.send(&iscsi.LoginRequest{CSG: iscsi.StageSecurity}, nil)
		if _, _, err := fresh.tryRead(200 * time.Millisecond); err == nil {
			t.Fatal("a blackholed portal answered a login")
		}
		if err := l.srv.Blackhole(addr, false); err != nil {
			t.Fatal(err)
		}
		d := dialRaw(t, addr)
		d.isid[5] = 11
		d.mustLogin(loginOpts{target: testIQN})
	})
	t.Run("delay", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.isid[5] = 12
		c.mustLogin(loginOpts{target: testIQN})
		if err := l.srv.Delay(addr, 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := c.command(0, cdb(scsi.TestUnitReady()), nil, 0)
		if d := time.Since(start); r.status != scsi.StatusGood || d < 150*time.Millisecond {
			t.Errorf("TUR: status %#x after %v", r.status, d)
		}
		l.srv.Delay(addr, 0)
	})
}

// TestTaskManagement aborts a task that waits for its data, and resets
// the LU.
func TestTaskManagement(t *testing.T) {
	l := newLab(t, target.Config{}, nil)
	c := dialRaw(t, l.portal.Addr)
	c.mustLogin(loginOpts{target: testIQN, prefs: iscsi.Preferences{InitialR2T: true}})
	cmd := iscsi.SCSICommand{Final: true, Write: true, InitiatorTaskTag: 0x77, CmdSN: c.cmdSN, ExpectedDataTransferLength: 4096}
	copy(cmd.CDB[:], cdb(scsi.Write10(0, 8, false)))
	c.cmdSN++
	c.send(&cmd, nil)
	if hdr, _ := c.read(5 * time.Second); hdr.Opcode() != iscsi.OpR2T {
		t.Fatalf("expected an R2T, got %v", hdr.Opcode())
	}
	tmf := func(f iscsi.TMFunction, ref uint32) uint8 {
		c.send(&iscsi.TaskMgmtRequest{Immediate: true, Function: f, InitiatorTaskTag: c.nextITT(), ReferencedTaskTag: ref, CmdSN: c.cmdSN, RefCmdSN: cmd.CmdSN}, nil)
		hdr, _ := c.read(5 * time.Second)
		r, ok := hdr.(*iscsi.TaskMgmtResponse)
		if !ok {
			t.Fatalf("expected a TMF response, got %+v", hdr)
		}
		return r.Response
	}
	if got := tmf(iscsi.TMFAbortTask, 0x77); got != iscsi.TMFComplete {
		t.Errorf("ABORT TASK: response %d", got)
	}
	if got := tmf(iscsi.TMFAbortTask, 0x77); got != iscsi.TMFTaskNotExist {
		t.Errorf("second ABORT TASK: response %d", got)
	}
	if got := tmf(iscsi.TMFLogicalUnitReset, 0); got != iscsi.TMFComplete {
		t.Errorf("LU RESET: response %d", got)
	}
	if got := tmf(iscsi.TMFTaskReassign, 0x77); got != iscsi.TMFReassignNotSupported {
		t.Errorf("TASK REASSIGN: response %d", got)
	}
	// The aborted write's slot is free again: commands still flow.
	if r := c.command(0, cdb(scsi.TestUnitReady()), nil, 0); r.status != scsi.StatusGood && r.status != scsi.StatusCheckCondition {
		t.Errorf("TUR after the TMFs: status %#x", r.status)
	}
}

// TestNoGoroutineLeak runs sessions, closes the server and checks that
// every goroutine it started is gone.
func TestNoGoroutineLeak(t *testing.T) {
	baseline := runtimeGoroutines()
	l := newLab(t, target.Config{NopInterval: time.Second}, nil)
	var clients []*rawClient
	for i := range 3 {
		c := dialRaw(t, l.portal.Addr)
		c.isid[5] = byte(20 + i)
		c.mustLogin(loginOpts{target: testIQN})
		c.command(0, cdb(scsi.Write10(0, 8, false)), make([]byte, 4096), 0)
		clients = append(clients, c)
	}
	half := dialRaw(t, l.portal.Addr) // stuck in login
	half.sendRaw([]byte{0x43})
	waitFor(t, 5*time.Second, "3 sessions", func() bool { return len(l.srv.Sessions()) == 3 })
	l.srv.Close()
	for _, c := range clients {
		c.expectClosed(5 * time.Second)
	}
	checkNoLeak(t, baseline)
}

var _ = binary.BigEndian
