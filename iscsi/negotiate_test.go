package iscsi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// negotiate runs one operational negotiation in process: the initiator's
// offer goes to the target, whose answer goes back to the initiator. It
// returns both sides' outcome.
func negotiate(t *testing.T, prefs Preferences, limits TargetLimits) (ini, tgt Params, err error) {
	t.Helper()
	sessionType := prefs.SessionType
	if sessionType == "" {
		sessionType = "Normal"
	}
	in := NewInitiatorNegotiation(prefs)
	tn := NewTargetNegotiation(sessionType, limits)
	resp, err := tn.Respond(in.Offer())
	if err != nil {
		return in.Params(), tn.Params(), fmt.Errorf("target: %w", err)
	}
	reply, err := in.ApplyResponse(resp)
	if err != nil {
		return in.Params(), tn.Params(), fmt.Errorf("initiator: %w", err)
	}
	if len(reply) != 0 {
		t.Fatalf("initiator answered keys the target never offered: %q", reply)
	}
	return in.Params(), tn.Params(), nil
}

func or(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// expectedParams computes the outcome of RFC 7143 section 6.2's rules
// independently of the code under test, for preferences whose burst
// lengths are either both given or both left at their defaults.
func expectedParams(p Preferences, l TargetLimits) Params {
	want := DefaultParams()
	want.InitiatorMaxRecvDSL = or(p.MaxRecvDataSegmentLength, 8192)
	want.TargetMaxRecvDSL = or(l.MaxRecvDataSegmentLength, 8192)
	want.HeaderDigest = p.HeaderDigest && l.Digests
	want.DataDigest = p.DataDigest && l.Digests
	if p.SessionType == "Discovery" {
		want.SessionType = "Discovery"
		return want
	}
	want.InitialR2T = p.InitialR2T || l.InitialR2T          // OR
	want.ImmediateData = p.ImmediateData && l.ImmediateData // AND
	if p.MaxBurstLength != 0 {
		want.MaxBurstLength = min(p.MaxBurstLength, or(l.MaxBurstLength, 1<<20))
	}
	if p.FirstBurstLength != 0 {
		want.FirstBurstLength = min(p.FirstBurstLength, or(p.MaxBurstLength, 262144), or(l.FirstBurstLength, 65536))
	}
	want.DefaultTime2Wait = 2   // max(0 offered, target's 2)
	want.DefaultTime2Retain = 0 // min(0 offered, target's 0)
	want.MaxOutstandingR2T = 1
	want.ErrorRecoveryLevel = 0
	want.MaxConnections = 1
	want.DataPDUInOrder, want.DataSequenceInOrder = true, true
	return want
}

// TestNegotiationMatrix negotiates many preference and limit combinations
// and checks that both sides reach the same, rule-conforming parameters.
func TestNegotiationMatrix(t *testing.T) {
	type bursts struct{ max, first uint32 }
	initiatorBursts := []bursts{{0, 0}, {262144, 65536}, {1 << 20, 262144}, {65536, 65536},
		{16777215, 16777215}, {4096, 512}, {512, 512}}
	targetBursts := []bursts{{0, 0}, {1 << 20, 65536}, {262144, 262144}, {16777215, 8192}, {16777215, 16777215}}
	mrdsls := []uint32{0, 512, 8192, 262144, 16777215}
	n := 0
	for _, ib := range initiatorBursts {
		for _, tb := range targetBursts {
			for bits := range 1 << 7 {
				bit := func(i int) bool { return bits&(1<<i) != 0 }
				prefs := Preferences{
					HeaderDigest: bit(0), DataDigest: bit(1), ImmediateData: bit(2), InitialR2T: bit(3),
					MaxBurstLength: ib.max, FirstBurstLength: ib.first,
					MaxRecvDataSegmentLength: mrdsls[bits%len(mrdsls)],
				}
				limits := TargetLimits{
					Digests: bit(0) && bit(1) || bit(6), ImmediateData: bit(4), InitialR2T: bit(5),
					MaxBurstLength: tb.max, FirstBurstLength: tb.first,
					MaxRecvDataSegmentLength: mrdsls[(bits/3)%len(mrdsls)],
				}
				if (prefs.HeaderDigest || prefs.DataDigest) && !limits.Digests {
					continue // a failed negotiation; see TestNegotiationRequiredDigestRefused
				}
				n++
				name := fmt.Sprintf("%+v/%+v", prefs, limits)
				ip, tp, err := negotiate(t, prefs, limits)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !reflect.DeepEqual(ip, tp) {
					t.Fatalf("%s: the sides disagree\ninitiator %+v\n   target %+v", name, ip, tp)
				}
				if want := expectedParams(prefs, limits); !reflect.DeepEqual(ip, want) {
					t.Fatalf("%s:\n got %+v\nwant %+v", name, ip, want)
				}
				if ip.FirstBurstLength > ip.MaxBurstLength {
					t.Fatalf("%s: FirstBurstLength %d > MaxBurstLength %d", name, ip.FirstBurstLength, ip.MaxBurstLength)
				}
			}
		}
	}
	if n < 1000 {
		t.Fatalf("only %d combinations ran", n)
	}
}

func TestInitiatorOfferText(t *testing.T) {
	in := NewInitiatorNegotiation(Preferences{HeaderDigest: true, MaxRecvDataSegmentLength: 262144,
		MaxBurstLength: 1 << 20, FirstBurstLength: 1 << 21, ImmediateData: true})
	want := "HeaderDigest=CRC32C\x00DataDigest=None\x00MaxConnections=1\x00InitialR2T=No\x00ImmediateData=Yes\x00" +
		"MaxRecvDataSegmentLength=262144\x00MaxBurstLength=1048576\x00FirstBurstLength=1048576\x00" +
		"DefaultTime2Wait=0\x00DefaultTime2Retain=0\x00MaxOutstandingR2T=1\x00DataPDUInOrder=Yes\x00" +
		"DataSequenceInOrder=Yes\x00ErrorRecoveryLevel=0\x00"
	if got := string(in.Offer().Encode()); got != want {
		t.Fatalf("offer\n got %q\nwant %q", got, want)
	}
	// Defaults leave the burst keys out.
	got := NewInitiatorNegotiation(Preferences{}).Offer()
	if _, ok := got.Get("MaxBurstLength"); ok {
		t.Fatalf("default offer has MaxBurstLength: %q", got)
	}
	if v, _ := got.Get("MaxRecvDataSegmentLength"); v != "8192" {
		t.Fatalf("default MaxRecvDataSegmentLength = %q", v)
	}
}

// A FirstBurstLength preference is clamped to the MaxBurstLength that will
// apply, which is the RFC default 262144 when none is offered.
func TestInitiatorFirstBurstWithDefaultMaxBurst(t *testing.T) {
	in := NewInitiatorNegotiation(Preferences{FirstBurstLength: 65536})
	if v, _ := in.Offer().Get("FirstBurstLength"); v != "65536" {
		t.Fatalf("BUG: Preferences{FirstBurstLength: 65536} with no MaxBurstLength offers FirstBurstLength=%s, want 65536 "+
			"(it is clamped to max(0, 512) instead of the default MaxBurstLength 262144)", v)
	}
}

// A target whose MaxBurstLength limit is below its (default) FirstBurstLength
// must still produce FirstBurstLength <= MaxBurstLength, not fail the login.
func TestTargetClampsFirstBurstToMaxBurst(t *testing.T) {
	prefs := Preferences{MaxBurstLength: 262144, FirstBurstLength: 65536}
	ip, tp, err := negotiate(t, prefs, TargetLimits{MaxBurstLength: 16384})
	if err != nil {
		t.Fatalf("BUG: TargetLimits{MaxBurstLength: 16384} (FirstBurstLength default 65536) against %+v: %v", prefs, err)
	}
	if ip.MaxBurstLength != 16384 || ip.FirstBurstLength != 16384 || ip != tp {
		t.Fatalf("initiator %+v, target %+v", ip, tp)
	}
}

func TestDiscoveryNegotiation(t *testing.T) {
	prefs := Preferences{SessionType: "Discovery", MaxRecvDataSegmentLength: 32768, HeaderDigest: true,
		MaxBurstLength: 4096, ImmediateData: true}
	in := NewInitiatorNegotiation(prefs)
	offer := in.Offer()
	for _, k := range []string{"MaxBurstLength", "ImmediateData", "InitialR2T", "MaxConnections", "ErrorRecoveryLevel"} {
		if _, ok := offer.Get(k); ok {
			t.Errorf("discovery offer carries %s: %q", k, offer)
		}
	}
	ip, tp, err := negotiate(t, prefs, TargetLimits{Digests: true, MaxRecvDataSegmentLength: 65536})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultParams()
	want.SessionType = "Discovery"
	want.HeaderDigest = true
	want.InitiatorMaxRecvDSL, want.TargetMaxRecvDSL = 32768, 65536
	if ip != want || tp != want {
		t.Fatalf("initiator %+v\ntarget %+v\nwant %+v", ip, tp, want)
	}
}

func TestTargetRespond(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sessionType string
		limits      TargetLimits
		offer       Text
		want        Text // MaxRecvDataSegmentLength=8192 is appended by the target
	}{
		{name: "unknown key", offer: Text{{"X-com.example.Foo", "1"}, {"Bogus", "x"}},
			want: Text{{"X-com.example.Foo", "NotUnderstood"}, {"Bogus", "NotUnderstood"}}},
		{name: "session keys are the caller's", offer: Text{{"InitiatorName", "iqn.x"}, {"TargetName", "iqn.y"},
			{"SessionType", "Normal"}, {"AuthMethod", "None"}}, want: nil},
		{name: "out of range numbers", offer: Text{{"MaxBurstLength", "511"}, {"FirstBurstLength", "16777216"},
			{"MaxConnections", "0"}, {"ErrorRecoveryLevel", "3"}, {"DefaultTime2Wait", "3601"},
			{"MaxOutstandingR2T", "65536"}, {"MaxRecvDataSegmentLength", "100"}},
			want: Text{{"MaxBurstLength", "Reject"}, {"FirstBurstLength", "Reject"}, {"MaxConnections", "Reject"},
				{"ErrorRecoveryLevel", "Reject"}, {"DefaultTime2Wait", "Reject"}, {"MaxOutstandingR2T", "Reject"},
				{"MaxRecvDataSegmentLength", "Reject"}}},
		{name: "not numbers", offer: Text{{"MaxBurstLength", "lots"}, {"FirstBurstLength", "-1"},
			{"DefaultTime2Retain", "+5"}, {"MaxOutstandingR2T", ""}},
			want: Text{{"MaxBurstLength", "Reject"}, {"FirstBurstLength", "Reject"},
				{"DefaultTime2Retain", "Reject"}, {"MaxOutstandingR2T", "Reject"}}},
		{name: "not booleans", offer: Text{{"InitialR2T", "yes"}, {"ImmediateData", "1"}, {"DataPDUInOrder", ""}},
			want: Text{{"InitialR2T", "Reject"}, {"ImmediateData", "Reject"}, {"DataPDUInOrder", "Reject"}}},
		{name: "digest lists", limits: TargetLimits{Digests: true},
			offer: Text{{"HeaderDigest", "CRC32C,None"}, {"DataDigest", "None,CRC32C"}},
			want:  Text{{"HeaderDigest", "CRC32C"}, {"DataDigest", "None"}}},
		{name: "digest list without a common value", offer: Text{{"HeaderDigest", "CRC32C"}, {"DataDigest", "MD5"}},
			want: Text{{"HeaderDigest", "Reject"}, {"DataDigest", "Reject"}}},
		{name: "digests off: None chosen from a list", offer: Text{{"HeaderDigest", "CRC32C,None"}},
			want: Text{{"HeaderDigest", "None"}}},
		{name: "numeric rules", limits: TargetLimits{MaxBurstLength: 65536, FirstBurstLength: 8192, MaxOutstandingR2T: 4},
			offer: Text{{"MaxBurstLength", "262144"}, {"FirstBurstLength", "4096"}, {"MaxOutstandingR2T", "16"},
				{"DefaultTime2Wait", "5"}, {"DefaultTime2Retain", "60"}, {"MaxConnections", "8"}, {"ErrorRecoveryLevel", "2"}},
			want: Text{{"MaxBurstLength", "65536"}, {"FirstBurstLength", "4096"}, {"MaxOutstandingR2T", "4"},
				{"DefaultTime2Wait", "5"}, {"DefaultTime2Retain", "0"}, {"MaxConnections", "1"}, {"ErrorRecoveryLevel", "0"}}},
		{name: "boolean rules", limits: TargetLimits{InitialR2T: false, ImmediateData: true},
			offer: Text{{"InitialR2T", "No"}, {"ImmediateData", "No"}, {"DataPDUInOrder", "No"}, {"DataSequenceInOrder", "No"},
				{"IFMarker", "Yes"}, {"OFMarker", "No"}},
			want: Text{{"InitialR2T", "No"}, {"ImmediateData", "No"}, {"DataPDUInOrder", "Yes"}, {"DataSequenceInOrder", "Yes"},
				{"IFMarker", "No"}, {"OFMarker", "No"}}},
		{name: "discovery: irrelevant keys", sessionType: "Discovery",
			offer: Text{{"ImmediateData", "Yes"}, {"MaxBurstLength", "262144"}, {"MaxConnections", "1"}, {"HeaderDigest", "None"},
				{"ErrorRecoveryLevel", "0"}},
			want: Text{{"ImmediateData", "Irrelevant"}, {"MaxBurstLength", "Irrelevant"}, {"MaxConnections", "Irrelevant"},
				{"HeaderDigest", "None"}, {"ErrorRecoveryLevel", "0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.sessionType
			if st == "" {
				st = "Normal"
			}
			tn := NewTargetNegotiation(st, tc.limits)
			got, err := tn.Respond(tc.offer)
			if err != nil {
				t.Fatal(err)
			}
			want := append(tc.want, Pair{"MaxRecvDataSegmentLength", "8192"})
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Respond(%q)\n got %q\nwant %q", tc.offer, got, want)
			}
		})
	}
}

