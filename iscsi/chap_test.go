package iscsi

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Known answers for H(id || secret || challenge). The digests were computed
// with md5sum, sha1sum, sha256sum and `openssl dgst -sha3-256` over the
// bytes printf wrote, not with Go.
func TestChapResponseVectors(t *testing.T) {
	seq := make([]byte, 16)
	for i := range seq {
		seq[i] = byte(i)
	}
	vectors := []struct {
		id        byte
		secret    string
		challenge []byte
		want      map[ChapAlgorithm]string
	}{
		{0x2a, "labsecret12345", seq, map[ChapAlgorithm]string{
			ChapMD5:     "ad6d13770365cc98a67e9a2354971246",
			ChapSHA1:    "e78b06aa14c40cf5449168320416fdf44407a3ee",
			ChapSHA256:  "ed8fe86269be2b5c34d148b59a8da8ccc636d57e8db795aa8d18a7c4a2938511",
			ChapSHA3256: "90bcf25932d4381661692f46773cf77aecabf5e233470f770e1c25f169200fb2",
		}},
		{0, "s", bytes.Repeat([]byte{0xff}, 20), map[ChapAlgorithm]string{
			ChapMD5:     "4ea7f06c0f61f4e163b733c5b318eeaf",
			ChapSHA1:    "8f9c045087db5d624c0d329d987ee1daee896895",
			ChapSHA256:  "1a2cfdeea67f4e2aa60bd038080b7c6024b4d17539063a5506133f35d09adb48",
			ChapSHA3256: "3f2d0befdc0dacd57d28cb98d77cbf75d5bd2653266908aaabd5d3110a3339d7",
		}},
		{0xff, "", []byte("0123456789abcdef"), map[ChapAlgorithm]string{
			ChapMD5:     "e94fe85b39949bbc34c119ee5fb06b95",
			ChapSHA1:    "88dc51bb99bd469d32131133993871d0c1b8bf1d",
			ChapSHA256:  "8f957e6ab18341e176a5f71aa9e158f5917f1b28022661a4337622d81f18a92c",
			ChapSHA3256: "1b11a3a7772b2289569fd2b01304a707374f462a59534cd83b06a164df2c04a0",
		}},
	}
	for _, v := range vectors {
		for alg, want := range v.want {
			got, err := ChapResponse(alg, v.id, []byte(v.secret), v.challenge)
			if err != nil {
				t.Fatalf("%v: %v", alg, err)
			}
			if hex.EncodeToString(got) != want {
				t.Errorf("ChapResponse(%v, %d, %q, %x) = %x, want %s", alg, v.id, v.secret, v.challenge, got, want)
			}
		}
	}
	if _, err := ChapResponse(ChapAlgorithm(9), 1, []byte("x"), []byte("y")); !errors.Is(err, ErrChapProtocol) {
		t.Fatalf("unknown algorithm: %v", err)
	}
}

func TestChapAlgorithmNames(t *testing.T) {
	for a, want := range map[ChapAlgorithm]string{ChapMD5: "MD5", ChapSHA1: "SHA-1", ChapSHA256: "SHA-256",
		ChapSHA3256: "SHA3-256", 9: "CHAP_A 9"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q", int(a), a.String())
		}
	}
	d := DefaultChapAlgorithms()
	if !reflect.DeepEqual(d, []ChapAlgorithm{ChapSHA3256, ChapSHA256, ChapSHA1, ChapMD5}) {
		t.Fatalf("defaults %v", d)
	}
	d[0] = ChapMD5
	if DefaultChapAlgorithms()[0] != ChapSHA3256 {
		t.Fatal("DefaultChapAlgorithms hands out its internal slice")
	}
}

func TestParseChapAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []ChapAlgorithm
	}{
		{"md5", []ChapAlgorithm{ChapMD5}},
		{"md5,sha256", []ChapAlgorithm{ChapMD5, ChapSHA256}},
		{"sha3-256,sha256,sha1,md5", []ChapAlgorithm{ChapSHA3256, ChapSHA256, ChapSHA1, ChapMD5}},
		{"SHA1, SHA3-256", []ChapAlgorithm{ChapSHA1, ChapSHA3256}},
		{" MD5 ", []ChapAlgorithm{ChapMD5}},
		{"5,6,7,8", []ChapAlgorithm{ChapMD5, ChapSHA1, ChapSHA256, ChapSHA3256}},
		{"7,md5", []ChapAlgorithm{ChapSHA256, ChapMD5}},
	} {
		got, err := ParseChapAlgorithms(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseChapAlgorithms(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "md4", "sha-256", "sha-1", "sha3", "sha512", "md5,", ",md5", "md5,,sha1", "4", "9", "0x5"} {
		got, err := ParseChapAlgorithms(in)
		if err == nil {
			t.Errorf("ParseChapAlgorithms(%q) = %v, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), "want md5, sha1, sha256 or sha3-256") {
			t.Errorf("ParseChapAlgorithms(%q): unhelpful error %q", in, err)
		}
	}
}

// Distinctive secrets, so a test can tell they never leak into an error.
var (
	iniSecret = []byte("Ini-Secret-0123456789")
	tgtSecret = []byte("Tgt-Secret-9876543210")
)

func secretLeaks(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, secret := range [][]byte{iniSecret, tgtSecret} {
		if strings.Contains(s, string(secret)) || strings.Contains(strings.ToLower(s), hex.EncodeToString(secret)) {
			return true
		}
	}
	return false
}

func lookupOf(users map[string][]byte) func(string) ([]byte, bool) {
	return func(u string) ([]byte, bool) { s, ok := users[u]; return s, ok }
}

func newHashFor(a ChapAlgorithm) hash.Hash {
	switch a {
	case ChapMD5:
		return md5.New()
	case ChapSHA1:
		return sha1.New()
	case ChapSHA256:
		return sha256.New()
	case ChapSHA3256:
		return sha3.New256()
	}
	panic(a)
}

// chapExchange runs a whole CHAP exchange and returns the first error.
type chapSetup struct {
	algs          []ChapAlgorithm
	user          string
	secret        []byte
	mutual        *ChapCredentials // what the initiator expects of the target
	targetUsers   map[string][]byte
	targetMutual  *ChapCredentials // what the target proves itself with
	wantAlgorithm ChapAlgorithm
}

func (s chapSetup) run(t *testing.T) (user string, err error) {
	t.Helper()
	ini := NewChapInitiator(s.user, s.secret, s.mutual, s.algs)
	tgt := NewChapTarget(lookupOf(s.targetUsers), s.targetMutual)
	ch, err := tgt.Challenge(ini.Offer())
	if err != nil {
		return "", err
	}
	if s.wantAlgorithm != 0 {
		if v, _ := ch.Get("CHAP_A"); v != strconv.Itoa(int(s.wantAlgorithm)) {
			t.Fatalf("target chose CHAP_A=%s, want %d", v, s.wantAlgorithm)
		}
	}
	resp, err := ini.Respond(ch)
	if err != nil {
		return "", err
	}
	checkChapResponse(t, ch, resp, s.secret)
	user, answer, err := tgt.Verify(resp)
	if err != nil {
		return user, err
	}
	if s.mutual == nil && answer != nil {
		t.Fatalf("one-way CHAP, yet the target answered %q", answer)
	}
	if s.mutual != nil {
		if v, _ := answer.Get("CHAP_N"); v != s.targetMutual.User {
			t.Fatalf("target answered as %q", v)
		}
	}
	return user, ini.Verify(answer)
}

// checkChapResponse recomputes the initiator's CHAP_R from the challenge
// with the hash packages directly.
func checkChapResponse(t *testing.T, ch, resp Text, secret []byte) {
	t.Helper()
	av, _ := ch.Get("CHAP_A")
	iv, _ := ch.Get("CHAP_I")
	cv, _ := ch.Get("CHAP_C")
	a, _ := strconv.Atoi(av)
	id, err := strconv.Atoi(iv)
	if err != nil || id < 0 || id > 255 {
		t.Fatalf("CHAP_I=%q", iv)
	}
	c, err := hex.DecodeString(strings.TrimPrefix(cv, "0x"))
	if err != nil || !strings.HasPrefix(cv, "0x") {
		t.Fatalf("CHAP_C=%q", cv)
	}
	h := newHashFor(ChapAlgorithm(a))
	if want := max(16, h.Size()); len(c) != want {
		t.Fatalf("%v challenge of %d bytes, want %d", ChapAlgorithm(a), len(c), want)
	}
	h.Write([]byte{byte(id)})
	h.Write(secret)
	h.Write(c)
	if rv, _ := resp.Get("CHAP_R"); rv != "0x"+hex.EncodeToString(h.Sum(nil)) {
		t.Fatalf("CHAP_R=%s, want 0x%x", rv, h.Sum(nil))
	}
}

func TestChapExchange(t *testing.T) {
	for _, alg := range DefaultChapAlgorithms() {
		for _, mutual := range []bool{false, true} {
			t.Run(alg.String()+map[bool]string{false: "/one-way", true: "/mutual"}[mutual], func(t *testing.T) {
				s := chapSetup{
					algs: []ChapAlgorithm{alg}, user: "iqn.2024-01.org.hitkit:host", secret: iniSecret,
					targetUsers:   map[string][]byte{"iqn.2024-01.org.hitkit:host": iniSecret, "other": []byte("x")},
					wantAlgorithm: alg,
				}
				if mutual {
					s.mutual = &ChapCredentials{"group1", tgtSecret}
					s.targetMutual = &ChapCredentials{"group1", tgtSecret}
				}
				user, err := s.run(t)
				if err != nil || user != s.user {
					t.Fatalf("user %q, err %v", user, err)
				}
			})
		}
	}
}

func TestChapTargetPicksStrongest(t *testing.T) {
	for _, tc := range []struct {
		offer string
		want  ChapAlgorithm
	}{
		{"5", ChapMD5}, {"5,6", ChapSHA1}, {"5,7", ChapSHA256}, {"7,5", ChapSHA256}, {"5,6,7,8", ChapSHA3256},
		{"8,5", ChapSHA3256}, {"9,5", ChapMD5}, {"x,6,,", ChapSHA1}, {"6,7", ChapSHA256},
	} {
		tgt := NewChapTarget(lookupOf(nil), nil)
		ch, err := tgt.Challenge(Text{{"CHAP_A", tc.offer}})
		if err != nil {
			t.Fatalf("CHAP_A=%s: %v", tc.offer, err)
		}
		if v, _ := ch.Get("CHAP_A"); v != strconv.Itoa(int(tc.want)) {
			t.Errorf("CHAP_A=%s: target chose %s, want %d", tc.offer, v, tc.want)
		}
		if len(ch) != 3 || ch[0].Key != "CHAP_A" || ch[1].Key != "CHAP_I" || ch[2].Key != "CHAP_C" {
			t.Errorf("challenge text %q", ch)
		}
	}
	for _, offer := range []Text{{{"CHAP_A", "9"}}, {{"CHAP_A", ""}}, {{"CHAP_A", "md5"}}, nil} {
		if _, err := NewChapTarget(lookupOf(nil), nil).Challenge(offer); !errors.Is(err, ErrChapProtocol) {
			t.Errorf("Challenge(%q): %v, want ErrChapProtocol", offer, err)
		}
	}
}

// Two challenges from fresh exchanges differ (they come from crypto/rand).
func TestChapChallengesAreFresh(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		ch, err := NewChapTarget(lookupOf(nil), nil).Challenge(Text{{"CHAP_A", "5"}})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := ch.Get("CHAP_C")
		if seen[c] {
			t.Fatalf("challenge %s repeated", c)
		}
		seen[c] = true
	}
}

func TestChapFailures(t *testing.T) {
	users := map[string][]byte{"host": iniSecret}
	for _, tc := range []struct {
		name string
		s    chapSetup
		want error
	}{
		{"wrong secret", chapSetup{user: "host", secret: []byte("not-the-secret"), targetUsers: users}, ErrChapAuthFailed},
		{"unknown user", chapSetup{user: "stranger", secret: iniSecret, targetUsers: users}, ErrChapAuthFailed},
		{"empty secret", chapSetup{user: "host", secret: nil, targetUsers: users}, ErrChapAuthFailed},
		{"wrong mutual secret", chapSetup{user: "host", secret: iniSecret, targetUsers: users,
			mutual: &ChapCredentials{"group", tgtSecret}, targetMutual: &ChapCredentials{"group", []byte("impostor")}},
			ErrChapMutualFailed},
		{"wrong mutual name", chapSetup{user: "host", secret: iniSecret, targetUsers: users,
			mutual: &ChapCredentials{"group", tgtSecret}, targetMutual: &ChapCredentials{"other", tgtSecret}},
			ErrChapMutualFailed},
		{"target without mutual", chapSetup{user: "host", secret: iniSecret, targetUsers: users,
			mutual: &ChapCredentials{"group", tgtSecret}}, ErrChapAuthFailed},
		{"same secret both ways", chapSetup{user: "host", secret: iniSecret, targetUsers: users,
			mutual: &ChapCredentials{"group", iniSecret}, targetMutual: &ChapCredentials{"group", iniSecret}},
			ErrChapProtocol},
		{"no common algorithm", chapSetup{algs: []ChapAlgorithm{9}, user: "host", secret: iniSecret, targetUsers: users},
			ErrChapProtocol},
	} {
		for _, alg := range []ChapAlgorithm{ChapMD5, ChapSHA3256} {
			t.Run(tc.name+"/"+alg.String(), func(t *testing.T) {
				s := tc.s
				if s.algs == nil {
					s.algs = []ChapAlgorithm{alg}
				}
				_, err := s.run(t)
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if secretLeaks(err) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			})
		}
	}
}

// The target's side of a mutual exchange rejects a reflected challenge, a
// short one, and a malformed identifier.
func TestChapTargetMutualChecks(t *testing.T) {
	users := map[string][]byte{"host": iniSecret}
	for _, tc := range []struct {
		name    string
		mutate  func(ch, resp Text) Text
		want    error
		message string
	}{
		{"reflected challenge", func(ch, resp Text) Text {
			c, _ := ch.Get("CHAP_C")
			resp.Set("CHAP_C", c)
			return resp
		}, ErrChapProtocol, "reflected"},
		{"short challenge", func(_, resp Text) Text {
			resp.Set("CHAP_C", "0x"+strings.Repeat("ab", 15))
			return resp
		}, ErrChapProtocol, "shorter than 16"},
		{"challenge not binary", func(_, resp Text) Text {
			resp.Set("CHAP_C", "hello")
			return resp
		}, ErrChapProtocol, "malformed"},
		{"identifier out of range", func(_, resp Text) Text {
			resp.Set("CHAP_I", "256")
			return resp
		}, ErrChapProtocol, "not 0..255"},
		{"identifier missing", func(_, resp Text) Text {
			var out Text
			for _, p := range resp {
				if p.Key != "CHAP_I" {
					out = append(out, p)
				}
			}
			return out
		}, ErrChapProtocol, "identifier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ini := NewChapInitiator("host", iniSecret, &ChapCredentials{"group", tgtSecret}, []ChapAlgorithm{ChapSHA256})
			tgt := NewChapTarget(lookupOf(users), &ChapCredentials{"group", tgtSecret})
			ch, err := tgt.Challenge(ini.Offer())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ini.Respond(ch)
			if err != nil {
				t.Fatal(err)
			}
			_, answer, err := tgt.Verify(tc.mutate(ch, resp))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("err = %v, answer %q; want %v mentioning %q", err, answer, tc.want, tc.message)
			}
			if secretLeaks(err) {
				t.Fatalf("the error shows a secret: %v", err)
			}
		})
	}
}

