package target

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// Defaults for the zero Config.
const (
	DefaultQueueDepth   = 128
	DefaultLoginTimeout = 15 * time.Second
	DefaultNopTimeout   = 10 * time.Second
	// DefaultMaxTransfer bounds the write buffer one command may make the
	// target allocate, whatever ExpectedDataTransferLength says.
	DefaultMaxTransfer = 32 << 20
)

// ErrServerClosed is returned by operations on a closed Server.
var ErrServerClosed = errors.New("target: server closed")

// DefaultLimits are the negotiation limits of a Config that sets none:
// immediate and unsolicited data allowed, CRC32C digests on offer.
func DefaultLimits() iscsi.TargetLimits {
	return iscsi.TargetLimits{
		MaxRecvDataSegmentLength: 256 << 10,
		MaxBurstLength:           1 << 20,
		FirstBurstLength:         256 << 10,
		MaxOutstandingR2T:        4,
		ImmediateData:            true,
		InitialR2T:               false,
		Digests:                  true,
	}
}

// Config tunes a Server. The zero value works.
type Config struct {
	// Limits are what the target accepts in operational negotiation;
	// the zero value means DefaultLimits.
	Limits iscsi.TargetLimits

	// QueueDepth is the CmdSN window granted to each session: how many
	// commands it may have outstanding.
	QueueDepth int

	// MaxTransfer bounds one command's write payload in bytes.
	MaxTransfer int

	// NopInterval makes the target ping a connection that has been idle
	// that long; zero disables pings. A ping unanswered for NopTimeout
	// drops the connection.
	NopInterval time.Duration
	NopTimeout  time.Duration

	// LoginTimeout bounds the login phase of a connection.
	LoginTimeout time.Duration

	// Redirect is consulted before the security stage of every Normal
	// session's login. When it says so, the login is answered with status
	// 0x0101 (target moved temporarily) pointing at addr ("host:port"),
	// and the connection closes.
	Redirect func(info LoginInfo) (addr string, redirect bool)

	// TargetAddresses returns the TargetAddress values that SendTargets
	// reports for a target to a session that came in on portal p, in the
	// form "host:port,tpgt". The default is p itself.
	TargetAddresses func(target string, p PortalInfo) []string

	// DiscoveryCHAP, when set, makes discovery sessions authenticate.
	DiscoveryCHAP *CHAP

	// Logger receives the engine's logs; the default is logrus's
	// standard logger.
	Logger logrus.FieldLogger
}

// LoginInfo describes a login in progress, for the Redirect hook.
type LoginInfo struct {
	InitiatorName string
	ISID          iscsi.ISID
	TargetName    string
	Portal        PortalInfo
	Remote        netip.AddrPort
}

// Server is an iSCSI target: a set of portals and targets, and the
// sessions that initiators have logged in to them.
type Server struct {
	cfg Config
	log logrus.FieldLogger

	mu       sync.Mutex
	portals  map[string]*portal // by listen address
	targets  map[string]*Target
	removed  map[string]bool // targets removed at run time: status 0x0204
	sessions map[uint16]*session
	lastTSIH uint16
	closed   bool

	wg sync.WaitGroup // accept loops and connections
}

// NewServer returns a Server with no portals and no targets.
func NewServer(cfg Config) *Server {
	if cfg.Limits == (iscsi.TargetLimits{}) {
		cfg.Limits = DefaultLimits()
	}
	if cfg.QueueDepth <= 0 {
		cfg.QueueDepth = DefaultQueueDepth
	}
	if cfg.MaxTransfer <= 0 {
		cfg.MaxTransfer = DefaultMaxTransfer
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = DefaultLoginTimeout
	}
	if cfg.NopTimeout <= 0 {
		cfg.NopTimeout = DefaultNopTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		portals:  map[string]*portal{},
		targets:  map[string]*Target{},
		removed:  map[string]bool{},
		sessions: map[uint16]*session{},
	}
}

// Close stops every portal, drops every connection, and waits for their
// goroutines (and the commands they run) to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	portals := make([]*portal, 0, len(s.portals))
	for _, p := range s.portals {
		portals = append(portals, p)
	}
	s.mu.Unlock()
	for _, p := range portals {
		p.stop(errServerClosing)
	}
	s.wg.Wait()
	return nil
}

var errServerClosing = errors.New("server closing")
