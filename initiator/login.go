package initiator

import (
	"fmt"

	"github.com/hitkit/hitkit/iscsi"
)

// maxLoginExchanges bounds a login against a target that never finishes
// negotiating.
const maxLoginExchanges = 16

// loginResult is what a successful login established.
type loginResult struct {
	params iscsi.Params
	tsih   uint16
	sn     iscsi.TargetSN // from the final login response
}

// redirectError is a login answered with status class 1: the target wants
// us at another address.
type redirectError struct{ addr string }

func (e *redirectError) Error() string { return "login redirected to " + e.addr }

// login runs the login phase on a fresh connection (RFC 7143 section 6):
// the security stage with CHAP or no authentication, then operational
// negotiation, ending in the full feature phase.
type login struct {
	cfg   *Config
	fr    *iscsi.Framer
	isid  iscsi.ISID
	cmdSN uint32

	stage     iscsi.Stage
	expStatSN uint32
	started   bool
	tsih      uint16
	lastSN    iscsi.TargetSN
}

func newLogin(cfg *Config, fr *iscsi.Framer, isid iscsi.ISID, cmdSN uint32) *login {
	return &login{cfg: cfg, fr: fr, isid: isid, cmdSN: cmdSN}
}

func (l *login) sessionType() string {
	if l.cfg.TargetName == "" {
		return "Discovery"
	}
	return "Normal"
}

func (l *login) run() (*loginResult, error) {
	if err := l.security(); err != nil {
		return nil, err
	}
	params, err := l.operational()
	if err != nil {
		return nil, err
	}
	return &loginResult{params: params, tsih: l.tsih, sn: l.lastSN}, nil
}

// security runs the SecurityNegotiation stage.
func (l *login) security() error {
	first := iscsi.Text{
		{Key: "InitiatorName", Value: l.cfg.InitiatorName},
		{Key: "SessionType", Value: l.sessionType()},
	}
	if l.cfg.TargetName != "" {
		first.Set("TargetName", l.cfg.TargetName)
	}
	if l.cfg.CHAPUser == "" {
		first.Set("AuthMethod", "None")
		resp, err := l.exchange(first, iscsi.StageSecurity, iscsi.StageOperational, true)
		if err != nil {
			return err
		}
		if m, _ := resp.Get("AuthMethod"); m != "" && m != "None" {
			return fmt.Errorf("login to %s: the target requires %s authentication; give a CHAP user and secret", l.cfg.TargetName, m)
		}
		return nil
	}
	first.Set("AuthMethod", "CHAP")
	resp, err := l.exchange(first, iscsi.StageSecurity, iscsi.StageOperational, false)
	if err != nil {
		return err
	}
	if m, _ := resp.Get("AuthMethod"); m != "CHAP" {
		return fmt.Errorf("login to %s: the target refused CHAP (AuthMethod=%q)", l.cfg.TargetName, m)
	}
	return l.chap()
}

func (l *login) chap() error {
	var mutual *iscsi.ChapCredentials
	if l.cfg.MutualUser != "" {
		mutual = &iscsi.ChapCredentials{User: l.cfg.MutualUser, Secret: l.cfg.MutualSecret}
	}
	ch := iscsi.NewChapInitiator(l.cfg.CHAPUser, l.cfg.CHAPSecret, mutual, l.cfg.CHAPAlgorithms)
	challenge, err := l.exchange(ch.Offer(), iscsi.StageSecurity, iscsi.StageOperational, false)
	if err != nil {
		return err
	}
	answer, err := ch.Respond(challenge)
	if err != nil {
		return fmt.Errorf("login to %s: %w", l.cfg.TargetName, err)
	}
	final, err := l.exchange(answer, iscsi.StageSecurity, iscsi.StageOperational, true)
	if err != nil {
		return err
	}
	if err := ch.Verify(final); err != nil {
		return fmt.Errorf("login to %s: mutual CHAP: %w", l.cfg.TargetName, err)
	}
	if l.stage == iscsi.StageSecurity {
		// The target did not transit yet; ask once more with nothing to add.
		if _, err := l.exchange(nil, iscsi.StageSecurity, iscsi.StageOperational, true); err != nil {
			return err
		}
	}
	if l.stage == iscsi.StageSecurity {
		return protocolErrorf("target stayed in the security stage after CHAP")
	}
	return nil
}

