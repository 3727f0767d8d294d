package target

import "context"

// Nexus names the I_T nexus a command arrived on: who sent it, through
// which session, to which target. Persistent reservations key on it.
type Nexus struct {
	InitiatorName string
	ISID          [6]byte
	TargetName    string
	TPGT          uint16
}

// Request is one SCSI command as the target hands it to a logical unit,
// once all of its Data-Out has arrived.
type Request struct {
	Nexus Nexus
	LUN   uint64 // the LUN field as the initiator sent it, decoded
	CDB   []byte
	// DataOut is the whole write payload, gathered; nil for reads. It is
	// the target's buffer, valid only until Execute returns.
	DataOut []byte
	// ExpectedDataIn is the initiator's ExpectedDataTransferLength for a
	// read: the unit may return less (an underflow) or more (the target
	// truncates and reports an overflow).
	ExpectedDataIn uint32
}

// Response is a unit's answer. Sense is set with StatusCheckCondition.
type Response struct {
	Status uint8
	Sense  []byte
	DataIn []byte
	// DataOutLength is, for a command that writes, how many bytes of
	// Data-Out its CDB describes (transfer length times block size). The
	// target compares it with the initiator's ExpectedDataTransferLength
	// to report a residual overflow or underflow (RFC 7143 section
	// 11.4.5). Zero means not reported. When the initiator sent less than
	// the CDB describes, the unit writes only what it got.
	DataOutLength uint32
}

// Unit is a SCSI logical unit. Execute is called concurrently, from one
// goroutine per command, and must honour ctx (an aborted task or a
// dropped connection cancels it).
type Unit interface {
	Execute(ctx context.Context, r *Request) Response
}

// Resetter is implemented by units that hold state a reset clears, such as
// reservations or pending unit attentions. LOGICAL UNIT RESET and TARGET
// WARM RESET call Reset once the unit's tasks are gone.
type Resetter interface {
	Reset()
}

// NexusObserver is implemented by units that keep state per I_T nexus,
// such as pending unit attentions. NexusLost is called when a session
// ends, so that the state of initiators that come and go does not pile
// up; a later login on the same nexus starts afresh.
type NexusObserver interface {
	NexusLost(Nexus)
}