func TestTargetRespondParams(t *testing.T) {
	tn := NewTargetNegotiation("Normal", TargetLimits{MaxRecvDataSegmentLength: 131072, MaxBurstLength: 65536})
	resp, err := tn.Respond(Text{{"MaxRecvDataSegmentLength", "262144"}, {"MaxBurstLength", "1048576"}})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := resp.Get("MaxRecvDataSegmentLength"); v != "131072" {
		t.Fatalf("declared %q", v)
	}
	p := tn.Params()
	if p.InitiatorMaxRecvDSL != 262144 || p.TargetMaxRecvDSL != 131072 || p.MaxBurstLength != 65536 {
		t.Fatalf("params %+v", p)
	}
	// The declaration goes out once, with the first answer.
	resp, err = tn.Respond(Text{{"InitialR2T", "Yes"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp, Text{{"InitialR2T", "Yes"}}) {
		t.Fatalf("second answer %q", resp)
	}
}

func TestTargetRespondErrors(t *testing.T) {
	var ne *NegotiationError
	tn := NewTargetNegotiation("Normal", TargetLimits{})
	_, err := tn.Respond(Text{{"MaxBurstLength", "65536"}, {"MaxBurstLength", "65536"}})
	if !errors.As(err, &ne) || ne.Key != "MaxBurstLength" || ne.Reason != "key sent twice" {
		t.Fatalf("duplicate in one text: %v", err)
	}

	tn = NewTargetNegotiation("Normal", TargetLimits{})
	if _, err := tn.Respond(Text{{"ImmediateData", "Yes"}}); err != nil {
		t.Fatal(err)
	}
	_, err = tn.Respond(Text{{"ImmediateData", "No"}})
	if !errors.As(err, &ne) || ne.Key != "ImmediateData" || !strings.Contains(ne.Error(), "negotiated twice") {
		t.Fatalf("key again in a later text: %v", err)
	}

	// Inconsistent bursts from the initiator.
	tn = NewTargetNegotiation("Normal", TargetLimits{FirstBurstLength: 1 << 20})
	_, err = tn.Respond(Text{{"MaxBurstLength", "8192"}, {"FirstBurstLength", "65536"}})
	if !errors.As(err, &ne) || ne.Key != "FirstBurstLength" || !strings.Contains(ne.Reason, "exceeds MaxBurstLength 8192") {
		t.Fatalf("first > max: %v", err)
	}
}

// respondTo builds an answer to an offer the way a target would, with
// overrides for the keys under test.
func respondTo(offer Text, overrides ...Pair) Text {
	var resp Text
	for _, p := range offer {
		resp = append(resp, p)
	}
	resp.Set("DefaultTime2Wait", "2")
	resp.Set("MaxRecvDataSegmentLength", "65536")
	for _, o := range overrides {
		if o.Value == "" {
			var cut Text
			for _, p := range resp {
				if p.Key != o.Key {
					cut = append(cut, p)
				}
			}
			resp = cut
			continue
		}
		resp.Set(o.Key, o.Value)
	}
	return resp
}

var fullPrefs = Preferences{HeaderDigest: true, DataDigest: false, MaxRecvDataSegmentLength: 262144,
	MaxBurstLength: 262144, FirstBurstLength: 65536, ImmediateData: true, InitialR2T: false}

func TestInitiatorRejectsIllegalAnswers(t *testing.T) {
	for _, tc := range []struct {
		answer     Pair
		wantReason string
	}{
		{Pair{"MaxBurstLength", "524288"}, "not a legal answer to our offer of 262144"},
		{Pair{"FirstBurstLength", "131072"}, "not a legal answer to our offer of 65536"},
		{Pair{"HeaderDigest", "None"}, "does not do CRC32C"},
		{Pair{"DataDigest", "CRC32C"}, "not one of the offered values None"},
		{Pair{"HeaderDigest", "CRC32C,None"}, "not one of the offered values CRC32C"},
		{Pair{"InitialR2T", "Yes"}, ""},   // OR: Yes is a legal answer to No
		{Pair{"ImmediateData", "No"}, ""}, // AND: No is a legal answer to Yes
		{Pair{"DataPDUInOrder", "No"}, "not a legal answer to our offer of Yes"},
		{Pair{"DataSequenceInOrder", "No"}, "not a legal answer"},
		{Pair{"MaxConnections", "2"}, "not a legal answer to our offer of 1"},
		{Pair{"ErrorRecoveryLevel", "1"}, "not a legal answer to our offer of 0"},
		{Pair{"DefaultTime2Retain", "20"}, "not a legal answer to our offer of 0"},
		{Pair{"DefaultTime2Wait", "3600"}, ""}, // max rule: anything at or above 0
		{Pair{"MaxOutstandingR2T", "2"}, "not a legal answer to our offer of 1"},
		{Pair{"MaxBurstLength", "511"}, "outside 512..16777215"},
		{Pair{"MaxBurstLength", "0x1000"}, "outside 512..16777215"},
		{Pair{"DefaultTime2Wait", "3601"}, "outside 0..3600"},
		{Pair{"MaxRecvDataSegmentLength", "16777216"}, "outside 512..16777215"},
		{Pair{"MaxRecvDataSegmentLength", "lots"}, "outside 512..16777215"},
		{Pair{"ImmediateData", "yes"}, `"yes" is not Yes or No`},
		{Pair{"HeaderDigest", ""}, "empty list"},
	} {
		t.Run(tc.answer.Key+"="+tc.answer.Value, func(t *testing.T) {
			in := NewInitiatorNegotiation(fullPrefs)
			resp := respondTo(in.Offer(), tc.answer)
			if tc.answer.Value == "" {
				resp = append(resp, tc.answer) // respondTo would delete it
			}
			_, err := in.ApplyResponse(resp)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("legal answer refused: %v", err)
				}
				return
			}
			var ne *NegotiationError
			if !errors.As(err, &ne) {
				t.Fatalf("err = %v, want a NegotiationError", err)
			}
			if ne.Key != tc.answer.Key || ne.Value != tc.answer.Value || !strings.Contains(ne.Reason, tc.wantReason) {
				t.Fatalf("err = %#v, want key %s and a reason containing %q", ne, tc.answer.Key, tc.wantReason)
			}
			if !strings.Contains(err.Error(), "negotiation of "+tc.answer.Key) {
				t.Fatalf("message %q", err)
			}
		})
	}
}