func TestChapTargetVerifyErrors(t *testing.T) {
	tgt := NewChapTarget(lookupOf(map[string][]byte{"host": iniSecret}), nil)
	if _, _, err := tgt.Verify(Text{{"CHAP_N", "host"}, {"CHAP_R", "0x00"}}); !errors.Is(err, ErrChapProtocol) {
		t.Fatalf("before the challenge: %v", err)
	}
	if _, err := tgt.Challenge(Text{{"CHAP_A", "5"}}); err != nil {
		t.Fatal(err)
	}
	for _, resp := range []Text{
		{{"CHAP_N", "host"}},
		{{"CHAP_N", "host"}, {"CHAP_R", ""}},
		{{"CHAP_N", "host"}, {"CHAP_R", "d41d8cd98f00b204e9800998ecf8427e"}}, // no 0x
		{{"CHAP_N", "host"}, {"CHAP_R", "0xzz"}},
	} {
		if _, _, err := tgt.Verify(resp); !errors.Is(err, ErrChapProtocol) {
			t.Errorf("Verify(%q): %v, want ErrChapProtocol", resp, err)
		}
	}
	for _, resp := range []Text{
		{{"CHAP_R", "0x00"}}, // no user
		{{"CHAP_N", "host"}, {"CHAP_R", "0x00"}},
		{{"CHAP_N", "host"}, {"CHAP_R", "0x" + strings.Repeat("00", 16)}},
		{{"CHAP_N", "host"}, {"CHAP_R", "0x" + strings.Repeat("00", 17)}},
	} {
		if _, _, err := tgt.Verify(resp); !errors.Is(err, ErrChapAuthFailed) || secretLeaks(err) {
			t.Errorf("Verify(%q): %v, want ErrChapAuthFailed", resp, err)
		}
	}
}

