// Package setup is the lab's setup endpoint: an array.Service that, for
// each uninitialised member of a site, serves the setupapi contract over
// HTTPS on the member's first port address, port 8444, with a
// self-signed certificate of its own (kept in DIR/members/<m>/setup/mgmt,
// 0600). The host-side wizard (remotesetup, `hitkit setup-array`) pins
// that certificate by the fingerprint the discovery responder announces.
//
//	GET  /setup/v1/info        what the member is
//	POST /setup/v1/initialize  check the request, answer 202, set up in the background
//	GET  /setup/v1/progress    how far the setup is
//
// One setup runs at a time on a site. Once a member is set up, its
// endpoint keeps answering until the lab stops: info says "initialized"
// and initialize is refused with 409. A lab started again serves no
// setup endpoint for its initialised members. See docs/setup-api.md.
package setup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/array/mgmt"
	"github.com/hitkit/hitkit/array/responder"
	"github.com/hitkit/hitkit/internal/guesslimit"
	"github.com/hitkit/hitkit/internal/jsonhttp"
	"github.com/hitkit/hitkit/setupapi"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// Member states in Info.
const (
	stateUninitialized = "uninitialized"
	stateInitializing  = "initializing"
	stateInitialized   = "initialized"
)

// Service serves the setup endpoints of a site's uninitialised members.
// The zero value is not usable; call New.
type Service struct {
	// RAIDDelay is how long initialising a member's RAID takes;
	// array.DefaultRAIDDelay when zero. Tests shorten it.
	RAIDDelay time.Duration
	// Guesses limits wrong membership passwords per remote address; its
	// zero value allows 5 a minute.
	Guesses guesslimit.Limiter
	// Logger overrides the group's logger.
	Logger logrus.FieldLogger

	g      *array.Group
	log    logrus.FieldLogger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	endpoints map[int]*endpoint
	running   int // the member being set up, 0 for none
}

// endpoint is one member's setup endpoint.
type endpoint struct {
	member int
	host   netip.Addr
	url    string
	fp     string
	srv    *http.Server
	// progress is guarded by Service.mu.
	progress setupapi.Progress
}

// New returns a setup service with the defaults.
func New() *Service { return &Service{} }

var _ array.Service = (*Service)(nil)

// CertDir is where member m's setup certificate lives: mgmt's
// certificate files under it (CertDir/mgmt/cert.pem and key.pem).
func CertDir(dir string, member int) string {
	return filepath.Join(dir, "members", strconv.Itoa(member), "setup")
}

// Start listens for every uninitialised member of the site.
func (s *Service) Start(g *array.Group) error {
	s.g = g
	s.log = s.Logger
	if s.log == nil {
		s.log = g.Logger()
	}
	s.log = s.log.WithField("service", "setup")
	if s.RAIDDelay == 0 {
		s.RAIDDelay = array.DefaultRAIDDelay
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.endpoints = map[int]*endpoint{}
	cfg := g.Config()
	for _, mc := range cfg.Members {
		if mc.Initialized {
			continue
		}
		if err := s.listen(cfg, mc.Number); err != nil {
			s.Close()
			return fmt.Errorf("setup endpoint of member %d: %w", mc.Number, err)
		}
	}
	g.AnnounceSetup(s.Endpoint)
	return nil
}

func (s *Service) listen(cfg array.Config, member int) error {
	port, err := netip.ParseAddrPort(array.PortAddr(cfg.BaseIP, member, 1))
	if err != nil {
		return err
	}
	host := port.Addr()
	cert, fp, err := mgmt.LoadOrCreateCert(CertDir(s.g.Dir(), member), host.String())
	if err != nil {
		return err
	}
	addr := netip.AddrPortFrom(host, setupapi.Port).String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ep := &endpoint{member: member, host: host, url: "https://" + addr, fp: fp, progress: setupapi.Progress{State: setupapi.StateIdle}}
	ep.srv = &http.Server{
		Handler:           jsonhttp.LogRequests(s.log.WithField("member", member), "setup request", s.handler(ep)),
		TLSConfig:         tlsConfig(cert),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          jsonhttp.ErrorLog(s.log),
	}
	s.mu.Lock()
	s.endpoints[member] = ep
	s.mu.Unlock()
	go ep.srv.ServeTLS(ln, "", "")
	s.log.WithFields(logrus.Fields{"member": member, "endpoint": ep.url, "fingerprint": fp}).Info("setup endpoint listening")
	return nil
}

// Endpoint is where member's setup endpoint answers and its certificate's
// SHA-256 fingerprint, for the discovery responder to announce.
func (s *Service) Endpoint(member int) (url, fingerprint string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, ok := s.endpoints[member]
	if !ok {
		return "", "", false
	}
	return ep.url, ep.fp, true
}

// Close stops a setup in progress (the member stays uninitialised) and
// the endpoints.
func (s *Service) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	eps := s.endpoints
	s.mu.Unlock()
	var errs []error
	for _, ep := range eps {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := ep.srv.Shutdown(ctx); err != nil {
			errs = append(errs, ep.srv.Close())
		}
		cancel()
	}
	return errors.Join(errs...)
}