// NotUnderstood, Irrelevant and Reject leave the key at its RFC default.
func TestInitiatorAcceptsRefusals(t *testing.T) {
	for _, v := range []string{"NotUnderstood", "Irrelevant", "Reject"} {
		for _, key := range []string{"MaxBurstLength", "FirstBurstLength", "ImmediateData", "InitialR2T", "DefaultTime2Wait", "DataDigest"} {
			in := NewInitiatorNegotiation(fullPrefs)
			if _, err := in.ApplyResponse(respondTo(in.Offer(), Pair{key, v})); err != nil {
				t.Fatalf("%s=%s: %v", key, v, err)
			}
			p, d := in.Params(), DefaultParams()
			var got, want any
			switch key {
			case "MaxBurstLength":
				got, want = p.MaxBurstLength, d.MaxBurstLength
			case "FirstBurstLength":
				got, want = p.FirstBurstLength, d.FirstBurstLength
			case "ImmediateData":
				got, want = p.ImmediateData, d.ImmediateData
			case "InitialR2T":
				got, want = p.InitialR2T, d.InitialR2T
			case "DefaultTime2Wait":
				got, want = p.DefaultTime2Wait, d.DefaultTime2Wait
			case "DataDigest":
				got, want = p.DataDigest, d.DataDigest
			}
			if got != want {
				t.Errorf("%s=%s: %v, want the default %v", key, v, got, want)
			}
		}
	}
}

