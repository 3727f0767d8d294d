package setupapi

import (
	"errors"
	"fmt"
)

// Passwords a setup sets (membership and admin) are 8 to 255 printable
// ASCII characters with no space at either end: secret files are read
// with surrounding white space trimmed. The member enforces it, and the
// wizard checks it as the admin types.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 255
)

// CheckPassword says what is wrong with a membership or admin password,
// as a phrase that follows the password's name ("admin password is ...").
func CheckPassword(p string) error {
	switch {
	case len(p) == 0:
		return errors.New("is empty")
	case len(p) < MinPasswordLength:
		return fmt.Errorf("is %d characters; use at least %d", len(p), MinPasswordLength)
	case len(p) > MaxPasswordLength:
		return fmt.Errorf("is %d characters; use at most %d", len(p), MaxPasswordLength)
	case p[0] == ' ' || p[len(p)-1] == ' ':
		return errors.New("starts or ends with a space; the member refuses that")
	}
	for _, c := range []byte(p) {
		if c < 0x20 || c > 0x7e {
			return errors.New("holds a character that is not printable ASCII (or a line break); the member takes printable ASCII only")
		}
	}
	return nil
}
