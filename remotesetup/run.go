package remotesetup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hitkit/hitkit/setupapi"
)

// Polling of a running setup.
const (
	PollInterval = 250 * time.Millisecond
	// SetupTimeout bounds a whole setup, from the request to done.
	SetupTimeout = 10 * time.Minute
	// lostPolls is how many polls in a row may go unanswered before the
	// member counts as gone: one lost answer is a blip, three are not.
	lostPolls = 3
)

// ErrMemberGone says that the member stopped answering while it set up.
var ErrMemberGone = errors.New("the member went away during setup; it stays uninitialised; run setup-array again")

// RefusedError is a setup the member refused or that failed on the
// member. The member stays uninitialised, so the same command, corrected,
// can run again.
type RefusedError struct {
	Msg string
	// Field is the answer at fault (a flag name), when the member said.
	Field string
}

func (e *RefusedError) Error() string { return e.Msg }

// requestFields maps setupapi.Request's JSON names to the flags' names.
var requestFields = map[string]string{
	"member_name": "member-name", "ip": "ip", "gateway": "gateway",
	"group_name": "group", "group_ip": "group-ip", "mode": "create",
	"membership_password": "membership-password-file",
	"admin_password":      "admin-password-file", "raid": "raid",
}

// Apply sends the request to the member and follows the setup until it is
// done, calling progress (if not nil) with each new state. It returns what
// the member reports at the end: where the group and its management API
// are.
func Apply(ctx context.Context, c *setupapi.Client, req setupapi.Request, progress func(setupapi.Progress)) (setupapi.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, SetupTimeout)
	defer cancel()
	if progress == nil {
		progress = func(setupapi.Progress) {}
	}
	p, err := c.Initialize(req)
	if err != nil {
		if answerLost(err) {
			return setupapi.Result{}, fmt.Errorf("%w (%v)", ErrMemberGone, errors.Unwrap(err))
		}
		return setupapi.Result{}, describe(err, req)
	}
	progress(p)
	seenRunning, lost := p.State == setupapi.StateRunning, 0
	for {
		switch p.State {
		case setupapi.StateDone:
			if p.Result == nil {
				return setupapi.Result{}, errors.New("the member says the setup is done but sent no result; check it with `hitkit discover --uninitialized`")
			}
			return *p.Result, nil
		case setupapi.StateFailed:
			msg := p.Error
			if msg == "" {
				msg = "no reason given"
			}
			return setupapi.Result{}, &RefusedError{Msg: fmt.Sprintf("the setup failed on the member: %s; it stays uninitialised; fix that and run setup-array again", msg)}
		case setupapi.StateIdle:
			if seenRunning {
				return setupapi.Result{}, &RefusedError{Msg: "the member stopped the setup and is uninitialised again; run setup-array again"}
			}
		case setupapi.StateRunning:
			seenRunning = true
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return setupapi.Result{}, fmt.Errorf("the setup did not finish within %v (last step: %s, %d%%)", SetupTimeout, p.Step, p.Percent)
			}
			return setupapi.Result{}, ctx.Err()
		case <-time.After(PollInterval):
		}
		next, err := c.Progress()
		var ue *setupapi.UnreachableError
		switch {
		case errors.As(err, &ue):
			if lost++; lost >= lostPolls {
				return setupapi.Result{}, fmt.Errorf("%w (%v)", ErrMemberGone, ue.Err)
			}
			continue
		case err != nil:
			return setupapi.Result{}, describe(err, req)
		}
		lost = 0
		if next != p {
			progress(next)
		}
		p = next
	}
}

// answerLost says whether a request reached the member and then lost its
// connection before the answer: the member went away while it took the
// request. A connection never made is not that.
func answerLost(err error) bool {
	var ue *setupapi.UnreachableError
	if !errors.As(err, &ue) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	return true
}

// describe turns an error from the setup endpoint into what the user
// needs to know: what was wrong, that nothing changed, and what to do.
func describe(err error, req setupapi.Request) error {
	if errors.Is(err, setupapi.ErrFingerprint) {
		return fmt.Errorf("%w; nothing was sent. Something else answers at the member's address: run discovery again", setupapi.ErrFingerprint)
	}
	var ue *setupapi.UnreachableError
	if errors.As(err, &ue) {
		return fmt.Errorf("the member did not answer the setup request (%v); check that it is still listed by `hitkit discover --uninitialized`, and run setup-array again", ue.Err)
	}
	var se *setupapi.StatusError
	if !errors.As(err, &se) {
		return err
	}
	msg := strings.TrimSuffix(se.Message, ".")
	switch se.Status {
	case http.StatusBadRequest:
		field := requestFields[se.Field]
		if field == "" {
			field = se.Field
		}
		if field != "" {
			return &RefusedError{Field: field, Msg: fmt.Sprintf("the member refused --%s: %s; it stays uninitialised", field, msg)}
		}
		return &RefusedError{Msg: fmt.Sprintf("the member refused the request: %s; it stays uninitialised", msg)}
	case http.StatusForbidden:
		return &RefusedError{Field: "membership-password-file", Msg: fmt.Sprintf("the group at %s refused the membership password (%s); the member stays uninitialised; check the password and run setup-array again", req.GroupIP, msg)}
	case http.StatusConflict:
		return &RefusedError{Msg: fmt.Sprintf("the member refused: %s; it stays uninitialised", msg)}
	case http.StatusTooManyRequests:
		wait := se.RetryAfter
		if wait <= 0 {
			wait = time.Minute
		}
		return &RefusedError{Msg: fmt.Sprintf("too many wrong membership passwords: %s; wait %v and run setup-array again", msg, wait)}
	}
	return fmt.Errorf("the member failed: %d %s: %s", se.Status, http.StatusText(se.Status), msg)
}