// When the initiator requires CRC32C and the target cannot do it, the login
// must fail with a clear reason whatever form the target's refusal takes.
func TestNegotiationRequiredDigestRefused(t *testing.T) {
	for _, answer := range []string{"None", "Reject", "NotUnderstood", "Irrelevant"} {
		t.Run(answer, func(t *testing.T) {
			in := NewInitiatorNegotiation(Preferences{HeaderDigest: true})
			_, err := in.ApplyResponse(respondTo(in.Offer(), Pair{"HeaderDigest", answer}))
			var ne *NegotiationError
			if !errors.As(err, &ne) || !strings.Contains(ne.Error(), "does not do CRC32C") {
				t.Fatalf("BUG: required HeaderDigest=CRC32C answered %q: err = %v, Params().HeaderDigest = %v; "+
					"want a NegotiationError saying the target does not do CRC32C", answer, err, in.Params().HeaderDigest)
			}
		})
	}
	// In process, against our own target without digests: it answers Reject.
	t.Run("own target", func(t *testing.T) {
		ip, _, err := negotiate(t, Preferences{DataDigest: true}, TargetLimits{Digests: false})
		if err == nil || !strings.Contains(err.Error(), "does not do CRC32C") {
			t.Fatalf("BUG: DataDigest required, target without digests: err = %v, DataDigest = %v", err, ip.DataDigest)
		}
	})
}