// operational runs LoginOperationalNegotiation until the target lets us
// into the full feature phase.
func (l *login) operational() (iscsi.Params, error) {
	neg := iscsi.NewInitiatorNegotiation(l.preferences())
	out := neg.Offer()
	for range maxLoginExchanges {
		resp, err := l.exchange(out, iscsi.StageOperational, iscsi.StageFullFeature, true)
		if err != nil {
			return iscsi.Params{}, err
		}
		if out, err = neg.ApplyResponse(resp); err != nil {
			return iscsi.Params{}, fmt.Errorf("login to %s: %w", l.cfg.TargetName, err)
		}
		if l.stage == iscsi.StageFullFeature && len(out) == 0 {
			return neg.Params(), nil
		}
	}
	return iscsi.Params{}, fmt.Errorf("login to %s: negotiation did not finish in %d exchanges", l.cfg.TargetName, maxLoginExchanges)
}

func (l *login) preferences() iscsi.Preferences {
	c := l.cfg
	return iscsi.Preferences{
		SessionType:              l.sessionType(),
		HeaderDigest:             c.HeaderDigest,
		DataDigest:               c.DataDigest,
		MaxRecvDataSegmentLength: c.MaxRecvDataSegmentLength,
		MaxBurstLength:           c.MaxBurstLength,
		FirstBurstLength:         c.FirstBurstLength,
		ImmediateData:            !c.DisableImmediateData,
		InitialR2T:               c.DisableUnsolicitedData,
	}
}

// exchange sends one login request with the given keys, asking to move
// from stage cur to next when transit is set; it returns the target's keys,
// gathering them over several responses when the target sets the C bit.
// l.stage becomes the stage the target moved us to.
func (l *login) exchange(keys iscsi.Text, cur, next iscsi.Stage, transit bool) (iscsi.Text, error) {
	var acc iscsi.TextAccumulator
	data := keys.Encode()
	for range maxLoginExchanges {
		req := iscsi.LoginRequest{
			Transit: transit, CSG: cur, NSG: next, ISID: l.isid, TSIH: l.tsih,
			CmdSN: l.cmdSN, ExpStatSN: l.expStatSN,
		}
		if err := l.fr.Write(&req, data); err != nil {
			return nil, err
		}
		if err := l.fr.Flush(); err != nil {
			return nil, fmt.Errorf("login to %s: %w", l.cfg.TargetName, err)
		}
		resp, body, err := l.readResponse()
		if err != nil {
			return nil, err
		}
		if err := acc.Add(body, resp.Continue); err != nil {
			return nil, fmt.Errorf("login to %s: %w", l.cfg.TargetName, err)
		}
		if resp.Continue {
			// Ask for the rest of the target's text with an empty, T=0 request.
			data, transit = nil, false
			continue
		}
		l.stage = cur
		if resp.Transit {
			l.stage = resp.NSG
		}
		return acc.Text()
	}
	return nil, fmt.Errorf("login to %s: target kept the login text open", l.cfg.TargetName)
}

// readResponse reads one login response and turns a failure status into an
// error.
func (l *login) readResponse() (*iscsi.LoginResponse, []byte, error) {
	var h iscsi.BHS
	_, body, err := l.fr.ReadPDU(&h)
	if err != nil {
		return nil, nil, fmt.Errorf("login to %s: reading the response: %w", l.cfg.TargetName, err)
	}
	if h.Opcode() != iscsi.OpLoginResp {
		return nil, nil, protocolErrorf("%v during login", h.Opcode())
	}
	var resp iscsi.LoginResponse
	resp.Unmarshal(&h)
	l.expStatSN = resp.StatSN + 1
	l.lastSN = resp.TargetSN
	switch resp.Status.Class() {
	case iscsi.ClassSuccess:
		l.tsih = resp.TSIH
		return &resp, body, nil
	case iscsi.ClassRedirection:
		text, _ := iscsi.ParseText(body)
		addr, _ := text.Get("TargetAddress")
		if addr == "" {
			return nil, nil, protocolErrorf("redirect without a TargetAddress")
		}
		return nil, nil, &redirectError{addr: redirectAddr(addr)}
	}
	return nil, nil, &LoginError{Target: l.cfg.TargetName, Status: resp.Status}
}

// redirectAddr turns "host[:port][,tpgt]" into host:port.
func redirectAddr(v string) string {
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == ',' {
			v = v[:i]
			break
		}
		if v[i] == ']' || v[i] == ':' {
			break
		}
	}
	return withPort(v)
}
