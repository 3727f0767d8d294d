package iscsi

import (
	"encoding/binary"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DigestSize is the length of a CRC32C header or data digest.
const DigestSize = 4

// crc32c returns the iSCSI digest of the concatenation of parts.
func crc32c(parts ...[]byte) uint32 {
	var crc uint32
	for _, p := range parts {
		crc = crc32.Update(crc, castagnoli, p)
	}
	return crc
}

// putDigest stores a digest the way RFC 7143 Appendix B.4 shows it on the
// wire: least significant byte first.
func putDigest(b []byte, crc uint32) { binary.LittleEndian.PutUint32(b, crc) }

func getDigest(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// padLen is the number of zero bytes that pad n to a 4-byte boundary.
func padLen(n int) int { return (4 - n&3) & 3 }