func TestInitiatorDuplicateAnswers(t *testing.T) {
	var ne *NegotiationError
	in := NewInitiatorNegotiation(fullPrefs)
	resp := append(respondTo(in.Offer()), Pair{"MaxBurstLength", "8192"})
	if _, err := in.ApplyResponse(resp); !errors.As(err, &ne) || ne.Reason != "key sent twice" {
		t.Fatalf("key twice in one response: %v", err)
	}

	// The same key again in a later response is a protocol error too
	// (RFC 7143 section 6.3: a key is negotiated at most once).
	in = NewInitiatorNegotiation(fullPrefs)
	if _, err := in.ApplyResponse(respondTo(in.Offer())); err != nil {
		t.Fatal(err)
	}
	if !in.Params().ImmediateData {
		t.Fatal("ImmediateData=Yes did not settle")
	}
	reply, err := in.ApplyResponse(Text{{"ImmediateData", "No"}})
	if !errors.As(err, &ne) {
		t.Fatalf("BUG: ImmediateData answered again after it settled at Yes: err = %v, reply %q, ImmediateData now %v; "+
			"want a NegotiationError", err, reply, in.Params().ImmediateData)
	}
}

func TestInitiatorAnswersTargetOffers(t *testing.T) {
	in := NewInitiatorNegotiation(Preferences{}) // no burst keys offered
	resp := respondTo(in.Offer(),
		Pair{"TargetAlias", "vol1"}, Pair{"TargetPortalGroupTag", "3"},
		Pair{"MaxBurstLength", "65536"}, Pair{"FirstBurstLength", "1048576"}, Pair{"IFMarker", "Yes"},
		Pair{"TaskReporting", "FastAbort,RFC3720"}, Pair{"X-com.example.Vendor", "1"},
		Pair{"TargetName", "iqn.ignored"})
	reply, err := in.ApplyResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	// FirstBurstLength = min(1048576, our default 65536) = 65536 <= MaxBurstLength 65536.
	want := Text{{"MaxBurstLength", "65536"}, {"FirstBurstLength", "65536"}, {"IFMarker", "No"},
		{"TaskReporting", "RFC3720"}, {"X-com.example.Vendor", "NotUnderstood"}}
	if !reflect.DeepEqual(reply, want) {
		t.Fatalf("reply\n got %q\nwant %q", reply, want)
	}
	p := in.Params()
	if p.TargetAlias != "vol1" || p.TargetPortalGroupTag != 3 || p.MaxBurstLength != 65536 ||
		p.FirstBurstLength != 65536 || p.TargetMaxRecvDSL != 65536 || p.DefaultTime2Wait != 2 {
		t.Fatalf("params %+v", p)
	}
}

