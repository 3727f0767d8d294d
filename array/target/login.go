package target

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// maxLoginPDUs bounds a login that never finishes.
const maxLoginPDUs = 32

// loginError refuses a login with status; reason is logged, never sent.
type loginError struct {
	status iscsi.LoginStatus
	reason string
	text   iscsi.Text // sent with the status: a redirect's TargetAddress
}

func (e *loginError) Error() string {
	return fmt.Sprintf("login refused with status 0x%04x (%v): %s", uint16(e.status), e.status, e.reason)
}

func refuse(status iscsi.LoginStatus, format string, args ...any) *loginError {
	return &loginError{status: status, reason: fmt.Sprintf(format, args...)}
}

// authState tracks the security stage.
type authState int

const (
	authPending    authState = iota // no AuthMethod agreed yet
	authCHAP                        // CHAP agreed; waiting for CHAP_A
	authChallenged                  // challenge sent; waiting for CHAP_N and CHAP_R
	authDone
)

// login is the login phase of one connection (RFC 7143 section 6): the
// security stage (CHAP or none), operational negotiation, and the creation
// of the session.
type login struct {
	c       *conn
	req     iscsi.LoginRequest // the request being answered
	first   iscsi.LoginRequest
	started bool
	begun   bool
	stage   iscsi.Stage

	initiator   string
	sessionType string
	target      *Target // nil for discovery
	chap        *iscsi.ChapTarget
	auth        authState
	chapUser    string
	neg         *iscsi.TargetNegotiation
	negotiated  bool // neg has declared our MaxRecvDataSegmentLength
}

func (c *conn) login() error {
	c.nc.SetDeadline(time.Now().Add(c.srv.cfg.LoginTimeout))
	defer c.nc.SetDeadline(time.Time{})
	l := &login{c: c}
	err := l.run()
	var le *loginError
	switch {
	case errors.As(err, &le):
		l.refuse(le)
		l.logger().WithField("status", fmt.Sprintf("0x%04x", uint16(le.status))).Warn(le.reason)
	case err != nil && l.started:
		l.logger().WithError(err).Warn("login aborted")
	case err != nil:
		l.logger().WithError(err).Debug("connection closed before login")
	}
	return err
}

func (l *login) logger() logrus.FieldLogger {
	log := l.c.log
	if l.initiator != "" {
		log = log.WithField("initiator", l.initiator)
	}
	if l.target != nil {
		log = log.WithField("target", l.target.Name)
	}
	return log
}

func (l *login) run() error {
	for range maxLoginPDUs {
		keys, err := l.read()
		if err != nil {
			return err
		}
		resp, transit, err := l.step(keys)
		if err != nil {
			return err
		}
		if transit && l.req.NSG == iscsi.StageFullFeature {
			return l.finish(resp)
		}
		if err := l.respond(resp, transit, 0); err != nil {
			return err
		}
		if transit {
			l.stage = l.req.NSG
		}
	}
	return refuse(iscsi.LoginInitiatorError, "login did not finish in %d PDUs", maxLoginPDUs)
}

// read returns the keys of the next login request, gathering them over
// several PDUs when the initiator sets the C bit.
func (l *login) read() (iscsi.Text, error) {
	var acc iscsi.TextAccumulator
	for range maxLoginPDUs {
		if err := l.c.waitPassable(); err != nil {
			return nil, err
		}
		var h iscsi.BHS
		_, data, err := l.c.fr.ReadPDU(&h)
		var fe *iscsi.FormatError
		switch {
		case errors.As(err, &fe):
			return nil, refuse(iscsi.LoginInitiatorError, "%v", err)
		case err != nil:
			return nil, err
		case h.Opcode() != iscsi.OpLoginReq:
			if !l.started {
				return nil, fmt.Errorf("%v before login", h.Opcode())
			}
			return nil, refuse(iscsi.LoginInvalidDuringLogin, "%v during login", h.Opcode())
		}
		var req iscsi.LoginRequest
		req.Unmarshal(&h)
		if err := l.check(&req); err != nil {
			return nil, err
		}
		if err := acc.Add(data, req.Continue); err != nil {
			return nil, refuse(iscsi.LoginInitiatorError, "%v", err)
		}
		if !req.Continue {
			text, err := acc.Text()
			if err != nil {
				return nil, refuse(iscsi.LoginInitiatorError, "malformed login text: %v", err)
			}
			return text, nil
		}
		// The initiator's text goes on in its next PDU; ask for it.
		if err := l.respond(nil, false, 0); err != nil {
			return nil, err
		}
	}
	return nil, refuse(iscsi.LoginInitiatorError, "login text continued over more than %d PDUs", maxLoginPDUs)
}

