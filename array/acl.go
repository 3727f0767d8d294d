package array

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// AccessRecord lets initiators log in to a volume, as a PS Series access
// control record does. Every field that is set must match; a record that
// sets none is invalid rather than a wildcard, so that "everyone" is
// always spelled out (Network 0.0.0.0/0).
type AccessRecord struct {
	// Initiator is an initiator IQN, compared case-insensitively as
	// RFC 3722 normalises iSCSI names.
	Initiator string `json:"initiator,omitempty"`
	// CHAPUser is the CHAP user name the initiator authenticated as.
	CHAPUser string `json:"chap_user,omitempty"`
	// Network is the range the initiator's address must be in.
	Network netip.Prefix `json:"network,omitzero"`
}

// Validate says what is wrong with a record, if anything.
func (r AccessRecord) Validate() error {
	if r.Initiator == "" && r.CHAPUser == "" && !r.Network.IsValid() {
		return errors.New("an access record needs an initiator name, a CHAP user or an address range")
	}
	return nil
}

// Matches says whether a login with these credentials passes the record.
func (r AccessRecord) Matches(initiator, chapUser string, remote netip.Addr) bool {
	if r.Validate() != nil {
		return false
	}
	if r.Initiator != "" && !strings.EqualFold(r.Initiator, initiator) {
		return false
	}
	if r.CHAPUser != "" && r.CHAPUser != chapUser {
		return false
	}
	if r.Network.IsValid() && !r.Network.Contains(remote.Unmap()) {
		return false
	}
	return true
}

// String describes the record for logs and tables.
func (r AccessRecord) String() string {
	var parts []string
	if r.Initiator != "" {
		parts = append(parts, "initiator "+r.Initiator)
	}
	if r.CHAPUser != "" {
		parts = append(parts, "CHAP user "+r.CHAPUser)
	}
	if r.Network.IsValid() {
		parts = append(parts, "network "+r.Network.String())
	}
	return strings.Join(parts, ", ")
}

// AccessList is a volume's access control records. A login passes when
// any record matches.
type AccessList []AccessRecord

// Check refuses a login that no record matches, saying who was refused
// (the target logs it; the initiator only sees status 0x0202).
func (l AccessList) Check(initiator, chapUser string, remote netip.Addr) error {
	for _, r := range l {
		if r.Matches(initiator, chapUser, remote) {
			return nil
		}
	}
	who := fmt.Sprintf("initiator %s at %s", initiator, remote.Unmap())
	if chapUser != "" {
		who += " (CHAP user " + chapUser + ")"
	}
	return fmt.Errorf("no access record matches %s", who)
}

// Discoverable says whether SendTargets shows the volume to an
// initiator that has not authenticated: whether a record matches its
// name and address, leaving CHAP users to be checked at login. This is
// how a PS Series group filters discovery.
func (l AccessList) Discoverable(initiator string, remote netip.Addr) bool {
	for _, r := range l {
		r.CHAPUser = ""
		if r.Validate() != nil || r.Matches(initiator, "", remote) {
			return true // a CHAP-only record, or a matching one
		}
	}
	return false
}

// RequiresCHAP says whether logins must authenticate: when any record
// names a CHAP user. A volume whose records are all by name or address
// takes logins without authentication, as on a PS Series group.
func (l AccessList) RequiresCHAP() bool {
	for _, r := range l {
		if r.CHAPUser != "" {
			return true
		}
	}
	return false
}

// Validate checks every record.
func (l AccessList) Validate() error {
	for i, r := range l {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("access record %d: %w", i+1, err)
		}
	}
	return nil
}

// ParseAccessRecord reads a record written as comma-separated key=value
// pairs: "initiator=iqn...,chap=user,network=127.0.0.0/8". The CLI and
// the management API share the syntax.
func ParseAccessRecord(s string) (AccessRecord, error) {
	var r AccessRecord
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || v == "" {
			return r, fmt.Errorf("access record %q: %q is not key=value (keys: initiator, chap, network)", s, kv)
		}
		switch k {
		case "initiator":
			r.Initiator = v
		case "chap":
			r.CHAPUser = v
		case "network":
			p, err := parseNetwork(v)
			if err != nil {
				return r, fmt.Errorf("access record %q: %w", s, err)
			}
			r.Network = p
		default:
			return r, fmt.Errorf("access record %q: unknown key %q (keys: initiator, chap, network)", s, k)
		}
	}
	return r, r.Validate()
}

// parseNetwork takes a prefix, or a single address as a /32 or /128.
func parseNetwork(v string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a range like 127.0.0.0/8", v)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
