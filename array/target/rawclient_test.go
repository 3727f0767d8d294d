package target_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/scsi"
)

// rawClient is a minimal initiator written against the wire format, for
// tests that need to send what libiscsi never would.
type rawClient struct {
	t         testing.TB
	nc        net.Conn
	fr        *iscsi.Framer
	isid      iscsi.ISID
	tsih      uint16
	cmdSN     uint32
	expStatSN uint32
	itt       uint32
	params    iscsi.Params
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, fr: iscsi.NewFramer(nc, nc, 64<<10), isid: iscsi.ISID{0x80, 0, 0, 0, 0, 1}, cmdSN: 1}
}

func (c *rawClient) send(hdr iscsi.Header, data []byte) {
	c.t.Helper()
	if err := c.fr.Write(hdr, data); err != nil {
		c.t.Fatal(err)
	}
	if err := c.fr.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// sendRaw writes bytes as they are.
func (c *rawClient) sendRaw(b []byte) error {
	_, err := c.nc.Write(b)
	return err
}

// read returns the next PDU, failing the test after timeout.
func (c *rawClient) read(timeout time.Duration) (iscsi.Header, []byte) {
	c.t.Helper()
	h, data, err := c.tryRead(timeout)
	if err != nil {
		c.t.Fatalf("reading a PDU: %v", err)
	}
	return h, data
}

func (c *rawClient) tryRead(timeout time.Duration) (iscsi.Header, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	var h iscsi.BHS
	_, data, err := c.fr.ReadPDU(&h)
	if err != nil {
		return nil, nil, err
	}
	hdr, err := iscsi.ParseHeader(&h)
	if err != nil {
		return nil, nil, err
	}
	if sn := h.TargetSN(); statusBearing(h.Opcode(), &h) && !iscsi.SerialLess(sn.StatSN, c.expStatSN) {
		c.expStatSN = sn.StatSN + 1
	}
	return hdr, append([]byte(nil), data...), nil
}

func statusBearing(op iscsi.Opcode, h *iscsi.BHS) bool {
	switch op {
	case iscsi.OpR2T:
		return false
	case iscsi.OpDataIn:
		return h[1]&0x01 != 0
	case iscsi.OpNopIn:
		return h.InitiatorTaskTag() != iscsi.ReservedTag
	}
	return true
}

// expectClosed checks that the target closes the connection.
func (c *rawClient) expectClosed(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, _, err := c.tryRead(time.Until(deadline))
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		return
	}
	c.t.Fatalf("the target did not close the connection within %v", timeout)
}

func (c *rawClient) nextITT() uint32 { c.itt++; return c.itt }

// loginStep sends one login request and returns the response.
func (c *rawClient) loginStep(keys iscsi.Text, csg, nsg iscsi.Stage, transit bool) (*iscsi.LoginResponse, iscsi.Text) {
	c.t.Helper()
	c.send(&iscsi.LoginRequest{
		Transit: transit, CSG: csg, NSG: nsg, ISID: c.isid, TSIH: c.tsih,
		InitiatorTaskTag: 0x1000, CmdSN: c.cmdSN, ExpStatSN: c.expStatSN,
	}, keys.Encode())
	hdr, data := c.read(5 * time.Second)
	resp, ok := hdr.(*iscsi.LoginResponse)
	if !ok {
		c.t.Fatalf("got %v during login", hdr.Opcode())
	}
	text, err := iscsi.ParseText(data)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, text
}

type loginOpts struct {
	initiator  string
	target     string // empty: discovery
	chapUser   string
	chapSecret string
	mutual     *iscsi.ChapCredentials
	prefs      iscsi.Preferences
}