// handler routes one member's endpoint.
func (s *Service) handler(ep *endpoint) http.Handler {
	routes := map[string]struct {
		method string
		h      func(*endpoint, http.ResponseWriter, *http.Request)
	}{
		"/setup/v1/info":       {http.MethodGet, s.info},
		"/setup/v1/initialize": {http.MethodPost, s.initialize},
		"/setup/v1/progress":   {http.MethodGet, s.getProgress},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := routes[r.URL.Path]
		switch {
		case !ok:
			writeError(w, http.StatusNotFound, "", fmt.Sprintf("no endpoint %s; see docs/setup-api.md", r.URL.Path))
		case r.Method != route.method:
			w.Header().Set("Allow", route.method)
			writeError(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("%s takes %s, not %s", r.URL.Path, route.method, r.Method))
		default:
			route.h(ep, w, r)
		}
	})
}

func (s *Service) info(ep *endpoint, w http.ResponseWriter, r *http.Request) {
	cfg := s.g.Config()
	mc := cfg.Members[ep.member-1]
	ports := cfg.SetupPortsPerMember()
	jsonhttp.Write(w, http.StatusOK, setupapi.Info{
		Serial: mc.Serial, Model: responder.Model, Firmware: responder.Firmware,
		MACs: responder.MACs(mc.Serial, ports), State: s.state(ep.member),
		Address: ep.host.String(), Network: cfg.Network().String(), Ports: ports,
		RawCapacity: mc.Capacity,
	})
}

// state is the member's state as Info reports it.
func (s *Service) state(member int) string {
	s.mu.Lock()
	running := s.running == member
	s.mu.Unlock()
	switch {
	case running:
		return stateInitializing
	case s.g.Config().Members[member-1].Initialized:
		return stateInitialized
	}
	return stateUninitialized
}

func (s *Service) getProgress(ep *endpoint, w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p := ep.progress
	s.mu.Unlock()
	jsonhttp.Write(w, http.StatusOK, p)
}

// initialize checks a request and starts the setup. Every refusal comes
// before anything changes.
func (s *Service) initialize(ep *endpoint, w http.ResponseWriter, r *http.Request) {
	remote := guesslimit.Key(r.RemoteAddr)
	if wait, blocked := s.Guesses.Blocked(remote); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(guesslimit.RetryAfter(wait)))
		writeError(w, http.StatusTooManyRequests, "", fmt.Sprintf("too many wrong membership passwords from %s; wait %d seconds", remote, guesslimit.RetryAfter(wait)))
		return
	}
	var body setupapi.Request
	if !decode(w, r, &body) {
		return
	}
	req, field, err := parseRequest(ep.member, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, field, err.Error())
		return
	}
	if !s.reserve(ep.member, w) {
		return
	}
	if err := s.g.CheckSetup(req); err != nil {
		s.release()
		s.refuse(w, remote, err)
		return
	}
	s.mu.Lock()
	ep.progress = setupapi.Progress{State: setupapi.StateRunning, Step: array.StepValidating}
	p := ep.progress
	s.mu.Unlock()
	s.log.WithFields(logrus.Fields{"member": ep.member, "mode": body.Mode, "remote": remote}).Info("setup started")
	s.wg.Add(1)
	go s.run(ep, req)
	jsonhttp.Write(w, http.StatusAccepted, p)
}

// reserve makes member the one being set up, or answers 409.
func (s *Service) reserve(member int, w http.ResponseWriter) bool {
	mc := s.g.Config().Members[member-1] // before s.mu: Status calls Endpoint under the group's lock
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != 0 {
		writeError(w, http.StatusConflict, "", fmt.Sprintf("a setup is already running on member %d of this site; follow GET /setup/v1/progress there", s.running))
		return false
	}
	if mc.Initialized {
		writeError(w, http.StatusConflict, "", fmt.Sprintf("member %d is already initialised as %s", member, mc.Name))
		return false
	}
	s.running = member
	return true
}

