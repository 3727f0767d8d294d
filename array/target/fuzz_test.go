package target_test

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/scsi"
	"github.com/sirupsen/logrus"
)

// panicHook counts log entries about internal errors: the engine logs a
// recovered panic at error level.
type panicHook struct{ n atomic.Int32 }

func (h *panicHook) Levels() []logrus.Level { return []logrus.Level{logrus.ErrorLevel} }
func (h *panicHook) Fire(*logrus.Entry) error {
	h.n.Add(1)
	return nil
}

// sessionStream is a whole session as an initiator would send it, without
// waiting for answers: login straight to the full feature phase, then a
// write with immediate data, a read, a NOP, SendTargets and a logout.
func sessionStream() []byte {
	var b []byte
	add := func(hdr iscsi.Header, data []byte) {
		var h iscsi.BHS
		hdr.Marshal(&h)
		n := len(data)
		h[5], h[6], h[7] = byte(n>>16), byte(n>>8), byte(n)
		b = append(b, h[:]...)
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	keys := iscsi.Text{
		{Key: "InitiatorName", Value: "iqn.2024-01.test:fuzz"}, {Key: "SessionType", Value: "Normal"},
		{Key: "TargetName", Value: testIQN}, {Key: "ImmediateData", Value: "Yes"},
	}
	add(&iscsi.LoginRequest{Transit: true, CSG: iscsi.StageOperational, NSG: iscsi.StageFullFeature, ISID: iscsi.ISID{0x80, 0, 0, 0, 0, 7}, CmdSN: 1}, keys.Encode())
	w := iscsi.SCSICommand{Final: true, Write: true, InitiatorTaskTag: 1, CmdSN: 1, ExpectedDataTransferLength: 512}
	copy(w.CDB[:], cdb(scsi.Write10(0, 1, false)))
	add(&w, make([]byte, 512))
	r := iscsi.SCSICommand{Final: true, Read: true, InitiatorTaskTag: 2, CmdSN: 2, ExpectedDataTransferLength: 512}
	copy(r.CDB[:], cdb(scsi.Read10(0, 1, false)))
	add(&r, nil)
	add(&iscsi.NopOut{Immediate: true, InitiatorTaskTag: 3, TargetTransferTag: iscsi.ReservedTag, CmdSN: 3}, []byte("ping"))
	add(&iscsi.TextRequest{Final: true, InitiatorTaskTag: 4, TargetTransferTag: iscsi.ReservedTag, CmdSN: 3}, iscsi.Text{{Key: "SendTargets", Value: "All"}}.Encode())
	add(&iscsi.TaskMgmtRequest{Immediate: true, Function: iscsi.TMFAbortTask, InitiatorTaskTag: 5, ReferencedTaskTag: 1, CmdSN: 4}, nil)
	add(&iscsi.LogoutRequest{Immediate: true, InitiatorTaskTag: 6, CmdSN: 4}, nil)
	return b
}

// FuzzConnection feeds arbitrary bytes to a connection, from the login on:
// the server may refuse or drop it, but never panics, and keeps serving.
func FuzzConnection(f *testing.F) {
	f.Add(sessionStream())
	f.Add(sessionStream()[:48])
	f.Add([]byte{0x43, 0x87, 0, 0, 0, 0, 0, 0})
	hook := &panicHook{}
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(hook)
	l := newLab(f, target.Config{Logger: log, LoginTimeout: time.Second}, nil)
	f.Fuzz(func(t *testing.T, stream []byte) {
		nc, err := net.Dial("tcp", l.portal.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(stream)
		nc.(*net.TCPConn).CloseWrite()
		nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		io.Copy(io.Discard, nc)
		if n := hook.n.Load(); n > 0 {
			t.Fatalf("the engine logged %d internal errors", n)
		}
	})
}
