package target

import (
	"encoding/binary"

	"github.com/hitkit/hitkit/scsi"
)

// reportLuns answers REPORT LUNS from the target's LUN map (SPC-4 6.33),
// whichever LUN the command was addressed to.
func reportLuns(t *Target, cdb []byte) Response {
	if len(cdb) < 12 {
		return invalidCDB()
	}
	switch cdb[2] { // SELECT REPORT
	case 0x00, 0x02:
	case 0x01: // well-known LUNs only: there are none
		return Response{Status: scsi.StatusGood, DataIn: make([]byte, 8)}
	default:
		return invalidCDB()
	}
	luns := t.LUNs()
	data := make([]byte, 8+8*len(luns))
	binary.BigEndian.PutUint32(data, uint32(8*len(luns)))
	for i, l := range luns {
		binary.BigEndian.PutUint64(data[8+8*i:], scsi.EncodeLUN(l))
	}
	alloc := binary.BigEndian.Uint32(cdb[6:10])
	if uint32(len(data)) > alloc {
		data = data[:alloc]
	}
	return Response{Status: scsi.StatusGood, DataIn: data}
}

// noSuchLUN answers a command addressed to a LUN the target does not
// export (SPC-4 4.6.2): INQUIRY reports "no unit here", REQUEST SENSE
// returns the reason, everything else fails with LOGICAL UNIT NOT
// SUPPORTED.
func noSuchLUN(cdb []byte) Response {
	switch cdb[0] {
	case scsi.OpInquiry:
		data := make([]byte, 36)
		data[0] = 0x7f // peripheral qualifier 3: no unit can be here
		data[2], data[3], data[4] = 0x06, 0x02, 31
		return Response{Status: scsi.StatusGood, DataIn: truncate(data, int(binary.BigEndian.Uint16(cdb[3:5])))}
	case scsi.OpRequestSense:
		return Response{Status: scsi.StatusGood, DataIn: truncate(lunNotSupported(), int(cdb[4]))}
	}
	return Response{Status: scsi.StatusCheckCondition, Sense: lunNotSupported()}
}

func lunNotSupported() []byte { return scsi.FixedSense(scsi.KeyIllegalRequest, 0x25, 0x00) }

func invalidCDB() Response { return checkCondition(scsi.KeyIllegalRequest, 0x24, 0x00) }

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
