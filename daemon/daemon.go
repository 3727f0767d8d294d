package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hitkit/hitkit/discovery"
	"github.com/sirupsen/logrus"
)

// Default directories, as the design lays them out.
const (
	DefaultRuntimeDir = "/run/hitkit"
	DefaultStateDir   = "/var/lib/hitkit"
)

// connectTimeout bounds one volume's login and export.
const connectTimeout = 90 * time.Second

// Options configures a Daemon.
type Options struct {
	RuntimeDir string // control socket, NBD sockets, FUSE mounts, dev links
	StateDir   string // volumes.json and secrets, for --login-at-boot
	Log        *logrus.Entry
}

// Daemon owns the connected volumes and serves the control API.
type Daemon struct {
	opts  Options
	store *store
	log   *logrus.Entry
	ln    *net.UnixListener

	mu      sync.Mutex
	volumes map[string]*volume
	busy    map[string]bool // names being connected or disconnected
	closed  bool

	stop     chan struct{} // closed by a shutdown request
	stopOnce sync.Once
	bg       sync.WaitGroup // boot reconnects and connections
}

// New listens on RUNTIME/hitkitd.sock. It fails if another daemon answers
// there; a stale socket is replaced.
func New(opts Options) (*Daemon, error) {
	if opts.RuntimeDir == "" {
		opts.RuntimeDir = DefaultRuntimeDir
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.Log == nil {
		opts.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if err := os.MkdirAll(opts.RuntimeDir, 0o755); err != nil {
		return nil, err
	}
	ln, err := listen(SocketPath(opts.RuntimeDir))
	if err != nil {
		return nil, err
	}
	return &Daemon{
		opts: opts, store: &store{dir: opts.StateDir}, log: opts.Log, ln: ln,
		volumes: map[string]*volume{}, busy: map[string]bool{}, stop: make(chan struct{}),
	}, nil
}

// SocketPath is the control socket in a runtime directory.
func SocketPath(runtimeDir string) string { return filepath.Join(runtimeDir, "hitkitd.sock") }

// Run reconnects the --login-at-boot volumes, serves requests until ctx
// ends or a shutdown request comes, then closes every volume.
func (d *Daemon) Run(ctx context.Context) error {
	// Work in progress (logins at boot, connect requests) ends with the
	// daemon, so that stopping it never waits for a full login timeout.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		d.reconnectSaved(ctx)
	}()
	d.watchCarrier(ctx)
	go func() {
		select {
		case <-ctx.Done():
		case <-d.stop:
		}
		cancel()
		d.ln.Close()
	}()
	d.log.WithField("socket", SocketPath(d.opts.RuntimeDir)).Info("hitkitd ready")
	for {
		conn, err := d.ln.AcceptUnix()
		if err != nil {
			break
		}
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			d.serveConn(ctx, conn)
		}()
	}
	d.shutdown()
	return nil
}

// watchCarrier fails the paths of a NIC that loses its carrier at once,
// rather than after a NOP-Out goes unanswered. Without netlink (an odd
// container), the NOP-Out check alone stays.
func (d *Daemon) watchCarrier(ctx context.Context) {
	err := discovery.WatchCarrier(ctx, func(nic string, up bool) {
		if up {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, v := range d.volumes {
			v.dev.FailNIC(nic, "carrier lost")
		}
	})
	if err != nil {
		d.log.WithError(err).Warn("not watching NIC carriers; a dead NIC is noticed by NOP-Out only")
	}
}

// Stop asks Run to return, as a shutdown request does.
func (d *Daemon) Stop() { d.stopOnce.Do(func() { close(d.stop) }) }

func (d *Daemon) reconnectSaved(ctx context.Context) {
	saved, err := d.store.load()
	if err != nil {
		d.log.WithError(err).Error("reading saved volumes")
		return
	}
	var wg sync.WaitGroup
	for _, r := range saved {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.reconnect(ctx, r)
		}()
	}
	wg.Wait()
}

// reconnect logs a saved volume in, retrying with backoff: at boot the
// network or the array may come up after the daemon. It gives up when the
// volume is disconnected (forgotten) meanwhile, or the daemon stops.
func (d *Daemon) reconnect(ctx context.Context, r ConnectRequest) {
	log := d.log.WithField("volume", r.Name)
	backoff := reconnectBackoffMin
	for {
		if _, ok := d.lookup(r.Name); ok {
			return // connected by hand meanwhile
		}
		_, err := d.connect(ctx, r)
		if err == nil || ctx.Err() != nil || !d.saved(r.Name) {
			return
		}
		log.WithError(err).WithField("retry_in", backoff).Error("reconnecting a login-at-boot volume")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, reconnectBackoffMax)
	}
}

