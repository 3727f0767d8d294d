package iscsi

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

func TestParseText(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	for _, tc := range []struct {
		name    string
		in      string
		want    Text
		wantErr string // substring of the error; "" means success
	}{
		{name: "empty", in: "", want: nil},
		{name: "only padding", in: "\x00\x00\x00", want: nil},
		{name: "one pair", in: "HeaderDigest=None\x00", want: Text{{"HeaderDigest", "None"}}},
		{name: "two pairs with padding", in: "A=1\x00B=2\x00\x00\x00",
			want: Text{{"A", "1"}, {"B", "2"}}},
		{name: "final pair without NUL", in: "A=1\x00TargetName=iqn.x",
			want: Text{{"A", "1"}, {"TargetName", "iqn.x"}}},
		{name: "empty value", in: "TargetAlias=\x00", want: Text{{"TargetAlias", ""}}},
		{name: "value holds '='", in: "X-com.example.k=a=b=c\x00", want: Text{{"X-com.example.k", "a=b=c"}}},
		{name: "list value", in: "HeaderDigest=CRC32C,None\x00", want: Text{{"HeaderDigest", "CRC32C,None"}}},
		{name: "every key character", in: "Az09.-+@_=v\x00", want: Text{{"Az09.-+@_", "v"}}},
		{name: "duplicates are kept in order", in: "K=1\x00K=2\x00", want: Text{{"K", "1"}, {"K", "2"}}},
		// The codec does not judge value bytes; it hands them on verbatim.
		{name: "non-UTF-8 value passes through", in: "TargetAlias=\xff\xfe\x00", want: Text{{"TargetAlias", "\xff\xfe"}}},
		{name: "key of 63 bytes", in: long("K", 63) + "=v\x00", want: Text{{long("K", 63), "v"}}},
		{name: "value of 255 bytes", in: "TargetAlias=" + long("v", 255), want: Text{{"TargetAlias", long("v", 255)}}},
		{name: "CHAP_C of 8192 bytes", in: "CHAP_C=" + long("a", 8192), want: Text{{"CHAP_C", long("a", 8192)}}},
		{name: "CHAP_R of 8192 bytes", in: "CHAP_R=" + long("a", 8192), want: Text{{"CHAP_R", long("a", 8192)}}},

		{name: "no '='", in: "HeaderDigest\x00", wantErr: "has no '='"},
		{name: "no '=' after good pair", in: "A=1\x00garbage", wantErr: "has no '='"},
		{name: "empty key", in: "=value\x00", wantErr: "empty or longer than 63"},
		{name: "key of 64 bytes", in: long("K", 64) + "=v\x00", wantErr: "empty or longer than 63"},
		{name: "space in key", in: "Header Digest=None\x00", wantErr: "character outside"},
		{name: "'#' in key", in: "X#y=1\x00", wantErr: "character outside"},
		{name: "non-ASCII key", in: "Kéy=1\x00", wantErr: "character outside"},
		{name: "value of 256 bytes", in: "TargetAlias=" + long("v", 256), wantErr: "256 bytes, more than 255"},
		{name: "CHAP_N is not a long key", in: "CHAP_N=" + long("u", 256), wantErr: "more than 255"},
		{name: "CHAP_C of 8193 bytes", in: "CHAP_C=" + long("a", 8193), wantErr: "more than 8192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseText([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseText(%.60q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				if got != nil {
					t.Fatalf("ParseText returned %v along with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseText(%.60q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseText(%.60q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// An error message quotes at most 40 bytes of the offending item, so a
// hostile peer cannot flood the log through it.
func TestParseTextErrorIsBounded(t *testing.T) {
	_, err := ParseText([]byte(strings.Repeat("x", 5000)))
	if err == nil {
		t.Fatal("no error")
	}
	if len(err.Error()) > 120 {
		t.Fatalf("error of %d bytes: %s", len(err.Error()), err)
	}
}

func TestTextGetSetEncode(t *testing.T) {
	var txt Text
	txt.Set("InitiatorName", "iqn.2024-01.org.hitkit:host")
	txt.Set("SessionType", "Normal")
	txt.Set("TargetName", "iqn.2001-05.com.equallogic:vol1")
	txt.Set("SessionType", "Discovery") // replaces in place, keeps the order
	want := Text{
		{"InitiatorName", "iqn.2024-01.org.hitkit:host"},
		{"SessionType", "Discovery"},
		{"TargetName", "iqn.2001-05.com.equallogic:vol1"},
	}
	if !reflect.DeepEqual(txt, want) {
		t.Fatalf("after Set: %q", txt)
	}
	if v, ok := txt.Get("SessionType"); !ok || v != "Discovery" {
		t.Fatalf("Get(SessionType) = %q, %v", v, ok)
	}
	if v, ok := txt.Get("Missing"); ok || v != "" {
		t.Fatalf("Get(Missing) = %q, %v", v, ok)
	}
	wire := txt.Encode()
	wantWire := "InitiatorName=iqn.2024-01.org.hitkit:host\x00SessionType=Discovery\x00TargetName=iqn.2001-05.com.equallogic:vol1\x00"
	if string(wire) != wantWire {
		t.Fatalf("Encode = %q\nwant %q", wire, wantWire)
	}
	back, err := ParseText(wire)
	if err != nil || !reflect.DeepEqual(back, txt) {
		t.Fatalf("round trip: %q, %v", back, err)
	}
	if (Text{}).Encode() != nil {
		t.Fatal("empty Text encodes to something")
	}
}

func TestTextGetReturnsFirstDuplicate(t *testing.T) {
	txt := Text{{"K", "first"}, {"K", "second"}}
	if v, _ := txt.Get("K"); v != "first" {
		t.Fatalf("Get = %q", v)
	}
	txt.Set("K", "new")
	if !reflect.DeepEqual(txt, Text{{"K", "new"}, {"K", "second"}}) {
		t.Fatalf("Set changed %q", txt)
	}
}

// A key=value may be split anywhere between PDUs, even inside a key or
// right after the '='.
func TestTextAccumulatorSplits(t *testing.T) {
	full := []byte("TargetName=iqn.2001-05.com.equallogic:0-8a0906-vol1\x00TargetAddress=127.0.0.2:3260,1\x00" +
		"TargetAddress=[::1]:3260,2\x00")
	want, err := ParseText(full)
	if err != nil {
		t.Fatal(err)
	}
	for cut1 := 0; cut1 <= len(full); cut1 += 3 {
		for cut2 := cut1; cut2 <= len(full); cut2 += 7 {
			var a TextAccumulator
			parts := [][]byte{full[:cut1], full[cut1:cut2], full[cut2:]}
			for i, p := range parts {
				if err := a.Add(p, i < len(parts)-1); err != nil {
					t.Fatalf("cuts %d,%d: Add: %v", cut1, cut2, err)
				}
			}
			got, err := a.Text()
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("cuts %d,%d: %q, %v", cut1, cut2, got, err)
			}
		}
	}
}

func TestTextAccumulatorLimit(t *testing.T) {
	a := TextAccumulator{Limit: 10}
	if err := a.Add([]byte("A=12345\x00"), true); err != nil { // 8 bytes
		t.Fatal(err)
	}
	if err := a.Add([]byte("B="), true); err != nil { // 10 bytes: at the limit
		t.Fatal(err)
	}
	if err := a.Add([]byte("1"), false); err == nil || !strings.Contains(err.Error(), "longer than 10") {
		t.Fatalf("11th byte: err = %v", err)
	}

	var d TextAccumulator // zero Limit: MaxTextSize
	chunk := bytes.Repeat([]byte("K=v\x00"), 1024)
	total := 0
	var err error
	for err == nil {
		err = d.Add(chunk, true)
		if err == nil {
			total += len(chunk)
		}
	}
	if total != MaxTextSize || !strings.Contains(err.Error(), "longer than 65536") {
		t.Fatalf("default limit: accepted %d bytes, then %v", total, err)
	}
}

func TestDecodeBinary(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []byte
		wantErr bool
	}{
		{in: "0x00", want: []byte{0}},
		{in: "0x0a1B2c", want: []byte{0x0a, 0x1b, 0x2c}},
		{in: "0X0A1B2C", want: []byte{0x0a, 0x1b, 0x2c}},
		{in: "0x1", want: []byte{0x01}},                // odd length: a leading zero nibble
		{in: "0xabc", want: []byte{0x0a, 0xbc}},        // odd length
		{in: "0bAAECAw==", want: []byte{0, 1, 2, 3}},   // base64
		{in: "0BAAECAw==", want: []byte{0, 1, 2, 3}},   // base64, capital prefix
		{in: "0b/w==", want: []byte{0xff}},             // base64 with '/'
		{in: "0b+/+/", want: []byte{0xfb, 0xff, 0xbf}}, // base64 '+' and '/'
		{in: "0x" + strings.Repeat("ff", 32), want: bytes.Repeat([]byte{0xff}, 32)},

		{in: "", wantErr: true},
		{in: "0x", wantErr: true},
		{in: "0b", wantErr: true},
		{in: "0xg0", wantErr: true},       // not hex
		{in: "0x 00", wantErr: true},      // space
		{in: "1234", wantErr: true},       // no prefix: decimal is not a binary value
		{in: "ab", wantErr: true},         // too short
		{in: "0bAAECAw", wantErr: true},   // base64 without padding
		{in: "0bAA=CAw==", wantErr: true}, // '=' in the middle
		{in: "0b-_8=", wantErr: true},     // URL alphabet is not RFC 7143's
		{in: "0z0102", wantErr: true},     // unknown prefix
	} {
		got, err := DecodeBinary(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("DecodeBinary(%q) = %x, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("DecodeBinary(%q) = %x, %v; want %x", tc.in, got, err, tc.want)
		}
	}
}

func TestEncodeHexRoundTrip(t *testing.T) {
	for _, b := range [][]byte{{0}, {0xde, 0xad, 0xbe, 0xef}, bytes.Repeat([]byte{0x5a}, 1024)} {
		s := EncodeHex(b)
		if !strings.HasPrefix(s, "0x") || len(s) != 2+2*len(b) || strings.ToLower(s) != s {
			t.Fatalf("EncodeHex(%x) = %q", b, s)
		}
		got, err := DecodeBinary(s)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("DecodeBinary(EncodeHex(%x)) = %x, %v", b, got, err)
		}
		// The base64 form of the same bytes decodes identically.
		got, err = DecodeBinary("0b" + base64.StdEncoding.EncodeToString(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("base64 form of %x: %x, %v", b, got, err)
		}
	}
	if got := EncodeHex([]byte{0x01, 0xab}); got != "0x01ab" {
		t.Fatalf("EncodeHex = %q", got)
	}
}

// sendTargetsAnswer is a SendTargets=All answer as a PS-Series group gives
// it: two targets, the first with an IPv4 and an IPv6 portal.
const sendTargetsAnswer = "TargetName=iqn.2001-05.com.equallogic:0-8a0906-4b1c5d301-a3e0000001a4f5c2-vol1\x00" +
	"TargetAddress=127.0.0.10:3260,1\x00" +
	"TargetAddress=[::1]:3260,1\x00" +
	"TargetName=iqn.2001-05.com.equallogic:0-8a0906-4b1c5d301-a3e0000001a4f5c2-vol2\x00" +
	"TargetAddress=127.0.0.11:3261,2\x00"

func TestParseSendTargets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []DiscoveredTarget
		wantErr string
	}{
		{name: "group answer", in: sendTargetsAnswer, want: []DiscoveredTarget{
			{Name: "iqn.2001-05.com.equallogic:0-8a0906-4b1c5d301-a3e0000001a4f5c2-vol1",
				Portals: []Portal{{"127.0.0.10:3260", 1}, {"[::1]:3260", 1}}},
			{Name: "iqn.2001-05.com.equallogic:0-8a0906-4b1c5d301-a3e0000001a4f5c2-vol2",
				Portals: []Portal{{"127.0.0.11:3261", 2}}},
		}},
		{name: "empty answer", in: "", want: nil},
		{name: "target without address", in: "TargetName=iqn.a\x00TargetName=iqn.b\x00TargetAddress=h,3\x00",
			want: []DiscoveredTarget{{Name: "iqn.a"}, {Name: "iqn.b", Portals: []Portal{{"h:3260", 3}}}}},
		{name: "missing TPGT defaults to 1", in: "TargetName=iqn.a\x00TargetAddress=127.0.0.1:3262\x00",
			want: []DiscoveredTarget{{Name: "iqn.a", Portals: []Portal{{"127.0.0.1:3262", 1}}}}},
		{name: "other keys are skipped", in: "TargetName=iqn.a\x00TargetAlias=vol\x00X-vendor=1\x00TargetAddress=127.0.0.1,7\x00",
			want: []DiscoveredTarget{{Name: "iqn.a", Portals: []Portal{{"127.0.0.1:3260", 7}}}}},
		{name: "address before name", in: "TargetAddress=127.0.0.1:3260,1\x00TargetName=iqn.a\x00",
			wantErr: "TargetAddress before any TargetName"},
		{name: "bad address", in: "TargetName=iqn.a\x00TargetAddress=127.0.0.1:99999,1\x00", wantErr: "bad port"},
		{name: "bad TPGT", in: "TargetName=iqn.a\x00TargetAddress=127.0.0.1:3260,x\x00", wantErr: "portal group tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			txt, err := ParseText([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseSendTargets(txt)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
}

func TestParsePortal(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Portal
		wantErr bool
	}{
		{in: "127.0.0.1:3260,1", want: Portal{"127.0.0.1:3260", 1}},
		{in: "127.0.0.1,5", want: Portal{"127.0.0.1:3260", 5}},
		{in: "127.0.0.1", want: Portal{"127.0.0.1:3260", 1}},
		{in: "127.0.0.1:860", want: Portal{"127.0.0.1:860", 1}},
		{in: "array.example:3261,65535", want: Portal{"array.example:3261", 65535}},
		{in: "198.18.0.1:3260,0", want: Portal{"198.18.0.1:3260", 0}},
		{in: "[::1]:3260,1", want: Portal{"[::1]:3260", 1}},
		{in: "[::1]:3261", want: Portal{"[::1]:3261", 1}},
		{in: "[::1],2", want: Portal{"[::1]:3260", 2}},
		{in: "[::1]", want: Portal{"[::1]:3260", 1}},
		{in: "[2001:db8::5]:3260,12", want: Portal{"[2001:db8::5]:3260", 12}},
		{in: "::1", want: Portal{"[::1]:3260", 1}},

		{in: "", wantErr: true},
		{in: ",1", wantErr: true},
		{in: ":3260", wantErr: true},
		{in: "[]:3260,1", wantErr: true},
		{in: "127.0.0.1:0", wantErr: true},
		{in: "127.0.0.1:65536", wantErr: true},
		{in: "127.0.0.1:iscsi", wantErr: true},
		{in: "127.0.0.1:3260,", wantErr: true},
		{in: "127.0.0.1:3260,-1", wantErr: true},
		{in: "127.0.0.1:3260,65536", wantErr: true},
		{in: "127.0.0.1:3260,one", wantErr: true},
	} {
		got, err := ParsePortal(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParsePortal(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePortal(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatPortalRoundTrip(t *testing.T) {
	for _, p := range []Portal{{"127.0.0.1:3260", 1}, {"[::1]:3260", 2}, {"[fe80::1]:3261", 65535}, {"host.example:860", 0}} {
		s := FormatPortal(p)
		back, err := ParsePortal(s)
		if err != nil || back != p {
			t.Errorf("ParsePortal(FormatPortal(%+v) = %q) = %+v, %v", p, s, back, err)
		}
	}
	if s := FormatPortal(Portal{"[::1]:3260", 1}); s != "[::1]:3260,1" {
		t.Fatalf("FormatPortal = %q", s)
	}
}

// A TargetAddress comes from the network: a host that is neither an IP
// address nor a host name must be refused with a clear error, not turned
// into an address that cannot be dialled (found by FuzzParseSendTargets).
func TestParsePortalRejectsMalformedHosts(t *testing.T) {
	for _, in := range []string{"0]00", "0]00,1", "[::1]]:3260", "host:3260:1", "127.0.0.1:3260:7,1", "a]b:3260,1"} {
		if got, err := ParsePortal(in); err == nil {
			t.Errorf("BUG: ParsePortal(%q) = %+v (FormatPortal %q), want an error", in, got, FormatPortal(got))
		}
	}
}

// A binary value holds at least one byte, and its base64 form has no line
// breaks (found by FuzzDecodeBinary: encoding/base64 skips CR and LF).
func TestDecodeBinaryRejectsEmptyAndLineBreaks(t *testing.T) {
	for _, in := range []string{"0b\r\n", "0B\r\r", "0b\n\n\n", "0bAAEC\nAw==", "0bAAECAw==\r\n"} {
		if got, err := DecodeBinary(in); err == nil {
			t.Errorf("BUG: DecodeBinary(%q) = %x, <nil>; want an error", in, got)
		}
	}
}
