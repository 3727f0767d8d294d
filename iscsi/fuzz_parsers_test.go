package iscsi

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// textSeeds are realistic data segments: captured login and SendTargets
// texts, and the texts this package builds.
func textSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{
		[]byte(sendTargetsAnswer),
		NewInitiatorNegotiation(fullPrefs).Offer().Encode(),
		NewInitiatorNegotiation(Preferences{SessionType: "Discovery"}).Offer().Encode(),
		[]byte("SendTargets=All\x00"),
		[]byte("CHAP_A=7\x00CHAP_I=42\x00CHAP_C=0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\x00"),
		[]byte("CHAP_N=iqn.host\x00CHAP_R=0bAAECAw==\x00CHAP_I=3\x00CHAP_C=0xffff\x00"),
		[]byte("TargetName=iqn.a\x00TargetAddress=[::1]:3260,1\x00TargetAddress=127.0.0.1\x00"),
		[]byte("=\x00A\x00\x00\x00"),
	}
	for _, name := range []string{"discovery.i2t", "discovery.t2i", "session-inquiry.i2t", "session-inquiry.t2i"} {
		fr := NewFramer(bytes.NewReader(readCapture(f, name)), io.Discard, 4096)
		fr.MaxRecvDataSegment = 1 << 20
		for {
			var h BHS
			_, data, err := fr.ReadPDU(&h)
			if err != nil {
				break
			}
			if op := h.Opcode(); op == OpLoginReq || op == OpLoginResp || op == OpTextReq || op == OpTextResp {
				seeds = append(seeds, bytes.Clone(data))
			}
		}
	}
	return seeds
}

// FuzzParseText: what parses re-encodes to text that parses the same, and
// every key and value respects the limits.
func FuzzParseText(f *testing.F) {
	for _, s := range textSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		txt, err := ParseText(b)
		if err != nil {
			if txt != nil {
				t.Fatalf("text %q with error %v", txt, err)
			}
			return
		}
		for _, p := range txt {
			if checkKey(p.Key) != nil || len(p.Value) > valueLimit(p.Key) || strings.IndexByte(p.Value, 0) >= 0 {
				t.Fatalf("bad pair %q", p)
			}
		}
		again, err := ParseText(txt.Encode())
		if err != nil || !reflect.DeepEqual(again, txt) {
			t.Fatalf("ParseText(Encode(%q)) = %q, %v", txt, again, err)
		}
		// Split across two PDUs, the same text comes out.
		if len(b) > MaxTextSize {
			return
		}
		var a TextAccumulator
		cut := len(b) / 2
		a.Add(b[:cut], true)
		a.Add(b[cut:], false)
		if acc, err := a.Text(); err != nil || !reflect.DeepEqual(acc, txt) {
			t.Fatalf("accumulated %q, %v; want %q", acc, err, txt)
		}
	})
}

// FuzzParseSendTargets: one target per TargetName, and every portal prints
// to a TargetAddress value that parses back to itself.
func FuzzParseSendTargets(f *testing.F) {
	for _, s := range textSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		txt, err := ParseText(b)
		if err != nil {
			return
		}
		targets, err := ParseSendTargets(txt)
		if err != nil {
			return
		}
		names, addrs := 0, 0
		for _, p := range txt {
			switch p.Key {
			case "TargetName":
				names++
			case "TargetAddress":
				addrs++
			}
		}
		portals := 0
		for _, tg := range targets {
			portals += len(tg.Portals)
			for _, p := range tg.Portals {
				if p.TPGT < 0 || p.TPGT > 65535 || p.Address == "" {
					t.Fatalf("portal %+v", p)
				}
				back, err := ParsePortal(FormatPortal(p))
				if err != nil || back != p {
					t.Fatalf("ParsePortal(FormatPortal(%+v) = %q) = %+v, %v", p, FormatPortal(p), back, err)
				}
			}
		}
		if len(targets) != names || portals != addrs {
			t.Fatalf("%d names, %d addresses -> %d targets, %d portals", names, addrs, len(targets), portals)
		}
	})
}