// check validates a login request's header against the login so far.
func (l *login) check(req *iscsi.LoginRequest) error {
	if !l.started {
		l.started, l.first, l.stage = true, *req, req.CSG
		l.c.loginCmdSN, l.c.cid = req.CmdSN, req.CID
	}
	l.req = *req
	switch {
	case req.VersionMin > 0:
		return refuse(iscsi.LoginUnsupportedVersion, "initiator needs iSCSI version %d or later", req.VersionMin)
	case req.ISID != l.first.ISID || req.TSIH != l.first.TSIH || req.CID != l.first.CID:
		return refuse(iscsi.LoginInitiatorError, "ISID, TSIH or CID changed during login")
	case req.Transit && req.Continue:
		return refuse(iscsi.LoginInitiatorError, "login request with both T and C set")
	case req.CSG != iscsi.StageSecurity && req.CSG != iscsi.StageOperational:
		return refuse(iscsi.LoginInitiatorError, "login request in stage %v", req.CSG)
	case req.CSG < l.stage:
		return refuse(iscsi.LoginInitiatorError, "login went back from %v to %v", l.stage, req.CSG)
	case req.Transit && (req.NSG <= req.CSG || req.NSG == 2):
		return refuse(iscsi.LoginInitiatorError, "login asks to move from %v to %v", req.CSG, req.NSG)
	}
	l.stage = req.CSG
	return nil
}

// step answers one complete login request. transit says the response
// moves the initiator to the stage it asked for.
func (l *login) step(keys iscsi.Text) (out iscsi.Text, transit bool, err error) {
	if !l.begun {
		if err := l.begin(keys); err != nil {
			return nil, false, err
		}
		out = l.announce()
	}
	if l.req.CSG == iscsi.StageSecurity {
		sec, err := l.security(keys)
		if err != nil {
			return nil, false, err
		}
		out = append(out, sec...)
	} else if l.auth != authDone {
		if l.chap != nil {
			return nil, false, refuse(iscsi.LoginAuthFailed, "initiator skipped the CHAP the target requires")
		}
		if err := l.authorized(); err != nil {
			return nil, false, err
		}
	}
	op, err := l.negotiate(keys)
	if err != nil {
		return nil, false, err
	}
	return append(out, op...), l.req.Transit && l.auth == authDone, nil
}

// begin reads the keys that open a login: who is logging in, to what.
func (l *login) begin(keys iscsi.Text) error {
	l.begun = true
	srv := l.c.srv
	l.initiator, _ = keys.Get("InitiatorName")
	if l.initiator == "" {
		return refuse(iscsi.LoginMissingParameter, "login without InitiatorName")
	}
	switch st, _ := keys.Get("SessionType"); st {
	case "", "Normal":
		l.sessionType = "Normal"
	case "Discovery":
		l.sessionType = "Discovery"
	default:
		return refuse(iscsi.LoginSessionTypeUnsupp, "unknown SessionType %q", st)
	}
	if l.first.TSIH != 0 {
		if _, err := srv.session(l.first.TSIH); err == nil {
			return refuse(iscsi.LoginTooManyConnections, "the target runs one connection per session")
		}
		return refuse(iscsi.LoginSessionDoesNotExist, "no session with TSIH %d", l.first.TSIH)
	}
	chap := srv.cfg.DiscoveryCHAP
	if l.sessionType == "Normal" {
		if err := l.findTarget(keys); err != nil {
			return err
		}
		chap = l.target.CHAP
	}
	if chap != nil {
		l.chap = iscsi.NewChapTarget(chap.Lookup, chap.Mutual)
	}
	l.neg = iscsi.NewTargetNegotiation(l.sessionType, srv.cfg.Limits)
	return nil
}

