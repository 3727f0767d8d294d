// Package mgmt is the lab group's HTTPS management API: an array.Service
// that serves JSON on the group IP, port 8443, behind the group admin
// password. The types and the client are in package groupapi; the
// endpoints are described in docs/api.md.
package mgmt

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/internal/jsonhttp"
)

// Defaults of a Server.
const (
	DefaultTokenTTL  = time.Hour
	DefaultMaxEvents = 256
	maxBody          = 1 << 20
	adminUser        = "admin"
)

// Server is the management API. The zero value is not usable; call New.
// Add it to array.Options.Services; it starts once the group serves.
type Server struct {
	// Addr overrides the group's ManagementAddr (tests).
	Addr string
	// Logger overrides the group's logger.
	Logger    logrus.FieldLogger
	TokenTTL  time.Duration
	MaxEvents int

	g        *array.Group
	log      logrus.FieldLogger
	password []byte
	fp       string
	srv      *http.Server
	ln       net.Listener
	sampler  *sampler

	mu     sync.Mutex // guards tokens, events and seq; serialises changes
	tokens map[[32]byte]time.Time
	events []groupapi.Event
	seq    uint64
	change sync.Mutex

	guesses passwordGuesses // wrong admin passwords per remote address
}

// New returns a management API server with the defaults.
func New() *Server { return &Server{} }

var _ array.Service = (*Server)(nil)

// Start reads the admin password, loads or makes the certificate in
// DIR/mgmt and listens on the group's management address.
func (s *Server) Start(g *array.Group) error {
	s.g = g
	s.log = s.Logger
	if s.log == nil {
		s.log = g.Logger()
	}
	s.log = s.log.WithField("service", "mgmt")
	if s.TokenTTL <= 0 {
		s.TokenTTL = DefaultTokenTTL
	}
	if s.MaxEvents <= 0 {
		s.MaxEvents = DefaultMaxEvents
	}
	s.tokens = map[[32]byte]time.Time{}
	pw, err := os.ReadFile(array.AdminPasswordFile(g.Dir()))
	if err != nil {
		return fmt.Errorf("management API: reading the admin password: %w", err)
	}
	s.password = bytes.TrimSpace(pw)
	if len(s.password) == 0 {
		return fmt.Errorf("management API: %s is empty", array.AdminPasswordFile(g.Dir()))
	}
	addr := s.Addr
	if addr == "" {
		addr = g.ManagementAddr()
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	cert, fp, err := LoadOrCreateCert(g.Dir(), host)
	if err != nil {
		return err
	}
	s.fp = fp
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("management API: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          jsonhttp.ErrorLog(s.log),
	}
	s.sampler = newSampler(g.Server().Sessions)
	s.sampler.start(sampleInterval)
	go s.srv.ServeTLS(ln, "", "")
	s.log.WithFields(logrus.Fields{"addr": ln.Addr().String(), "fingerprint": fp}).Info("management API listening")
	return nil
}

// Close stops the server, waiting briefly for requests in flight.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	s.sampler.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

// Fingerprint is the SHA-256 fingerprint of the server's certificate
// (upper-case hex with colons), valid after Start.
func (s *Server) Fingerprint() string { return s.fp }

// ListenAddr is where the server listens, valid after Start.
func (s *Server) ListenAddr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Handler is the API's routes behind logging and authentication.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// paths knows every endpoint's path whatever the method, so that a
	// wrong method gets 405 rather than 404.
	paths := http.NewServeMux()
	route := func(pattern string, h http.Handler) {
		mux.Handle(pattern, h)
		if _, path, ok := strings.Cut(pattern, " "); ok {
			if _, p := paths.Handler(&http.Request{Method: "GET", URL: &url.URL{Path: path}}); p != path {
				paths.Handle(path, http.NotFoundHandler())
			}
		}
	}
	route("POST /api/v1/login", http.HandlerFunc(s.login))
	auth := func(pattern string, h http.HandlerFunc) { route(pattern, s.authenticate(h)) }
	auth("GET /api/v1/group", s.getGroup)
	auth("GET /api/v1/members", s.getMembers)
	auth("GET /api/v1/volumes", s.getVolumes)
	auth("POST /api/v1/volumes", s.createVolume)
	auth("GET /api/v1/volumes/{name}", s.getVolume)
	auth("PATCH /api/v1/volumes/{name}", s.resizeVolume)
	auth("DELETE /api/v1/volumes/{name}", s.deleteVolume)
	auth("GET /api/v1/volumes/{name}/access", s.getAccess)
	auth("PUT /api/v1/volumes/{name}/access", s.setAccess)
	auth("GET /api/v1/volumes/{name}/pagemap", s.getPageMap)
	s.snapshotRoutes(auth)
	auth("GET /api/v1/stats", s.getStats)
	auth("GET /api/v1/events", s.getEvents)
	mux.Handle("/", s.authenticate(func(w http.ResponseWriter, r *http.Request) {
		if _, p := paths.Handler(r); p != "" {
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s does not take %s; see docs/api.md", r.URL.Path, r.Method))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s; see docs/api.md", r.Method, r.URL.Path))
	}))
	return jsonhttp.LogRequests(s.log, "api request", mux)
}