// login runs a whole login; it returns the failing status, or success.
func (c *rawClient) login(o loginOpts) iscsi.LoginStatus {
	c.t.Helper()
	if o.initiator == "" {
		o.initiator = "iqn.2024-01.test.hitkit:raw"
	}
	first := iscsi.Text{{Key: "InitiatorName", Value: o.initiator}}
	if o.target != "" {
		first = append(first, iscsi.Pair{Key: "SessionType", Value: "Normal"}, iscsi.Pair{Key: "TargetName", Value: o.target})
		o.prefs.SessionType = "Normal"
	} else {
		first = append(first, iscsi.Pair{Key: "SessionType", Value: "Discovery"})
		o.prefs.SessionType = "Discovery"
	}
	if o.chapUser == "" {
		first = append(first, iscsi.Pair{Key: "AuthMethod", Value: "None"})
		resp, _ := c.loginStep(first, iscsi.StageSecurity, iscsi.StageOperational, true)
		if resp.Status != iscsi.LoginSuccess {
			return resp.Status
		}
	} else if st := c.chap(first, o); st != iscsi.LoginSuccess {
		return st
	}
	neg := iscsi.NewInitiatorNegotiation(o.prefs)
	out := neg.Offer()
	for range 8 {
		resp, text := c.loginStep(out, iscsi.StageOperational, iscsi.StageFullFeature, true)
		if resp.Status != iscsi.LoginSuccess {
			return resp.Status
		}
		var err error
		if out, err = neg.ApplyResponse(text); err != nil {
			c.t.Fatal(err)
		}
		if resp.Transit && resp.NSG == iscsi.StageFullFeature {
			c.tsih, c.params = resp.TSIH, neg.Params()
			c.fr.HeaderDigest, c.fr.DataDigest = c.params.HeaderDigest, c.params.DataDigest
			c.fr.MaxRecvDataSegment = int(c.params.InitiatorMaxRecvDSL)
			return iscsi.LoginSuccess
		}
	}
	c.t.Fatal("login did not finish")
	return 0
}

func (c *rawClient) chap(first iscsi.Text, o loginOpts) iscsi.LoginStatus {
	c.t.Helper()
	first = append(first, iscsi.Pair{Key: "AuthMethod", Value: "CHAP"})
	resp, text := c.loginStep(first, iscsi.StageSecurity, iscsi.StageOperational, false)
	if resp.Status != iscsi.LoginSuccess {
		return resp.Status
	}
	if m, _ := text.Get("AuthMethod"); m != "CHAP" {
		c.t.Fatalf("target chose AuthMethod=%s", m)
	}
	ch := iscsi.NewChapInitiator(o.chapUser, []byte(o.chapSecret), o.mutual, nil)
	resp, text = c.loginStep(ch.Offer(), iscsi.StageSecurity, iscsi.StageOperational, false)
	if resp.Status != iscsi.LoginSuccess {
		return resp.Status
	}
	answer, err := ch.Respond(text)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, text = c.loginStep(answer, iscsi.StageSecurity, iscsi.StageOperational, true)
	if resp.Status != iscsi.LoginSuccess {
		return resp.Status
	}
	if err := ch.Verify(text); err != nil {
		c.t.Fatalf("mutual CHAP: %v", err)
	}
	if !resp.Transit {
		c.t.Fatal("target stayed in the security stage after CHAP")
	}
	return iscsi.LoginSuccess
}

func (c *rawClient) mustLogin(o loginOpts) {
	c.t.Helper()
	if st := c.login(o); st != iscsi.LoginSuccess {
		c.t.Fatalf("login failed: 0x%04x %v", uint16(st), st)
	}
}

// result is a command's outcome.
type result struct {
	status   uint8
	sense    []byte
	data     []byte
	resp     *iscsi.SCSIResponse // nil when the status came with Data-In
	residual uint32
	under    bool
	over     bool
}

// command runs one SCSI command to completion: immediate data, R2Ts and
// Data-In included, honouring the negotiated limits.
func (c *rawClient) command(lun uint16, cdb []byte, write []byte, readLen uint32) result {
	c.t.Helper()
	p := c.params
	cmd := iscsi.SCSICommand{
		Final: true, Read: readLen > 0, Write: write != nil, Attr: iscsi.AttrSimple,
		LUN: scsi.EncodeLUN(lun), InitiatorTaskTag: c.nextITT(), CmdSN: c.cmdSN, ExpStatSN: c.expStatSN,
		ExpectedDataTransferLength: readLen,
	}
	copy(cmd.CDB[:], cdb)
	c.cmdSN++
	var imm []byte
	if write != nil {
		cmd.ExpectedDataTransferLength = uint32(len(write))
		if p.ImmediateData {
			imm = write[:min(len(write), int(p.FirstBurstLength), int(p.TargetMaxRecvDSL))]
		}
	}
	unsolEnd := len(imm)
	if write != nil && !p.InitialR2T {
		unsolEnd = min(len(write), int(p.FirstBurstLength))
		cmd.Final = unsolEnd == len(imm)
	}
	c.send(&cmd, imm)
	if unsolEnd > len(imm) {
		c.sendData(cmd.InitiatorTaskTag, iscsi.ReservedTag, write, len(imm), unsolEnd)
	}
	return c.collect(cmd.InitiatorTaskTag, write)
}

