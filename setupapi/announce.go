package setupapi

import (
	"fmt"
	"strings"
)

// How an uninitialised member makes itself known, besides its setup
// endpoint: it answers a unicast UDP probe with an Announcement as JSON,
// and announces the same over mDNS/DNS-SD. The lab's responder
// (array/responder) speaks this; discovery reads it.
const (
	// ProbePort is the UDP port a member answers probes on.
	ProbePort = 3261
	// ProbeMagic is the value of a probe's "probe" field: a probe is the
	// datagram {"probe":"hitkit"}.
	ProbeMagic = "hitkit"
	// MDNSService is the DNS-SD service type; an instance's name is the
	// member's serial number.
	MDNSService = "_hitkit-setup._tcp"
)

// Probe is the probe datagram.
type Probe struct {
	Probe string `json:"probe"`
}

// Announcement is what a member says it is.
type Announcement struct {
	Serial        string   `json:"serial"`
	Model         string   `json:"model"`
	Firmware      string   `json:"firmware"`
	MACs          []string `json:"macs"`
	State         string   `json:"state"`
	SetupEndpoint string   `json:"setup_endpoint"`
	Fingerprint   string   `json:"fingerprint"`
}

// The TXT keys of an mDNS announcement (RFC 6763 section 6: key=value
// strings). Every key but macs, setup and fingerprint is required.
const (
	TXTSerial      = "serial"
	TXTModel       = "model"
	TXTFirmware    = "firmware"
	TXTState       = "state"
	TXTMACs        = "macs" // comma-separated
	TXTSetup       = "setup"
	TXTFingerprint = "fingerprint"
)

// MaxTXTValue bounds one TXT value, so that key=value fits in a DNS
// character-string (255 bytes) with room for the key.
const MaxTXTValue = 200

// TXT encodes the announcement as DNS-SD TXT strings; the optional keys
// are left out when empty.
func (a Announcement) TXT() ([]string, error) {
	kv := [][2]string{
		{TXTSerial, a.Serial}, {TXTModel, a.Model}, {TXTFirmware, a.Firmware}, {TXTState, a.State},
		{TXTMACs, strings.Join(a.MACs, ",")}, {TXTSetup, a.SetupEndpoint}, {TXTFingerprint, a.Fingerprint},
	}
	out := make([]string, 0, len(kv))
	for _, p := range kv {
		if p[1] == "" && (p[0] == TXTFingerprint || p[0] == TXTMACs) {
			continue
		}
		if len(p[1]) > MaxTXTValue {
			return nil, fmt.Errorf("TXT %s is %d bytes, more than %d", p[0], len(p[1]), MaxTXTValue)
		}
		out = append(out, p[0]+"="+p[1])
	}
	return out, nil
}
