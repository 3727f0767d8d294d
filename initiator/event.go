package initiator

import (
	"fmt"
	"time"
)

// EventKind says what an async message from the target asked for.
type EventKind int

const (
	// EventLogoutRequested: the target wants this session to log out within
	// Event.Within, typically to move it to another port (AsyncEvent 1).
	EventLogoutRequested EventKind = iota + 1
	// EventConnectionDropping: the target will drop the connection (AsyncEvent 2).
	EventConnectionDropping
	// EventSessionDropping: the target will drop the session (AsyncEvent 3).
	EventSessionDropping
	// EventSCSI: a SCSI asynchronous event, such as a capacity change (AsyncEvent 0).
	EventSCSI
	// EventRenegotiate: the target asks for a parameter renegotiation (AsyncEvent 4).
	EventRenegotiate
	// EventVendor: a vendor-specific event (AsyncEvent 255).
	EventVendor
)

func (k EventKind) String() string {
	switch k {
	case EventLogoutRequested:
		return "logout requested"
	case EventConnectionDropping:
		return "connection dropping"
	case EventSessionDropping:
		return "session dropping"
	case EventSCSI:
		return "SCSI event"
	case EventRenegotiate:
		return "renegotiation requested"
	case EventVendor:
		return "vendor event"
	}
	return fmt.Sprintf("event %d", int(k))
}

// Event is an async message from the target, delivered to Config.OnEvent.
type Event struct {
	Kind    EventKind
	Session *Session
	// Within is how long the target gives us: the logout deadline, or the
	// time before it drops the connection or session.
	Within time.Duration
	// Sense is the sense data of a SCSI event.
	Sense []byte
}