// sendData sends write[from:to] as Data-Out PDUs of one sequence.
func (c *rawClient) sendData(itt, ttt uint32, write []byte, from, to int) {
	c.t.Helper()
	var dataSN uint32
	for off := from; off < to; dataSN++ {
		n := min(to-off, int(c.params.TargetMaxRecvDSL))
		c.send(&iscsi.DataOut{
			Final: off+n == to, InitiatorTaskTag: itt, TargetTransferTag: ttt,
			ExpStatSN: c.expStatSN, DataSN: dataSN, BufferOffset: uint32(off),
		}, write[off:off+n])
		off += n
	}
}

func (c *rawClient) collect(itt uint32, write []byte) result {
	c.t.Helper()
	var res result
	for {
		hdr, data := c.read(10 * time.Second)
		switch h := hdr.(type) {
		case *iscsi.R2T:
			end := int(h.BufferOffset + h.DesiredDataTransferLength)
			c.sendData(itt, h.TargetTransferTag, write, int(h.BufferOffset), end)
		case *iscsi.DataIn:
			if int(h.BufferOffset) != len(res.data) {
				c.t.Fatalf("Data-In at offset %d after %d bytes", h.BufferOffset, len(res.data))
			}
			res.data = append(res.data, data...)
			if h.HasStatus {
				res.status, res.residual, res.under, res.over = h.Status, h.ResidualCount, h.Underflow, h.Overflow
				return res
			}
		case *iscsi.SCSIResponse:
			res.status, res.resp = h.Status, h
			res.residual, res.under, res.over = h.ResidualCount, h.Underflow, h.Overflow
			if len(data) >= 2 {
				n := int(binary.BigEndian.Uint16(data))
				res.sense = data[2 : 2+min(n, len(data)-2)]
			}
			return res
		case *iscsi.NopIn:
			// A target ping: answer it.
			if h.TargetTransferTag != iscsi.ReservedTag {
				c.send(&iscsi.NopOut{Immediate: true, InitiatorTaskTag: iscsi.ReservedTag, TargetTransferTag: h.TargetTransferTag, CmdSN: c.cmdSN, ExpStatSN: c.expStatSN}, nil)
			}
		default:
			c.t.Fatalf("unexpected %v while waiting for task 0x%x", hdr.Opcode(), itt)
		}
	}
}

// nop pings the target and waits for the echo.
func (c *rawClient) nop(data []byte, timeout time.Duration) error {
	itt := c.nextITT()
	c.send(&iscsi.NopOut{Immediate: true, InitiatorTaskTag: itt, TargetTransferTag: iscsi.ReservedTag, CmdSN: c.cmdSN, ExpStatSN: c.expStatSN}, data)
	hdr, got, err := c.tryRead(timeout)
	if err != nil {
		return err
	}
	in, ok := hdr.(*iscsi.NopIn)
	if !ok || in.InitiatorTaskTag != itt || string(got) != string(data) {
		return fmt.Errorf("bad answer to a NOP-Out: %v %+v", hdr.Opcode(), hdr)
	}
	return nil
}

func (c *rawClient) logout() {
	c.t.Helper()
	c.send(&iscsi.LogoutRequest{Immediate: true, Reason: iscsi.LogoutSession, InitiatorTaskTag: c.nextITT(), CmdSN: c.cmdSN, ExpStatSN: c.expStatSN}, nil)
	hdr, _ := c.read(5 * time.Second)
	if r, ok := hdr.(*iscsi.LogoutResponse); !ok || r.Response != iscsi.LogoutOK {
		c.t.Fatalf("bad logout response %+v", hdr)
	}
	c.expectClosed(5 * time.Second)
}

func senseOf(t testing.TB, b []byte) scsi.Sense {
	t.Helper()
	s, err := scsi.ParseSense(b)
	if err != nil {
		t.Fatalf("sense %x: %v", b, err)
	}
	return s
}
