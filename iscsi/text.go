package iscsi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Pair is one key=value of a text or login data segment.
type Pair struct{ Key, Value string }

// Text is an ordered list of key=value pairs (RFC 7143 section 6.1).
type Text []Pair

// Get returns the value of the first pair with key.
func (t Text) Get(key string) (string, bool) {
	for _, p := range t {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// Set replaces the value of key, or appends the pair.
func (t *Text) Set(key, value string) {
	for i := range *t {
		if (*t)[i].Key == key {
			(*t)[i].Value = value
			return
		}
	}
	*t = append(*t, Pair{key, value})
}

// Encode returns the NUL-terminated key=value wire form.
func (t Text) Encode() []byte {
	var b []byte
	for _, p := range t {
		b = append(b, p.Key...)
		b = append(b, '=')
		b = append(b, p.Value...)
		b = append(b, 0)
	}
	return b
}

// Text limits (RFC 7143 section 6.1): keys of up to 63 bytes, and values of
// up to 255 bytes except where a key allows more (binary CHAP values).
const (
	maxKeyLen       = 63
	maxValueLen     = 255
	maxLongValueLen = 8192
)

// ParseText decodes a data segment of NUL-terminated key=value pairs. A
// final pair without its NUL is accepted, as peers in the field send it;
// padding NULs are skipped.
func ParseText(b []byte) (Text, error) {
	var t Text
	for len(b) > 0 {
		end := bytes.IndexByte(b, 0)
		item := b
		if end >= 0 {
			item, b = b[:end], b[end+1:]
		} else {
			b = nil
		}
		if len(item) == 0 {
			continue
		}
		eq := bytes.IndexByte(item, '=')
		if eq < 0 {
			return nil, fmt.Errorf("iscsi: text item %q has no '='", truncate(item))
		}
		key, value := string(item[:eq]), string(item[eq+1:])
		if err := checkKey(key); err != nil {
			return nil, err
		}
		if limit := valueLimit(key); len(value) > limit {
			return nil, fmt.Errorf("iscsi: value of %s is %d bytes, more than %d", key, len(value), limit)
		}
		t = append(t, Pair{key, value})
	}
	return t, nil
}

func checkKey(k string) error {
	if k == "" || len(k) > maxKeyLen {
		return fmt.Errorf("iscsi: text key %q is empty or longer than %d bytes", truncate([]byte(k)), maxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-+@_", c) >= 0) {
			return fmt.Errorf("iscsi: text key %q has a character outside a-z A-Z 0-9 . - + @ _", truncate([]byte(k)))
		}
	}
	return nil
}

func valueLimit(key string) int {
	switch key {
	case "CHAP_C", "CHAP_R":
		return maxLongValueLen
	}
	return maxValueLen
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// MaxTextSize bounds the text a TextAccumulator gathers across PDUs, so a
// peer cannot make us hold unbounded memory with the C bit.
const MaxTextSize = 64 << 10

// TextAccumulator joins a text segment that spans PDUs (the C bit). A
// key=value may be split anywhere, so parsing waits for the last part.
type TextAccumulator struct {
	buf   []byte
	Limit int // MaxTextSize when zero
}

// Add appends one PDU's data; more says the C bit was set.
func (a *TextAccumulator) Add(data []byte, more bool) error {
	limit := a.Limit
	if limit == 0 {
		limit = MaxTextSize
	}
	if len(a.buf)+len(data) > limit {
		return fmt.Errorf("iscsi: text response longer than %d bytes", limit)
	}
	a.buf = append(a.buf, data...)
	return nil
}

// Text parses what was gathered.
func (a *TextAccumulator) Text() (Text, error) { return ParseText(a.buf) }

// DecodeBinary decodes a binary value: "0x" hex or "0b" base64 (RFC 7143
// section 6.1.1.2).
func DecodeBinary(v string) ([]byte, error) {
	if len(v) < 3 {
		return nil, fmt.Errorf("iscsi: binary value %q is too short", v)
	}
	switch v[:2] {
	case "0x", "0X":
		s := v[2:]
		if len(s)%2 == 1 {
			s = "0" + s
		}
		return hex.DecodeString(s)
	case "0b", "0B":
		// The decoder skips line breaks, which a key value never holds.
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("iscsi: binary value %q holds a line break", truncate([]byte(v)))
		}
		return base64.StdEncoding.DecodeString(v[2:])
	}
	return nil, fmt.Errorf("iscsi: binary value %q lacks a 0x or 0b prefix", truncate([]byte(v)))
}

// EncodeHex encodes b as a "0x" binary value.
func EncodeHex(b []byte) string { return "0x" + hex.EncodeToString(b) }

// Portal is one address a target listens on, from SendTargets.
type Portal struct {
	Address string // host:port, IPv6 in brackets
	TPGT    int
}

// DiscoveredTarget is a target and its portals, from SendTargets.
type DiscoveredTarget struct {
	Name    string
	Portals []Portal
}

// ParseSendTargets reads a SendTargets response: each TargetName is
// followed by the TargetAddress pairs that belong to it.
func ParseSendTargets(t Text) ([]DiscoveredTarget, error) {
	var out []DiscoveredTarget
	for _, p := range t {
		switch p.Key {
		case "TargetName":
			out = append(out, DiscoveredTarget{Name: p.Value})
		case "TargetAddress":
			if len(out) == 0 {
				return nil, errors.New("iscsi: SendTargets response has a TargetAddress before any TargetName")
			}
			portal, err := ParsePortal(p.Value)
			if err != nil {
				return nil, err
			}
			last := &out[len(out)-1]
			last.Portals = append(last.Portals, portal)
		}
	}
	return out, nil
}

// ParsePortal reads "host[:port][,tpgt]"; the port defaults to 3260.
func ParsePortal(v string) (Portal, error) {
	p := Portal{TPGT: 1}
	if i := strings.LastIndexByte(v, ','); i >= 0 && !strings.Contains(v[i:], "]") {
		tpgt, err := strconv.Atoi(v[i+1:])
		if err != nil || tpgt < 0 || tpgt > 65535 {
			return Portal{}, fmt.Errorf("iscsi: bad portal group tag in %q", v)
		}
		p.TPGT, v = tpgt, v[:i]
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		host, port = v, "3260"
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			host = v[1 : len(v)-1]
		}
	}
	if !validHost(host) {
		return Portal{}, fmt.Errorf("iscsi: portal %q has no valid host", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return Portal{}, fmt.Errorf("iscsi: bad port in portal %q", v)
	}
	p.Address = net.JoinHostPort(host, port)
	return p, nil
}

// validHost accepts an IP address or a DNS name.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// FormatPortal is the TargetAddress value for a portal.
func FormatPortal(p Portal) string { return p.Address + "," + strconv.Itoa(p.TPGT) }