func TestInitiatorRejectsInconsistentBursts(t *testing.T) {
	in := NewInitiatorNegotiation(fullPrefs)
	_, err := in.ApplyResponse(respondTo(in.Offer(), Pair{"MaxBurstLength", "16384"}))
	var ne *NegotiationError
	if !errors.As(err, &ne) || ne.Key != "FirstBurstLength" || !strings.Contains(ne.Reason, "exceeds MaxBurstLength 16384") {
		t.Fatalf("err = %v", err)
	}
}

func TestNegotiationErrorMessageIsBounded(t *testing.T) {
	e := &NegotiationError{"K", strings.Repeat("v", 1000), "bad"}
	if len(e.Error()) > 100 {
		t.Fatalf("%d bytes: %s", len(e.Error()), e)
	}
	if got := (&NegotiationError{"MaxBurstLength", "1", "why"}).Error(); got != "iscsi: negotiation of MaxBurstLength=1: why" {
		t.Fatal(got)
	}
}

func TestDefaultParams(t *testing.T) {
	d := DefaultParams()
	want := Params{SessionType: "Normal", MaxConnections: 1, InitialR2T: true, ImmediateData: true,
		InitiatorMaxRecvDSL: 8192, TargetMaxRecvDSL: 8192, MaxBurstLength: 262144, FirstBurstLength: 65536,
		DefaultTime2Wait: 2, DefaultTime2Retain: 20, MaxOutstandingR2T: 1, DataPDUInOrder: true, DataSequenceInOrder: true}
	if d != want {
		t.Fatalf("%+v", d)
	}
}
