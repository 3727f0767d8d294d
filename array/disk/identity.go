package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/hitkit/hitkit/array/target"
)

// Identity is what a disk says it is: INQUIRY's names and the VPD
// designators. Initiators recognise paths to one unit by it, so it must
// be the same bytes on every port and session, and survive restarts.
type Identity struct {
	Vendor   string // T10 vendor identification, up to 8 ASCII characters
	Product  string // up to 16
	Revision string // up to 4
	// Serial is the unit serial number (VPD page 0x80).
	Serial string
	// NAA is the NAA-6 IEEE Registered Extended designator: the WWID
	// that multipath keys on. Zero derives it from OUI and Serial.
	NAA [16]byte
	// OUI is the IEEE company ID in a derived NAA.
	OUI uint32
	// Port, when set, tells which relative target port and target port
	// group a nexus came through; VPD page 0x83 then reports them. Nil, or
	// zero fields, leave them out.
	Port func(target.Nexus) PortIdentity
}

// PortIdentity is a target port as VPD page 0x83 names it.
type PortIdentity struct {
	RelativePort uint16
	Group        uint16
}

func (id Identity) normalized() (Identity, error) {
	for _, f := range []struct {
		name, v string
		max     int
	}{{"vendor", id.Vendor, 8}, {"product", id.Product, 16}, {"revision", id.Revision, 4}, {"serial", id.Serial, 252}} {
		if len(f.v) > f.max {
			return id, fmt.Errorf("disk: %s %q is longer than %d bytes", f.name, f.v, f.max)
		}
		for _, r := range []byte(f.v) {
			if r < 0x20 || r > 0x7e {
				return id, fmt.Errorf("disk: %s %q: only printable ASCII is allowed", f.name, f.v)
			}
		}
	}
	if id.Serial == "" {
		return id, fmt.Errorf("disk: identity needs a serial number")
	}
	if id.NAA == ([16]byte{}) {
		id.NAA = NAAFromSerial(id.OUI, id.Serial)
	}
	if id.NAA[0]>>4 != 6 {
		return id, fmt.Errorf("disk: NAA designator %x is not NAA-6", id.NAA)
	}
	return id, nil
}

// NAAFromSerial derives a stable NAA-6 designator: the NAA nibble, the
// 24-bit OUI, then 100 bits of the serial's SHA-256.
func NAAFromSerial(oui uint32, serial string) [16]byte {
	h := sha256.Sum256([]byte(serial))
	var b [16]byte
	copy(b[:], h[:])
	// NAA (4 bits) | OUI (24 bits) | vendor specific (36 + 64 bits)
	hi := uint32(6)<<28 | (oui&0xffffff)<<4 | uint32(h[0]>>4)
	binary.BigEndian.PutUint32(b[0:], hi)
	return b
}