func (s *Server) passwordOK(p []byte) bool {
	// Compare digests so that the comparison takes the same time whatever
	// the length of the guess.
	a, b := sha256.Sum256(p), sha256.Sum256(s.password)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (s *Server) authenticate(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pw, ok := r.BasicAuth(); ok {
			if s.guesses.refuse(w, r) {
				return
			}
			userOK := subtle.ConstantTimeCompare([]byte(user), []byte(adminUser)) == 1
			if s.passwordOK([]byte(pw)) && userOK {
				h(w, r)
				return
			}
			s.guesses.fail(r)
		} else if tok, ok := bearer(r); ok && s.tokenOK(tok) {
			h(w, r)
			return
		}
		s.event("login-failed", "", "refused a request with missing or wrong credentials", r)
		w.Header().Set("WWW-Authenticate", `Basic realm="hitkit group", charset="UTF-8"`)
		writeError(w, http.StatusUnauthorized, "wrong or missing credentials: use basic auth as user admin with the group admin password, or a bearer token from POST /api/v1/login")
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) > len(p) && http.CanonicalHeaderKey(h[:len(p)-1]) == "Bearer" {
		return h[len(p):], true
	}
	return "", false
}

func (s *Server) tokenOK(tok string) bool {
	k := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[k]
	if ok && time.Now().After(exp) {
		delete(s.tokens, k)
		return false
	}
	return ok
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req groupapi.LoginRequest
	if !decode(w, r, &req) || s.guesses.refuse(w, r) {
		return
	}
	if !s.passwordOK([]byte(req.Password)) {
		s.guesses.fail(r)
		s.event("login-failed", "", "wrong password at POST /api/v1/login", r)
		writeError(w, http.StatusUnauthorized, "wrong password: use the group admin password")
		return
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	exp := time.Now().Add(s.TokenTTL).UTC()
	s.mu.Lock()
	now := time.Now()
	for k, e := range s.tokens {
		if now.After(e) {
			delete(s.tokens, k)
		}
	}
	s.tokens[sha256.Sum256([]byte(tok))] = exp
	s.mu.Unlock()
	jsonhttp.Write(w, http.StatusOK, groupapi.LoginResponse{Token: tok, Expires: exp})
}

// decode reads one JSON object with no unknown fields and nothing after
// it, or answers 400 (413 when too large) and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if e := jsonhttp.Decode(w, r, v, maxBody, ""); e != nil {
		writeError(w, e.Status, e.Message)
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, code int, msg string) {
	jsonhttp.Write(w, code, groupapi.Error{Error: msg})
}

// event records a change; the list keeps the newest MaxEvents.
func (s *Server) event(kind, volume, detail string, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.events = append(s.events, groupapi.Event{Seq: s.seq, Time: time.Now().UTC(), Kind: kind, Volume: volume, Detail: detail, Remote: r.RemoteAddr})
	if n := len(s.events) - s.MaxEvents; n > 0 {
		s.events = append([]groupapi.Event(nil), s.events[n:]...)
	}
}

func sizeError(size int64) string {
	switch {
	case size <= 0:
		return fmt.Sprintf("size %d: give a positive number of bytes", size)
	case size > groupapi.MaxVolumeSize:
		return fmt.Sprintf("size %d is over the limit of 64 TiB (%d bytes)", size, groupapi.MaxVolumeSize)
	case size%512 != 0:
		return fmt.Sprintf("size %d is not a multiple of 512 bytes", size)
	}
	return ""
}