func TestChapInitiatorRespondErrors(t *testing.T) {
	good := Text{{"CHAP_A", "7"}, {"CHAP_I", "1"}, {"CHAP_C", "0x" + strings.Repeat("11", 32)}}
	with := func(k, v string) Text {
		t := append(Text(nil), good...)
		t.Set(k, v)
		return t
	}
	for _, tc := range []struct {
		name string
		in   Text
	}{
		{"algorithm not offered", with("CHAP_A", "5")},
		{"algorithm not a number", with("CHAP_A", "SHA-256")},
		{"no algorithm", good[1:]},
		{"identifier too big", with("CHAP_I", "256")},
		{"identifier negative", with("CHAP_I", "-1")},
		{"identifier not a number", with("CHAP_I", "0x01")},
		{"challenge not binary", with("CHAP_C", "1111")},
		{"challenge empty", with("CHAP_C", "0x")},
		{"no challenge", good[:2]},
	} {
		ini := NewChapInitiator("host", iniSecret, nil, []ChapAlgorithm{ChapSHA256, ChapSHA1})
		out, err := ini.Respond(tc.in)
		if !errors.Is(err, ErrChapProtocol) || out != nil {
			t.Errorf("%s: %q, %v; want ErrChapProtocol", tc.name, out, err)
		}
		if secretLeaks(err) {
			t.Errorf("%s: the error shows a secret: %v", tc.name, err)
		}
	}
	ini := NewChapInitiator("host", iniSecret, nil, []ChapAlgorithm{ChapSHA256, ChapSHA1})
	out, err := ini.Respond(good)
	if err != nil {
		t.Fatal(err)
	}
	// A known answer for the whole text: SHA-256 over 01 || secret || 0x11*32.
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(iniSecret)
	h.Write(bytes.Repeat([]byte{0x11}, 32))
	want := Text{{"CHAP_N", "host"}, {"CHAP_R", "0x" + hex.EncodeToString(h.Sum(nil))}}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("Respond = %q, want %q", out, want)
	}
	if got := NewChapInitiator("u", nil, nil, nil).Offer(); !reflect.DeepEqual(got, Text{{"CHAP_A", "8,7,6,5"}}) {
		t.Fatalf("default offer %q", got)
	}
	if got := NewChapInitiator("u", nil, nil, []ChapAlgorithm{ChapMD5, ChapSHA1}).Offer(); !reflect.DeepEqual(got, Text{{"CHAP_A", "5,6"}}) {
		t.Fatalf("offer %q", got)
	}
}