// findTarget resolves TargetName, after giving the redirect hook its say.
func (l *login) findTarget(keys iscsi.Text) error {
	srv := l.c.srv
	name, _ := keys.Get("TargetName")
	if name == "" {
		return refuse(iscsi.LoginMissingParameter, "Normal session login without TargetName")
	}
	if srv.cfg.Redirect != nil {
		info := LoginInfo{
			InitiatorName: l.initiator, ISID: l.first.ISID, TargetName: name,
			Portal: l.c.portal.info, Remote: l.c.remote,
		}
		if addr, ok := srv.cfg.Redirect(info); ok {
			if !strings.Contains(addr, ",") {
				addr += "," + strconv.Itoa(int(l.c.portal.info.TPGT))
			}
			le := refuse(iscsi.LoginTargetMovedTemp, "redirected to %s", addr)
			le.text = iscsi.Text{{Key: "TargetAddress", Value: addr}}
			return le
		}
	}
	t, status := srv.lookupTarget(name)
	if status != iscsi.LoginSuccess {
		return refuse(status, "login to %q, which is not here", name)
	}
	l.target = t
	return nil
}

// announce is what the first response of a Normal session declares.
func (l *login) announce() iscsi.Text {
	if l.target == nil {
		return nil
	}
	out := iscsi.Text{{Key: "TargetPortalGroupTag", Value: strconv.Itoa(int(l.c.portal.info.TPGT))}}
	if l.target.Alias != "" {
		out = append(out, iscsi.Pair{Key: "TargetAlias", Value: l.target.Alias})
	}
	return out
}

