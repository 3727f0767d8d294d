package array

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hitkit/hitkit/array/target"
	"github.com/sirupsen/logrus"
)

// Service is something that runs beside a group and lives as long as it:
// the HTTPS management API on GroupAddr:8443 and the discovery responder
// of uninitialised members plug in here.
type Service interface {
	Start(g *Group) error
	Close() error
}

// ManagementPort is where the group's HTTPS management API listens, on
// the group IP. The API itself is a Service.
const ManagementPort = 8443

// Options tune a running group. The zero value works.
type Options struct {
	// Logger receives the group's and the target engine's logs. The
	// default appends logrus text lines, at info level, to DIR/lab.log.
	Logger logrus.FieldLogger
	// Target tunes the iSCSI engine; its Redirect, TargetAddresses and
	// Logger are the group's own and are overwritten.
	Target target.Config
	// NoControlSocket skips DIR/control.sock, for in-process tests that
	// run several groups at once from one directory tree.
	NoControlSocket bool
	// Services start after the group is serving, in order, and close
	// before it stops.
	Services []Service
	// GroupServices need a formed group (a name, a group IP and an admin
	// password), as the management API does. They start after Services
	// on a site that holds a group, or when the setup wizard forms one.
	GroupServices []Service
	// NoPowerOnAttention stops the volumes from reporting POWER ON, RESET
	// OR BUS DEVICE RESET OCCURRED (ASC 29h/00h) to the first command of
	// each new I_T nexus (see disk.Options). Reporting it is right (SPC-4
	// 5.14; tgtd does the same) and is the default, so that hosts are
	// tested against it. Every libiscsi reconnect is a new nexus (it picks
	// a new random ISID), and libiscsi hands that attention to the
	// application after a reconnect; iscsi-perf retries such a READ
	// without counting it as in flight and then hangs with in_flight -1.
	// Tests that need iscsi-perf to end by itself across a reconnect set
	// this.
	NoPowerOnAttention bool
}

