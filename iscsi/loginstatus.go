package iscsi

import "fmt"

// LoginStatus is a login response's status class (high byte) and detail
// (low byte), RFC 7143 section 11.13.5.
type LoginStatus uint16

// Status classes.
const (
	ClassSuccess      uint8 = 0
	ClassRedirection  uint8 = 1
	ClassInitiatorErr uint8 = 2
	ClassTargetErr    uint8 = 3
)

// Login statuses that RFC 7143 defines.
const (
	LoginSuccess              LoginStatus = 0x0000
	LoginTargetMovedTemp      LoginStatus = 0x0101
	LoginTargetMovedPerm      LoginStatus = 0x0102
	LoginInitiatorError       LoginStatus = 0x0200
	LoginAuthFailed           LoginStatus = 0x0201
	LoginAuthorizationFailed  LoginStatus = 0x0202
	LoginNotFound             LoginStatus = 0x0203
	LoginTargetRemoved        LoginStatus = 0x0204
	LoginUnsupportedVersion   LoginStatus = 0x0205
	LoginTooManyConnections   LoginStatus = 0x0206
	LoginMissingParameter     LoginStatus = 0x0207
	LoginCantIncludeInSession LoginStatus = 0x0208
	LoginSessionTypeUnsupp    LoginStatus = 0x0209
	LoginSessionDoesNotExist  LoginStatus = 0x020a
	LoginInvalidDuringLogin   LoginStatus = 0x020b
	LoginTargetError          LoginStatus = 0x0300
	LoginServiceUnavailable   LoginStatus = 0x0301
	LoginOutOfResources       LoginStatus = 0x0302
)

// Class returns the status class.
func (s LoginStatus) Class() uint8 { return uint8(s >> 8) }

// Detail returns the status detail.
func (s LoginStatus) Detail() uint8 { return uint8(s) }

var loginStatusText = map[LoginStatus]string{
	LoginSuccess:              "success",
	LoginTargetMovedTemp:      "target moved temporarily",
	LoginTargetMovedPerm:      "target moved permanently",
	LoginInitiatorError:       "initiator error",
	LoginAuthFailed:           "authentication failed",
	LoginAuthorizationFailed:  "authorization failed: this initiator is not allowed to access the target",
	LoginNotFound:             "target not found",
	LoginTargetRemoved:        "target removed",
	LoginUnsupportedVersion:   "unsupported iSCSI version",
	LoginTooManyConnections:   "too many connections",
	LoginMissingParameter:     "missing parameter",
	LoginCantIncludeInSession: "cannot include connection in session",
	LoginSessionTypeUnsupp:    "session type not supported",
	LoginSessionDoesNotExist:  "session does not exist",
	LoginInvalidDuringLogin:   "invalid request during login",
	LoginTargetError:          "target error",
	LoginServiceUnavailable:   "service unavailable",
	LoginOutOfResources:       "target out of resources",
}

func (s LoginStatus) String() string {
	if t, ok := loginStatusText[s]; ok {
		return t
	}
	return fmt.Sprintf("login status 0x%04x", uint16(s))
}