func (s *Service) release() {
	s.mu.Lock()
	s.running = 0
	s.mu.Unlock()
}

// refuse answers a refused setup with its status, counting wrong
// membership passwords against the remote address.
func (s *Service) refuse(w http.ResponseWriter, remote string, err error) {
	var se *array.SetupError
	if !errors.As(err, &se) {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	switch se.Reason {
	case array.SetupForbidden:
		s.Guesses.Fail(remote)
		s.log.WithField("remote", remote).Warn("setup refused: wrong membership password")
		writeError(w, http.StatusForbidden, se.Field, se.Msg)
	case array.SetupConflict:
		writeError(w, http.StatusConflict, se.Field, se.Msg)
	default:
		writeError(w, http.StatusBadRequest, se.Field, se.Msg)
	}
}

// run sets the member up in the background and records how it went.
func (s *Service) run(ep *endpoint, req array.SetupRequest) {
	defer s.wg.Done()
	defer s.release()
	report := func(step string, pct int) {
		s.mu.Lock()
		ep.progress = setupapi.Progress{State: setupapi.StateRunning, Step: step, Percent: pct}
		s.mu.Unlock()
	}
	res, err := s.g.SetUpMember(s.ctx, req, array.SetupOptions{RAIDDelay: s.RAIDDelay, Progress: report})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		step := ep.progress.Step
		ep.progress = setupapi.Progress{State: setupapi.StateFailed, Step: step, Error: err.Error()}
		return
	}
	// The management API made its certificate as it started; a site run
	// without one leaves the fingerprint empty.
	fp, _ := mgmt.FingerprintFile(s.g.Dir())
	ep.progress = setupapi.Progress{State: setupapi.StateDone, Step: array.StepDone, Percent: 100, Result: &setupapi.Result{
		GroupName: res.GroupName, GroupIP: res.GroupAddr, ManagementAddr: res.ManagementAddr,
		ManagementFingerprint: fp, Member: res.Member, MemberName: res.MemberName, Capacity: res.Capacity,
	}}
}

// parseRequest turns the wire request into the array's, or names the
// field that does not parse. The array checks the values (CheckSetup).
func parseRequest(member int, b setupapi.Request) (array.SetupRequest, string, error) {
	r := array.SetupRequest{
		Member: member, Name: b.MemberName, RAID: b.RAID, GroupName: b.GroupName,
		AdminPassword: b.AdminPassword, MembershipPassword: b.MembershipPassword,
	}
	switch b.Mode {
	case setupapi.ModeCreate:
		r.Create = true
	case setupapi.ModeJoin:
	default:
		return r, "mode", fmt.Errorf("mode %q: use %q or %q", b.Mode, setupapi.ModeCreate, setupapi.ModeJoin)
	}
	var err error
	if r.IP, err = netip.ParsePrefix(b.IP); err != nil {
		return r, "ip", fmt.Errorf("member IP %q: give an address with its prefix length, such as 127.0.10.31/24", b.IP)
	}
	if r.Gateway, err = netip.ParseAddr(b.Gateway); err != nil {
		return r, "gateway", fmt.Errorf("gateway %q: give an IPv4 address, such as 127.0.10.254", b.Gateway)
	}
	if r.GroupIP, err = netip.ParseAddr(b.GroupIP); err != nil {
		return r, "group_ip", fmt.Errorf("group IP %q: give an IPv4 address without a port, such as 127.0.10.1", b.GroupIP)
	}
	if b.MembershipPassword == "" {
		return r, "membership_password", errors.New("membership password is missing")
	}
	if r.Create && b.AdminPassword == "" {
		return r, "admin_password", errors.New("admin password is missing: a new group needs one")
	}
	return r, "", nil
}

// decode reads one JSON object with no unknown fields and nothing after
// it, or answers 400 (413 when too large) and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if e := jsonhttp.Decode(w, r, v, maxBody, " (see docs/setup-api.md)"); e != nil {
		writeError(w, e.Status, e.Field, e.Message)
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, code int, field, msg string) {
	jsonhttp.Write(w, code, setupapi.Error{Error: msg, Field: field})
}