// Retries of a login-at-boot volume that could not log in.
const (
	reconnectBackoffMin = 2 * time.Second
	reconnectBackoffMax = time.Minute
)

// saved reports whether a volume is still to be logged in at boot.
func (d *Daemon) saved(name string) bool {
	list, err := d.store.load()
	if err != nil {
		return false
	}
	for _, r := range list {
		if r.Name == name {
			return true
		}
	}
	return false
}

// shutdown waits for requests in progress (connects are bounded), then
// closes every volume, and removes the socket.
func (d *Daemon) shutdown() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.bg.Wait()
	d.mu.Lock()
	vols := d.volumes
	d.volumes = map[string]*volume{}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for name, v := range vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := v.close(); err != nil {
				d.log.WithError(err).WithField("volume", name).Error("closing volume")
			}
		}()
	}
	wg.Wait()
	os.Remove(SocketPath(d.opts.RuntimeDir))
	d.log.Info("hitkitd stopped")
}

// connect opens a volume and, for --login-at-boot, saves its request.
func (d *Daemon) connect(ctx context.Context, r ConnectRequest) (VolumeInfo, error) {
	if err := r.Check(); err != nil {
		return VolumeInfo{}, err
	}
	if err := d.reserve(r.Name); err != nil {
		return VolumeInfo{}, err
	}
	defer d.release(r.Name)
	if _, ok := d.lookup(r.Name); ok {
		return VolumeInfo{}, fmt.Errorf("volume %s is already connected", r.Name)
	}
	log := d.log.WithFields(logrus.Fields{"volume": r.Name, "portal": r.Portal})
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	v, err := openVolume(ctx, d.opts.RuntimeDir, r, log)
	if err != nil {
		return VolumeInfo{}, err
	}
	if r.LoginAtBoot {
		if err := d.store.put(r); err != nil {
			v.close()
			return VolumeInfo{}, fmt.Errorf("saving the volume for login at boot: %w", err)
		}
	}
	d.mu.Lock()
	d.volumes[r.Name] = v
	d.mu.Unlock()
	log.WithField("device", v.info().BlockDevice).Info("volume connected")
	return v.info(), nil
}

// disconnect removes a volume's exports, logs out and forgets it. A volume
// whose block device is in use (mounted) stays connected.
func (d *Daemon) disconnect(name string) error {
	if err := d.reserve(name); err != nil {
		return err
	}
	defer d.release(name)
	v, ok := d.lookup(name)
	if !ok {
		// A login-at-boot volume that has not come back yet is forgotten,
		// which also ends its retries.
		if d.saved(name) {
			return d.store.remove(name)
		}
		return notConnected(name)
	}
	if err := v.unexport(); err != nil {
		return fmt.Errorf("volume %s: %w (unmount it first)", name, err)
	}
	d.mu.Lock()
	delete(d.volumes, name)
	d.mu.Unlock()
	if err := d.store.remove(name); err != nil {
		d.log.WithError(err).WithField("volume", name).Error("forgetting the saved volume")
	}
	return v.close()
}

func (d *Daemon) reserve(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("hitkitd is shutting down")
	}
	if d.busy[name] {
		return fmt.Errorf("volume %s is being connected or disconnected", name)
	}
	d.busy[name] = true
	return nil
}

func (d *Daemon) release(name string) {
	d.mu.Lock()
	delete(d.busy, name)
	d.mu.Unlock()
}

func (d *Daemon) lookup(name string) (*volume, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.volumes[name]
	return v, ok
}

// list reports the named volume, or all of them by name.
func (d *Daemon) list(name string) ([]VolumeInfo, error) {
	d.mu.Lock()
	vols := make([]*volume, 0, len(d.volumes))
	for n, v := range d.volumes {
		if name == "" || n == name {
			vols = append(vols, v)
		}
	}
	d.mu.Unlock()
	if name != "" && len(vols) == 0 {
		return nil, notConnected(name)
	}
	out := make([]VolumeInfo, 0, len(vols))
	for _, v := range vols {
		out = append(out, v.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
