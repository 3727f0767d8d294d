package iscsi

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
)

// CHAP as iSCSI uses it (RFC 7143 section 12.1.3, RFC 1994): the response
// is H(identifier || secret || challenge).

// ChapAlgorithm is a CHAP_A value.
type ChapAlgorithm int

const (
	ChapMD5     ChapAlgorithm = 5
	ChapSHA1    ChapAlgorithm = 6
	ChapSHA256  ChapAlgorithm = 7
	ChapSHA3256 ChapAlgorithm = 8
)

func (a ChapAlgorithm) newHash() (hash.Hash, bool) {
	switch a {
	case ChapMD5:
		return md5.New(), true
	case ChapSHA1:
		return sha1.New(), true
	case ChapSHA256:
		return sha256.New(), true
	case ChapSHA3256:
		return sha3.New256(), true
	}
	return nil, false
}

func (a ChapAlgorithm) String() string {
	switch a {
	case ChapMD5:
		return "MD5"
	case ChapSHA1:
		return "SHA-1"
	case ChapSHA256:
		return "SHA-256"
	case ChapSHA3256:
		return "SHA3-256"
	}
	return "CHAP_A " + strconv.Itoa(int(a))
}

// chapPreference is the order in which both sides pick an algorithm.
var chapPreference = []ChapAlgorithm{ChapSHA3256, ChapSHA256, ChapSHA1, ChapMD5}

// DefaultChapAlgorithms is what an initiator offers unless told otherwise,
// strongest first.
func DefaultChapAlgorithms() []ChapAlgorithm { return slices.Clone(chapPreference) }

// ParseChapAlgorithms reads a comma-separated list of algorithm names
// (md5, sha1, sha256, sha3-256) or CHAP_A numbers.
func ParseChapAlgorithms(v string) ([]ChapAlgorithm, error) {
	var out []ChapAlgorithm
	for _, f := range strings.Split(v, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		found := false
		for _, a := range chapPreference {
			name := strings.ReplaceAll(strings.ToLower(a.String()), "-1", "1")
			name = strings.ReplaceAll(name, "sha-", "sha")
			if f == name || f == strconv.Itoa(int(a)) {
				out, found = append(out, a), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown CHAP algorithm %q (want md5, sha1, sha256 or sha3-256)", f)
		}
	}
	return out, nil
}

// CHAP failures.
var (
	ErrChapAuthFailed   = errors.New("CHAP authentication failed")
	ErrChapMutualFailed = errors.New("the target failed mutual CHAP authentication")
	ErrChapProtocol     = errors.New("CHAP exchange malformed")
)

// ChapCredentials are a user name and its secret. The secret never
// appears in errors or logs.
type ChapCredentials struct {
	User   string
	Secret []byte
}

// ChapResponse computes H(id || secret || challenge).
func ChapResponse(a ChapAlgorithm, id byte, secret, challenge []byte) ([]byte, error) {
	h, ok := a.newHash()
	if !ok {
		return nil, fmt.Errorf("%w: unsupported algorithm %v", ErrChapProtocol, a)
	}
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	return h.Sum(nil), nil
}

func chapErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrChapProtocol}, args...)...)
}

// challengeLen is at least the digest size, and never below 16 bytes.
func challengeLen(a ChapAlgorithm) int {
	h, _ := a.newHash()
	return max(16, h.Size())
}

func newChallenge(a ChapAlgorithm) (id byte, challenge []byte) {
	challenge = make([]byte, challengeLen(a)+1)
	rand.Read(challenge)
	return challenge[0], challenge[1:]
}

func parseChapID(v string) (byte, error) {
	n, err := strconv.ParseUint(v, 10, 8)
	if err != nil {
		return 0, chapErr("identifier %q is not 0..255", v)
	}
	return byte(n), nil
}

// ChapInitiator is the initiator's side: it answers the target's challenge
// and, for mutual CHAP, challenges the target in turn.
type ChapInitiator struct {
	algs      []ChapAlgorithm
	creds     ChapCredentials
	mutual    *ChapCredentials
	alg       ChapAlgorithm
	id        byte
	challenge []byte
}

// NewChapInitiator authenticates as user; with mutual set, the target must
// prove it knows mutual.Secret under the name mutual.User. It offers algs,
// in that order, or DefaultChapAlgorithms when algs is empty.
func NewChapInitiator(user string, secret []byte, mutual *ChapCredentials, algs []ChapAlgorithm) *ChapInitiator {
	if len(algs) == 0 {
		algs = DefaultChapAlgorithms()
	}
	return &ChapInitiator{algs: algs, creds: ChapCredentials{user, secret}, mutual: mutual}
}

// Offer lists the algorithms we accept, in order of preference.
func (c *ChapInitiator) Offer() Text {
	var algs []string
	for _, a := range c.algs {
		algs = append(algs, strconv.Itoa(int(a)))
	}
	return Text{{"CHAP_A", strings.Join(algs, ",")}}
}