func TestChapInitiatorVerifyMutual(t *testing.T) {
	ini := NewChapInitiator("host", iniSecret, &ChapCredentials{"group", tgtSecret}, []ChapAlgorithm{ChapSHA1})
	resp, err := ini.Respond(Text{{"CHAP_A", "6"}, {"CHAP_I", "9"}, {"CHAP_C", "0x" + strings.Repeat("42", 20)}})
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := resp.Get("CHAP_I")
	cv, _ := resp.Get("CHAP_C")
	id, _ := strconv.Atoi(iv)
	c, err := DecodeBinary(cv)
	if err != nil || len(c) != 20 {
		t.Fatalf("mutual challenge %q: %v", cv, err)
	}
	h := sha1.New()
	h.Write([]byte{byte(id)})
	h.Write(tgtSecret)
	h.Write(c)
	right := "0x" + hex.EncodeToString(h.Sum(nil))
	for _, tc := range []struct {
		answer Text
		ok     bool
	}{
		{Text{{"CHAP_N", "group"}, {"CHAP_R", right}}, true},
		{Text{{"CHAP_N", "group"}, {"CHAP_R", "0b" + hexToBase64(t, right[2:])}}, true},
		{Text{{"CHAP_N", "Group"}, {"CHAP_R", right}}, false},
		{Text{{"CHAP_R", right}}, false},
		{Text{{"CHAP_N", "group"}}, false},
		{Text{{"CHAP_N", "group"}, {"CHAP_R", right[:len(right)-2]}}, false},
		{Text{{"CHAP_N", "group"}, {"CHAP_R", "0xzz"}}, false},
		{nil, false},
	} {
		err := ini.Verify(tc.answer)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrChapMutualFailed) {
			t.Errorf("Verify(%q) = %v", tc.answer, err)
		}
	}
	// Without mutual CHAP there is nothing to verify.
	if err := NewChapInitiator("host", iniSecret, nil, nil).Verify(nil); err != nil {
		t.Fatal(err)
	}
}

func hexToBase64(t *testing.T, h string) string {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