// FuzzDecodeBinary: a decoded value re-encodes as hex to the same bytes, and
// a 0x value decodes to what its hex digits say.
func FuzzDecodeBinary(f *testing.F) {
	for _, s := range []string{"0x00", "0xdeadBEEF", "0x1", "0bAAECAw==", "0b", "0x", "1234", "0b/w==",
		"0x" + strings.Repeat("a5", 64), "0bAAECAw"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		b, err := DecodeBinary(v)
		if err != nil {
			return
		}
		if len(b) == 0 {
			t.Fatalf("DecodeBinary(%q) = no bytes and no error", v)
		}
		if len(v) < 3 || !strings.HasPrefix(strings.ToLower(v), "0x") && !strings.HasPrefix(strings.ToLower(v), "0b") {
			t.Fatalf("DecodeBinary(%q) accepted a value without a prefix", v)
		}
		again, err := DecodeBinary(EncodeHex(b))
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("DecodeBinary(EncodeHex(%x)) = %x, %v", b, again, err)
		}
		if strings.HasPrefix(strings.ToLower(v), "0x") {
			digits := strings.ToLower(v[2:])
			if len(digits)%2 == 1 {
				digits = "0" + digits
			}
			if EncodeHex(b) != "0x"+digits {
				t.Fatalf("DecodeBinary(%q) = %x", v, b)
			}
		}
	})
}

// FuzzNegotiation: arbitrary text offered to our target, and arbitrary text
// answered to our initiator, never panics; failures are NegotiationErrors;
// every answer is a legal value; and the outcome keeps FirstBurstLength <=
// MaxBurstLength. An in-process negotiation with fuzzed preferences ends with
// both sides agreeing.
func FuzzNegotiation(f *testing.F) {
	for _, s := range textSeeds(f) {
		f.Add(s, false, uint32(0), uint32(0), uint8(0))
		f.Add(s, true, uint32(65536), uint32(8192), uint8(0xff))
	}
	f.Fuzz(func(t *testing.T, b []byte, discovery bool, burst, first uint32, bits uint8) {
		txt, err := ParseText(b)
		if err != nil {
			return
		}
		var ne *NegotiationError
		sessionType := "Normal"
		if discovery {
			sessionType = "Discovery"
		}
		bit := func(i int) bool { return bits&(1<<i) != 0 }
		// Limits come from configuration: zero (the default) or a legal length.
		legal := func(v uint32) uint32 {
			if v == 0 {
				return 0
			}
			return 512 + v%(MaxDataSegmentLength-511)
		}
		burst, first = legal(burst), legal(first)
		limits := TargetLimits{MaxBurstLength: burst, FirstBurstLength: first, Digests: bit(0),
			ImmediateData: bit(1), InitialR2T: bit(2), MaxRecvDataSegmentLength: legal(first / 3)}

		// The target's side.
		tn := NewTargetNegotiation(sessionType, limits)
		resp, err := tn.Respond(txt)
		if err != nil && !errors.As(err, &ne) {
			t.Fatalf("target: %T %v", err, err)
		}
		if err == nil {
			checkAnswers(t, txt, resp)
			if p := tn.Params(); p.FirstBurstLength > p.MaxBurstLength {
				t.Fatalf("target params %+v", p)
			}
		}

		// The initiator's side.
		prefs := Preferences{HeaderDigest: bit(3), DataDigest: bit(4), ImmediateData: bit(5), InitialR2T: bit(6),
			MaxBurstLength: burst, FirstBurstLength: first}
		if discovery {
			prefs.SessionType = "Discovery"
		}
		in := NewInitiatorNegotiation(prefs)
		reply, err := in.ApplyResponse(txt)
		if err != nil && !errors.As(err, &ne) {
			t.Fatalf("initiator: %T %v", err, err)
		}
		if err == nil {
			if p := in.Params(); p.FirstBurstLength > p.MaxBurstLength {
				t.Fatalf("initiator params %+v", p)
			}
			if _, err := ParseText(reply.Encode()); err != nil {
				t.Fatalf("reply %q does not parse: %v", reply, err)
			}
		}

		// Both of ours, in process.
		in = NewInitiatorNegotiation(prefs)
		tn = NewTargetNegotiation(sessionType, limits)
		resp, err = tn.Respond(in.Offer())
		if err != nil {
			return
		}
		if _, err := in.ApplyResponse(resp); err != nil {
			return
		}
		if in.Params() != tn.Params() {
			t.Fatalf("sides disagree for %+v / %+v:\ninitiator %+v\n   target %+v", prefs, limits, in.Params(), tn.Params())
		}
	})
}

