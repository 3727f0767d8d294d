package mgmt

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/hitkit/hitkit/internal/guesslimit"
)

// passwordGuesses limits wrong admin passwords per remote address: past 5
// a minute, the address gets 429 with Retry-After, right password or not,
// until the oldest wrong one is a minute old. Bearer tokens are not
// passwords and are not limited.
type passwordGuesses struct{ guesslimit.Limiter }

// refuse answers 429 and returns true when r's address must wait.
func (p *passwordGuesses) refuse(w http.ResponseWriter, r *http.Request) bool {
	remote := guesslimit.Key(r.RemoteAddr)
	wait, blocked := p.Blocked(remote)
	if !blocked {
		return false
	}
	secs := guesslimit.RetryAfter(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many wrong passwords from %s; wait %d seconds", remote, secs))
	return true
}

// fail records a wrong password from r's address.
func (p *passwordGuesses) fail(r *http.Request) { p.Fail(guesslimit.Key(r.RemoteAddr)) }