// Group is a running lab array group.
type Group struct {
	dir     string
	log     logrus.FieldLogger
	logFile io.Closer
	srv     *target.Server
	started time.Time

	noPowerOnAttention bool // Options.NoPowerOnAttention

	// forwardLatency is read on every forwarded command, so it is atomic
	// rather than under mu.
	forwardLatency atomic.Int64

	mu        sync.Mutex
	cfg       Config
	groupPort *Port // the group IP, as a port of member 0
	members   []*Member
	volumes   []*servedVolume
	logouts   []Fault // logout requests until their deadline
	redirects recentRedirects

	snapshotHook atomic.Pointer[func(SnapshotEvent)] // OnSnapshotEvent

	control       *controlServer
	services      []Service // started; guarded by mu once serving
	groupServices []Service // Options.GroupServices, started or not

	setupMu   sync.Mutex // one member setup at a time (see SetUpMember)
	setupInfo func(member int) (endpoint, fingerprint string, ok bool)

	// bgCtx lives until Close; the background rebalance that Open may
	// start (rebalance.go) runs under it and closes resumeDone when done.
	bgCtx      context.Context
	bgCancel   context.CancelFunc
	resumeDone chan struct{} // guarded by mu

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// Create writes a new group's configuration and secrets to dir, which
// must not hold a group yet. Open then serves it.
func Create(dir string, spec Spec) (Config, error) {
	if Exists(dir) {
		return Config{}, fmt.Errorf("%s already holds a group; start it with Open", dir)
	}
	cfg, err := NewConfig(spec)
	if err != nil {
		return Config{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Config{}, err
	}
	if err := ensureSecrets(dir, cfg); err != nil {
		return Config{}, err
	}
	return cfg, saveConfig(dir, cfg)
}

// Start opens the group in dir, creating it from spec first when dir
// holds none. The spec is ignored for an existing group.
func Start(dir string, spec Spec, opts Options) (*Group, error) {
	if !Exists(dir) {
		if _, err := Create(dir, spec); err != nil {
			return nil, err
		}
	}
	return Open(dir, opts)
}

// Open serves the group whose configuration is in dir: it opens the
// volumes, listens on the group IP and the member ports, and starts the
// control socket. Close stops it.
func Open(dir string, opts Options) (*Group, error) {
	if err := NewClient(dir).Ping(); err == nil {
		// Two groups on one directory would write the same files.
		return nil, fmt.Errorf("a group is already running in %s", dir)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	if err := ensureSecrets(dir, cfg); err != nil {
		return nil, err
	}
	g := &Group{dir: dir, cfg: cfg, started: time.Now(), done: make(chan struct{}), noPowerOnAttention: opts.NoPowerOnAttention}
	g.bgCtx, g.bgCancel = context.WithCancel(context.Background())
	if err := g.openLog(opts.Logger); err != nil {
		return nil, err
	}
	g.forwardLatency.Store(int64(cfg.ForwardLatency))
	g.groupPort = &Port{Addr: cfg.GroupAddr(), TPGT: groupTPGT}
	g.groupServices = opts.GroupServices
	for _, mc := range cfg.Members {
		g.members = append(g.members, newMember(&g.mu, mc, cfg.BaseIP))
	}
	if err := g.serve(opts); err != nil {
		g.Close()
		return nil, err
	}
	g.log.WithFields(logrus.Fields{"group": cfg.Name, "group_ip": g.GroupAddr(), "volumes": len(g.volumes)}).Info("group serving")
	g.resumeRebalance()
	return g, nil
}

// openLog sets up the group's logger: the caller's, or DIR/lab.log.
func (g *Group) openLog(l logrus.FieldLogger) error {
	if l == nil {
		f, err := os.OpenFile(filepath.Join(g.dir, "lab.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		logger := logrus.New()
		logger.SetOutput(f)
		logger.SetLevel(logrus.InfoLevel)
		l, g.logFile = logger, f
	}
	g.log = l.WithField("group", g.cfg.Name)
	return nil
}

// serve brings up everything that answers the network, in the order in
// which hosts will need it.
func (g *Group) serve(opts Options) error {
	tc := opts.Target
	tc.Redirect = g.redirectLogin
	tc.TargetAddresses = g.targetAddresses
	tc.Logger = g.log
	g.srv = target.NewServer(tc)
	for _, vc := range g.cfg.Volumes {
		if err := g.addVolume(vc); err != nil {
			return err
		}
	}
	if err := g.addPortals(); err != nil {
		return err
	}
	services := opts.Services
	if g.cfg.Formed() {
		services = append(slices.Clip(services), opts.GroupServices...)
	}
	for _, s := range services {
		if err := s.Start(g); err != nil {
			return fmt.Errorf("starting %T: %w", s, err)
		}
		g.services = append(g.services, s)
	}
	// The control socket comes last: once it answers, `lab up` reports
	// the group, and the services' addresses must be there to report.
	if !opts.NoControlSocket {
		ctl, err := listenControl(g)
		if err != nil {
			return err
		}
		g.control = ctl
	}
	return nil
}

// addPortals listens on the group IP and on every port of every online
// member. Uninitialised members serve no iSCSI.
func (g *Group) addPortals() error {
	if g.cfg.Formed() {
		if _, err := g.srv.AddPortal(g.GroupAddr(), groupTPGT); err != nil {
			return listenError(err)
		}
	}
	for _, m := range g.members {
		if m.state != MemberOnline {
			continue
		}
		for _, p := range m.ports {
			if _, err := g.srv.AddPortal(p.Addr, p.TPGT); err != nil {
				return listenError(err)
			}
		}
	}
	return nil
}

func listenError(err error) error {
	return fmt.Errorf("%w (is another lab group using these addresses? pick another --base-ip)", err)
}

// Dir is the group's state directory.
func (g *Group) Dir() string { return g.dir }

// Name is the group's name; empty on a site that holds no group yet.
func (g *Group) Name() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg.Name
}

// GroupAddr is the group IP's iSCSI portal, host:port; empty on a site
// that holds no group yet.
func (g *Group) GroupAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg.GroupAddr()
}

// ManagementAddr is where the management API listens, host:port.
func (g *Group) ManagementAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg.ManagementAddr()
}

// Config returns a copy of the group's configuration.
func (g *Group) Config() Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cfg
	c.Members = append([]MemberConfig(nil), c.Members...)
	c.Volumes = append([]VolumeConfig(nil), c.Volumes...)
	return c
}

// Server is the group's iSCSI target engine, for tests and services.
func (g *Group) Server() *target.Server { return g.srv }

// Logger is the group's logger, for services.
func (g *Group) Logger() logrus.FieldLogger { return g.log }

// Members lists every member, uninitialised ones included.
func (g *Group) Members() []*Member { return g.members }

// Member returns member number n.
func (g *Group) Member(n int) (*Member, error) {
	if n < 1 || n > len(g.members) {
		return nil, fmt.Errorf("no member %d: the group has members 1 to %d", n, len(g.members))
	}
	return g.members[n-1], nil
}

// Done is closed once the group has stopped, whether by Close or by a
// `lab down` on the control socket.
func (g *Group) Done() <-chan struct{} { return g.done }

// Close stops the group: services, control socket, every portal and
// session, then syncs and closes the volumes. The data stays in DIR.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.closeErr = g.stop()
		close(g.done)
	})
	return g.closeErr
}

func (g *Group) stop() error {
	var errs []error
	g.stopResume()
	// Services close last first, one at a time: closing the setup
	// service waits for a setup in progress, which may start the
	// management API as it forms the group.
	for s := g.popService(); s != nil; s = g.popService() {
		errs = append(errs, s.Close())
	}
	g.waitResume()
	if g.control != nil {
		errs = append(errs, g.control.Close())
	}
	g.stopFaultTimers()
	if g.srv != nil {
		errs = append(errs, g.srv.Close())
	}
	g.mu.Lock()
	for _, v := range g.volumes {
		errs = append(errs, v.store.Close())
	}
	g.mu.Unlock()
	err := errors.Join(errs...)
	if g.log != nil {
		if err != nil {
			g.log.WithError(err).Error("group stopped with errors")
		} else {
			g.log.Info("group stopped")
		}
	}
	if g.logFile != nil {
		g.logFile.Close()
	}
	return err
}

// popService takes the last started service off the list.
func (g *Group) popService() Service {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.services) == 0 {
		return nil
	}
	s := g.services[len(g.services)-1]
	g.services = g.services[:len(g.services)-1]
	return s
}

// ensureSecrets creates the admin password and the volumes' CHAP secrets
// that are missing.
func ensureSecrets(dir string, cfg Config) error {
	if !cfg.Formed() {
		return nil // the setup wizard sets the passwords when it forms the group
	}
	for _, path := range []string{AdminPasswordFile(dir), MutualCHAPFile(dir), MembershipPasswordFile(dir)} {
		if _, err := ensureSecret(path); err != nil {
			return err
		}
	}
	for _, v := range cfg.Volumes {
		if _, err := ensureSecret(CHAPSecretFile(dir, v.Name)); err != nil {
			return err
		}
	}
	return nil
}