// security answers the security stage's keys: AuthMethod, then CHAP.
func (l *login) security(keys iscsi.Text) (iscsi.Text, error) {
	var out iscsi.Text
	if offer, ok := keys.Get("AuthMethod"); ok && l.auth == authPending {
		method, err := l.chooseAuth(offer)
		if err != nil {
			return nil, err
		}
		out = append(out, iscsi.Pair{Key: "AuthMethod", Value: method})
	}
	if _, ok := keys.Get("CHAP_A"); ok {
		if l.auth != authCHAP {
			return nil, refuse(iscsi.LoginAuthFailed, "CHAP_A out of turn")
		}
		challenge, err := l.chap.Challenge(keys)
		if err != nil {
			return nil, refuse(iscsi.LoginAuthFailed, "%v", err)
		}
		l.auth = authChallenged
		out = append(out, challenge...)
	}
	if _, ok := keys.Get("CHAP_R"); ok {
		answer, err := l.verifyCHAP(keys)
		if err != nil {
			return nil, err
		}
		out = append(out, answer...)
	}
	if l.auth == authPending && l.chap == nil && l.req.Transit {
		// No AuthMethod offered, and none needed.
		if err := l.authorized(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (l *login) chooseAuth(offer string) (string, error) {
	methods := strings.Split(offer, ",")
	if l.chap != nil {
		if !slices.Contains(methods, "CHAP") {
			return "", refuse(iscsi.LoginAuthFailed, "the target requires CHAP; the initiator offered AuthMethod=%s", offer)
		}
		l.auth = authCHAP
		return "CHAP", nil
	}
	if !slices.Contains(methods, "None") {
		return "", refuse(iscsi.LoginAuthFailed, "the target has no CHAP set up; the initiator offered only AuthMethod=%s", offer)
	}
	return "None", l.authorized()
}

func (l *login) verifyCHAP(keys iscsi.Text) (iscsi.Text, error) {
	if l.auth != authChallenged {
		return nil, refuse(iscsi.LoginAuthFailed, "CHAP response out of turn")
	}
	user, answer, err := l.chap.Verify(keys)
	if err != nil {
		return nil, refuse(iscsi.LoginAuthFailed, "CHAP for user %q: %v", user, err)
	}
	l.chapUser = user
	return answer, l.authorized()
}

// authorized ends authentication and asks the target's access policy.
func (l *login) authorized() error {
	l.auth = authDone
	if l.target == nil || l.target.Access == nil {
		return nil
	}
	if err := l.target.Access(l.initiator, l.chapUser, l.c.remote.Addr()); err != nil {
		return refuse(iscsi.LoginAuthorizationFailed, "access refused: %v", err)
	}
	return nil
}

// negotiate answers operational keys. In the security stage it speaks
// only when the initiator offered some, so that our own declarations wait
// for the operational stage.
func (l *login) negotiate(keys iscsi.Text) (iscsi.Text, error) {
	var op iscsi.Text
	for _, p := range keys {
		if !loginOnlyKey(p.Key) {
			op = append(op, p)
		}
	}
	if l.req.CSG == iscsi.StageSecurity && len(op) == 0 {
		return nil, nil
	}
	resp, err := l.neg.Respond(op)
	if err != nil {
		return nil, refuse(iscsi.LoginInitiatorError, "%v", err)
	}
	l.negotiated = true
	return resp, nil
}

// loginOnlyKey reports keys that the login itself handles.
func loginOnlyKey(k string) bool {
	switch k {
	case "InitiatorName", "InitiatorAlias", "TargetName", "SessionType", "AuthMethod":
		return true
	}
	return strings.HasPrefix(k, "CHAP_")
}

// finish creates the session and lets the initiator into the full
// feature phase.
func (l *login) finish(keys iscsi.Text) error {
	c := l.c
	params := l.neg.Params()
	if !l.negotiated {
		params.TargetMaxRecvDSL = iscsi.DefaultMaxRecvDataSegmentLength
	}
	params.TargetPortalGroupTag = uint32(c.portal.info.TPGT)
	if l.target != nil {
		params.TargetAlias = l.target.Alias
	}
	ss := &session{
		srv: c.srv, conn: c, isid: l.first.ISID, initiator: l.initiator, target: l.target,
		chapUser: l.chapUser, params: params, started: time.Now(),
		expCmdSN: l.req.CmdSN, depth: uint32(c.srv.cfg.QueueDepth), tasks: map[uint32]*task{},
	}
	if l.target != nil {
		ss.nexus = Nexus{InitiatorName: l.initiator, ISID: l.first.ISID, TargetName: l.target.Name, TPGT: c.portal.info.TPGT}
	}
	ss.log = l.logger()
	c.sess = ss
	// Once registered, the session is visible: anything else written to
	// it (an async message, say) must queue behind the final login
	// response, and the digests start right after that response.
	c.lockWrite()
	if err := c.srv.register(ss); err != nil {
		c.unlockWrite(nil)
		return refuse(iscsi.LoginTargetError, "%v", err)
	}
	c.log = ss.log
	err := l.writeResponse(keys, true, ss.tsih)
	c.fr.HeaderDigest, c.fr.DataDigest = params.HeaderDigest, params.DataDigest
	c.fr.MaxRecvDataSegment = int(params.TargetMaxRecvDSL)
	if err := c.unlockWrite(err); err != nil {
		return err
	}
	ss.log.WithFields(logrus.Fields{
		"type": l.sessionType, "chap_user": l.chapUser,
		"header_digest": params.HeaderDigest, "data_digest": params.DataDigest,
	}).Info("session logged in")
	return nil
}

// respond sends a successful login response.
func (l *login) respond(keys iscsi.Text, transit bool, tsih uint16) error {
	l.c.lockWrite()
	return l.c.unlockWrite(l.writeResponse(keys, transit, tsih))
}

func (l *login) writeResponse(keys iscsi.Text, transit bool, tsih uint16) error {
	resp := iscsi.LoginResponse{
		Transit: transit, CSG: l.req.CSG, ISID: l.first.ISID, TSIH: tsih,
		InitiatorTaskTag: l.req.InitiatorTaskTag, Status: iscsi.LoginSuccess,
	}
	if transit {
		resp.NSG = l.req.NSG
	}
	return l.c.writeLocked(&resp, keys.Encode(), true)
}

// refuse ends the login with a failure status.
func (l *login) refuse(le *loginError) {
	resp := iscsi.LoginResponse{
		CSG: l.req.CSG, ISID: l.first.ISID, InitiatorTaskTag: l.req.InitiatorTaskTag, Status: le.status,
	}
	l.c.write(&resp, le.text.Encode(), true)
}
