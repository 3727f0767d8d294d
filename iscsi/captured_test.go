package iscsi

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Captured traffic between libiscsi and tgtd; see testdata/tgtd/README.md.
func readCapture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "tgtd", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type capturedPDU struct {
	bhs  BHS
	hdr  Header
	data []byte
}

func readStream(t *testing.T, name string) []capturedPDU {
	t.Helper()
	f := NewFramer(bytes.NewReader(readCapture(t, name)), io.Discard, 4096)
	f.MaxRecvDataSegment = 262144
	var out []capturedPDU
	for {
		var h BHS
		_, data, err := f.ReadPDU(&h)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s, PDU %d: %v", name, len(out), err)
		}
		hdr, err := ParseHeader(&h)
		if err != nil {
			t.Fatalf("%s, PDU %d: %v", name, len(out), err)
		}
		out = append(out, capturedPDU{h, hdr, bytes.Clone(data)})
	}
}

// Every captured header re-encodes to the very bytes libiscsi and tgtd sent.
func TestCapturedHeadersReencode(t *testing.T) {
	for _, name := range []string{"discovery.i2t", "discovery.t2i", "session-inquiry.i2t", "session-inquiry.t2i"} {
		pdus := readStream(t, name)
		if len(pdus) < 3 {
			t.Fatalf("%s: only %d PDUs", name, len(pdus))
		}
		for i, p := range pdus {
			var again BHS
			p.hdr.Marshal(&again)
			again.setLengths(p.bhs.TotalAHSLength(), p.bhs.DataSegmentLength())
			if again != p.bhs {
				t.Errorf("%s PDU %d (%v):\n got %x\nwant %x", name, i, p.hdr.Opcode(), again, p.bhs)
			}
		}
	}
}

func TestCapturedDiscovery(t *testing.T) {
	in := readStream(t, "discovery.i2t")
	out := readStream(t, "discovery.t2i")
	ops := func(ps []capturedPDU) (o []Opcode) {
		for _, p := range ps {
			o = append(o, p.hdr.Opcode())
		}
		return o
	}
	if got := ops(in); !reflect.DeepEqual(got, []Opcode{OpLoginReq, OpTextReq, OpLogoutReq}) {
		t.Fatalf("initiator PDUs %v", got)
	}
	if got := ops(out); !reflect.DeepEqual(got, []Opcode{OpLoginResp, OpTextResp, OpLogoutResp}) {
		t.Fatalf("target PDUs %v", got)
	}
	lr := out[0].hdr.(*LoginResponse)
	if lr.Status != LoginSuccess || !lr.Transit || lr.NSG != StageFullFeature || lr.TSIH == 0 {
		t.Fatalf("login response %+v", lr)
	}
	req, err := ParseText(in[1].data)
	if err != nil || !reflect.DeepEqual(req, Text{{"SendTargets", "All"}}) {
		t.Fatalf("text request %q, %v", req, err)
	}
	txt, err := ParseText(out[1].data)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := ParseSendTargets(txt)
	want := []DiscoveredTarget{{Name: "iqn.2024-01.org.hitkit:capture.vol1", Portals: []Portal{{"127.0.0.1:13261", 1}}}}
	if err != nil || !reflect.DeepEqual(targets, want) {
		t.Fatalf("SendTargets: %+v, %v", targets, err)
	}

	// libiscsi's discovery offer, answered by our target.
	offer, err := ParseText(in[0].data)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := NewTargetNegotiation("Discovery", TargetLimits{Digests: true}).Respond(offer)
	if err != nil {
		t.Fatal(err)
	}
	wantResp := Text{{"HeaderDigest", "None"}, {"DataDigest", "None"}, {"InitialR2T", "Irrelevant"},
		{"ImmediateData", "Irrelevant"}, {"MaxBurstLength", "Irrelevant"}, {"FirstBurstLength", "Irrelevant"},
		{"DefaultTime2Wait", "2"}, {"DefaultTime2Retain", "0"}, {"MaxOutstandingR2T", "Irrelevant"},
		{"ErrorRecoveryLevel", "0"}, {"IFMarker", "No"}, {"OFMarker", "No"}, {"MaxConnections", "Irrelevant"},
		{"DataPDUInOrder", "Irrelevant"}, {"DataSequenceInOrder", "Irrelevant"}, {"MaxRecvDataSegmentLength", "8192"}}
	if !reflect.DeepEqual(resp, wantResp) {
		t.Fatalf("our answer to libiscsi\n got %q\nwant %q", resp, wantResp)
	}
}

// tgtd's answer to a normal-session login, applied by our initiator when it
// offered what libiscsi offered.
func TestCapturedTgtdLoginAnswer(t *testing.T) {
	out := readStream(t, "session-inquiry.t2i")
	resp, err := ParseText(out[0].data)
	if err != nil {
		t.Fatal(err)
	}
	in := NewInitiatorNegotiation(Preferences{MaxRecvDataSegmentLength: 262144, MaxBurstLength: 262144,
		FirstBurstLength: 262144, ImmediateData: true})
	reply, err := in.ApplyResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	// tgtd echoes the marker keys we never raised; we answer them as offers.
	if !reflect.DeepEqual(reply, Text{{"IFMarker", "No"}, {"OFMarker", "No"}}) {
		t.Fatalf("reply %q", reply)
	}
	want := DefaultParams()
	want.InitiatorMaxRecvDSL = 262144
	want.TargetMaxRecvDSL = 8192 // tgtd did not declare one
	want.InitialR2T, want.ImmediateData = true, true
	want.MaxBurstLength, want.FirstBurstLength = 262144, 65536
	want.DefaultTime2Wait, want.DefaultTime2Retain = 2, 0
	want.TargetPortalGroupTag = 1
	if got := in.Params(); got != want {
		t.Fatalf("params\n got %+v\nwant %+v", got, want)
	}

	// The unit attention of the first command after login.
	var sr *SCSIResponse
	for _, p := range out {
		if r, ok := p.hdr.(*SCSIResponse); ok && r.Status == 0x02 {
			sr = r
			if !bytes.Equal(p.data[:2], []byte{0, 18}) || p.data[2] != 0x70 || p.data[2+12] != 0x29 {
				t.Fatalf("sense segment %x", p.data)
			}
		}
	}
	if sr == nil || sr.Response != RespCommandCompleted {
		t.Fatalf("no CHECK CONDITION response: %+v", sr)
	}
}