// Respond answers the target's CHAP_A, CHAP_I and CHAP_C.
func (c *ChapInitiator) Respond(t Text) (Text, error) {
	av, _ := t.Get("CHAP_A")
	a, err := strconv.Atoi(av)
	if err != nil || !containsAlg(c.algs, ChapAlgorithm(a)) {
		return nil, chapErr("target chose algorithm %q, which was not offered", av)
	}
	c.alg = ChapAlgorithm(a)
	iv, _ := t.Get("CHAP_I")
	id, err := parseChapID(iv)
	if err != nil {
		return nil, err
	}
	cv, _ := t.Get("CHAP_C")
	challenge, err := DecodeBinary(cv)
	if err != nil || len(challenge) == 0 {
		return nil, chapErr("target challenge %q is not a binary value", truncate([]byte(cv)))
	}
	r, err := ChapResponse(c.alg, id, c.creds.Secret, challenge)
	if err != nil {
		return nil, err
	}
	out := Text{{"CHAP_N", c.creds.User}, {"CHAP_R", EncodeHex(r)}}
	if c.mutual != nil {
		if subtle.ConstantTimeCompare(c.mutual.Secret, c.creds.Secret) == 1 {
			return nil, chapErr("the mutual secret must differ from the initiator's secret")
		}
		c.id, c.challenge = newChallenge(c.alg)
		for string(c.challenge) == string(challenge) {
			c.id, c.challenge = newChallenge(c.alg)
		}
		out = append(out, Pair{"CHAP_I", strconv.Itoa(int(c.id))}, Pair{"CHAP_C", EncodeHex(c.challenge)})
	}
	return out, nil
}

// Verify checks the target's answer to our challenge, for mutual CHAP.
func (c *ChapInitiator) Verify(t Text) error {
	if c.mutual == nil {
		return nil
	}
	name, _ := t.Get("CHAP_N")
	rv, _ := t.Get("CHAP_R")
	got, err := DecodeBinary(rv)
	if err != nil || name != c.mutual.User {
		return ErrChapMutualFailed
	}
	want, err := ChapResponse(c.alg, c.id, c.mutual.Secret, c.challenge)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrChapMutualFailed
	}
	return nil
}

func containsAlg(list []ChapAlgorithm, a ChapAlgorithm) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// ChapTarget is the target's side: it challenges the initiator, checks
// the answer, and answers a mutual challenge with its own credentials.
type ChapTarget struct {
	lookup    func(user string) (secret []byte, ok bool)
	mutual    *ChapCredentials
	alg       ChapAlgorithm
	id        byte
	challenge []byte
}

// NewChapTarget checks initiators against lookup; mutual holds the
// target's own credentials, nil when it does not do mutual CHAP.
func NewChapTarget(lookup func(user string) ([]byte, bool), mutual *ChapCredentials) *ChapTarget {
	return &ChapTarget{lookup: lookup, mutual: mutual}
}

// Challenge picks an algorithm from the initiator's CHAP_A list and
// returns CHAP_A, CHAP_I and CHAP_C.
func (c *ChapTarget) Challenge(offer Text) (Text, error) {
	av, _ := offer.Get("CHAP_A")
	var offered []ChapAlgorithm
	for _, s := range strings.Split(av, ",") {
		if n, err := strconv.Atoi(s); err == nil {
			offered = append(offered, ChapAlgorithm(n))
		}
	}
	for _, a := range chapPreference {
		if containsAlg(offered, a) {
			c.alg = a
			c.id, c.challenge = newChallenge(a)
			return Text{{"CHAP_A", strconv.Itoa(int(a))}, {"CHAP_I", strconv.Itoa(int(c.id))}, {"CHAP_C", EncodeHex(c.challenge)}}, nil
		}
	}
	return nil, chapErr("no supported algorithm in CHAP_A=%q", truncate([]byte(av)))
}

// Verify checks CHAP_N and CHAP_R. It returns the authenticated user and,
// when the initiator sent its own challenge, the target's answer to it.
func (c *ChapTarget) Verify(resp Text) (user string, answer Text, err error) {
	if c.challenge == nil {
		return "", nil, chapErr("response before challenge")
	}
	user, _ = resp.Get("CHAP_N")
	rv, _ := resp.Get("CHAP_R")
	got, err := DecodeBinary(rv)
	if err != nil {
		return user, nil, chapErr("CHAP_R is not a binary value")
	}
	secret, ok := c.lookup(user)
	if !ok {
		return user, nil, ErrChapAuthFailed
	}
	want, _ := ChapResponse(c.alg, c.id, secret, c.challenge)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return user, nil, ErrChapAuthFailed
	}
	iv, hasI := resp.Get("CHAP_I")
	cv, hasC := resp.Get("CHAP_C")
	if !hasI && !hasC {
		return user, nil, nil
	}
	err = c.answerMutual(iv, cv, secret, &answer)
	return user, answer, err
}

func (c *ChapTarget) answerMutual(iv, cv string, initiatorSecret []byte, answer *Text) error {
	if c.mutual == nil {
		return fmt.Errorf("%w: the initiator asked for mutual CHAP, which this target is not set up for", ErrChapAuthFailed)
	}
	id, err := parseChapID(iv)
	if err != nil {
		return err
	}
	challenge, err := DecodeBinary(cv)
	if err != nil || len(challenge) < 16 {
		return chapErr("mutual challenge is malformed or shorter than 16 bytes")
	}
	if subtle.ConstantTimeCompare(challenge, c.challenge) == 1 {
		return chapErr("the initiator reflected our challenge")
	}
	if subtle.ConstantTimeCompare(initiatorSecret, c.mutual.Secret) == 1 {
		return chapErr("the mutual secret must differ from the initiator's secret")
	}
	r, _ := ChapResponse(c.alg, id, c.mutual.Secret, challenge)
	*answer = Text{{"CHAP_N", c.mutual.User}, {"CHAP_R", EncodeHex(r)}}
	return nil
}
