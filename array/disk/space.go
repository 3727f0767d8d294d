package disk

import (
	"errors"

	"github.com/hitkit/hitkit/scsi"
)

// ErrSpaceAllocationFailed is what a Backend wraps in a write's error when
// the write needs space the backend may not take, such as a full snapshot
// reserve. The command then fails with DATA PROTECT, SPACE ALLOCATION
// FAILED WRITE PROTECT (27h/07h, SBC-3 4.7.3.6) rather than MEDIUM ERROR:
// the medium is fine, and the host should stop writing, not retry.
var ErrSpaceAllocationFailed = errors.New("space allocation failed")

// errSpaceAllocation reports a backend's ErrSpaceAllocationFailed.
func errSpaceAllocation(cause error) error {
	return &mediumError{cmdError: *checkCondition(scsi.KeyDataProtect, 0x27, 0x07), cause: cause}
}