// checkAnswers verifies a target response: one answer per negotiable key
// offered, each a legal value, plus the target's own declaration.
func checkAnswers(t *testing.T, offer, resp Text) {
	t.Helper()
	if _, err := ParseText(resp.Encode()); err != nil {
		t.Fatalf("response %q does not parse: %v", resp, err)
	}
	for _, p := range resp {
		if _, offered := offer.Get(p.Key); !offered && p.Key != "MaxRecvDataSegmentLength" {
			t.Fatalf("answer to a key never offered: %q", p)
		}
		switch p.Value {
		case valNotUnderstood, valIrrelevant, valReject:
			continue
		}
		def, known := keyDefs[p.Key]
		if !known {
			t.Fatalf("answer %q to an unknown key", p)
		}
		if err := def.checkValue(p.Value); err != nil {
			t.Fatalf("answer %q: %v", p, err)
		}
	}
}

// FuzzChapTarget: whatever an initiator sends, Verify against a fresh random
// challenge never succeeds, never panics, fails with one of the CHAP errors,
// and never shows a secret. The initiator's side meets arbitrary challenges
// and answers the same way.
func FuzzChapTarget(f *testing.F) {
	for _, s := range textSeeds(f) {
		f.Add("5,6,7,8", s)
	}
	f.Add("7", []byte("CHAP_N=host\x00CHAP_R=0x"+strings.Repeat("00", 32)+"\x00CHAP_I=1\x00CHAP_C=0x"+strings.Repeat("11", 32)+"\x00"))
	f.Add("5", []byte("CHAP_N=host\x00CHAP_R=0b"+strings.Repeat("A", 24)+"\x00"))
	f.Fuzz(func(t *testing.T, algs string, b []byte) {
		resp, err := ParseText(b)
		if err != nil {
			return
		}
		lookup := lookupOf(map[string][]byte{"host": iniSecret, "": []byte("empty-user-secret")})
		tgt := NewChapTarget(lookup, &ChapCredentials{"group", tgtSecret})
		if _, err := tgt.Challenge(Text{{"CHAP_A", algs}}); err != nil {
			if !errors.Is(err, ErrChapProtocol) {
				t.Fatalf("Challenge: %v", err)
			}
			return
		}
		user, answer, err := tgt.Verify(resp)
		if err == nil {
			t.Fatalf("Verify accepted %q as %q without knowing the challenge (answer %q)", resp, user, answer)
		}
		if !errors.Is(err, ErrChapAuthFailed) && !errors.Is(err, ErrChapProtocol) {
			t.Fatalf("Verify: %T %v", err, err)
		}
		if secretLeaks(err) || answer != nil {
			t.Fatalf("Verify: %v, answer %q", err, answer)
		}

		// The initiator's side: arbitrary challenge, arbitrary mutual answer.
		ini := NewChapInitiator("host", iniSecret, &ChapCredentials{"group", tgtSecret}, nil)
		out, err := ini.Respond(resp)
		if err != nil {
			if !errors.Is(err, ErrChapProtocol) || secretLeaks(err) {
				t.Fatalf("initiator Respond: %v", err)
			}
			return
		}
		if _, err := ParseText(out.Encode()); err != nil {
			t.Fatalf("initiator answer %q does not parse: %v", out, err)
		}
		if err := ini.Verify(resp); err == nil {
			t.Fatalf("initiator accepted %q as the target's mutual answer", resp)
		} else if secretLeaks(err) {
			t.Fatalf("initiator Verify: %v", err)
		}
	})
}

// FuzzParseHeader: any 48 bytes with a known opcode decode, and decoding is a
// fixed point of encode-then-decode.
func FuzzParseHeader(f *testing.F) {
	for _, hdr := range allHeaders() {
		var h BHS
		hdr.Marshal(&h)
		f.Add(h[:])
	}
	for _, name := range []string{"discovery.t2i", "session-inquiry.i2t", "session-inquiry.t2i"} {
		b := readCapture(f, name)
		f.Add(b[:BHSSize])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < BHSSize {
			return
		}
		var h BHS
		copy(h[:], b)
		hdr, err := ParseHeader(&h)
		if h.Opcode().Known() != (err == nil) {
			t.Fatalf("%v: Known %v, err %v", h.Opcode(), h.Opcode().Known(), err)
		}
		if err != nil {
			return
		}
		var again BHS
		hdr.Marshal(&again)
		if again.Opcode() != h.Opcode() || again.InitiatorTaskTag() != h.InitiatorTaskTag() &&
			h.Opcode() != OpAsyncMessage && h.Opcode() != OpReject {
			t.Fatalf("%v: opcode or ITT changed: %x -> %x", h.Opcode(), h, again)
		}
		second, err := ParseHeader(&again)
		if err != nil || !reflect.DeepEqual(second, hdr) {
			t.Fatalf("%v: %+v -> %+v, %v", h.Opcode(), hdr, second, err)
		}
	})
}
