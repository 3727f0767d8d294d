package blockdev

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// NBDOptions tunes an NBD server. The zero value is usable.
type NBDOptions struct {
	// ExportName is accepted besides the default export name "".
	ExportName string
	// Description is sent to clients that ask for NBD_INFO_DESCRIPTION.
	Description string
	// MaxConns bounds concurrent client connections (default 32).
	MaxConns int
	// MaxInFlight bounds the requests one connection may have in flight
	// (default 32). A client that sends more waits for replies.
	MaxInFlight int
	// MaxInFlightBytes bounds the request payloads one connection may have
	// in flight (default 64 MiB), so pipelined large writes cannot
	// exhaust memory.
	MaxInFlightBytes int64
	// HandshakeTimeout bounds the option haggling (default 10 s).
	HandshakeTimeout time.Duration
	// Logger receives the server's log lines (default logrus's standard
	// logger).
	Logger logrus.FieldLogger
}

func (o *NBDOptions) setDefaults() {
	if o.MaxConns <= 0 {
		o.MaxConns = 32
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 32
	}
	if o.MaxInFlightBytes <= 0 {
		o.MaxInFlightBytes = 64 << 20
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = logrus.StandardLogger()
	}
}

// closeGrace is how long Close lets in-flight replies reach a client that
// has stopped reading before giving up on it.
const closeGrace = 5 * time.Second

// NBDServer serves one Device over the NBD protocol on a unix socket.
type NBDServer struct {
	io    *blockIO
	opts  NBDOptions
	path  string
	ln    *net.UnixListener
	log   logrus.FieldLogger
	flags uint16 // transmission flags

	mu      sync.Mutex
	closing bool
	conns   map[*nbdConn]struct{}
	nextID  uint64
	wg      sync.WaitGroup // the accept loop and every connection
}

// ServeNBD listens on a unix socket at socketPath (mode 0600) and serves
// dev to every client that connects, until Close. A stale socket left by
// a dead server is replaced; a live one is an error.
func ServeNBD(dev Device, socketPath string, opts NBDOptions) (*NBDServer, error) {
	if err := checkDevice(dev); err != nil {
		return nil, err
	}
	if len(opts.ExportName) > nbdMaxNameLen {
		return nil, fmt.Errorf("blockdev: export name longer than %d bytes", nbdMaxNameLen)
	}
	opts.setDefaults()
	ln, err := listenUnix(socketPath)
	if err != nil {
		return nil, err
	}
	s := &NBDServer{
		io:    newBlockIO(dev),
		opts:  opts,
		path:  socketPath,
		ln:    ln,
		flags: transmissionFlags(dev),
		conns: make(map[*nbdConn]struct{}),
	}
	s.log = opts.Logger.WithField("socket", socketPath)
	if opts.ExportName != "" {
		s.log = s.log.WithField("export", opts.ExportName)
	}
	s.log.WithFields(logrus.Fields{"size": dev.Size(), "block_size": dev.BlockSize()}).Info("NBD server listening")
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// transmissionFlags advertises what the server does with dev. Multi-conn
// is safe because Device.Sync covers writes from every connection.
func transmissionFlags(dev Device) uint16 {
	flags := uint16(nbdFlagHasFlags | nbdFlagSendFlush | nbdFlagCanMultiConn)
	if isReadOnly(dev) {
		return flags | nbdFlagReadOnly
	}
	return flags | nbdFlagSendFUA | nbdFlagSendTrim | nbdFlagSendWriteZeroes
}

// listenUnix binds the socket in a private directory, sets its mode and
// renames it into place, so that it is never reachable with wider
// permissions (the umask is process-wide and cannot be changed safely).
func listenUnix(path string) (*net.UnixListener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".nbd-")
	if err != nil {
		return nil, fmt.Errorf("blockdev: socket directory: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("blockdev: listen on unix socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("blockdev: place unix socket at %s: %w", path, err)
	}
	return ln, nil
}

// removeStaleSocket removes a socket nobody listens on; it refuses to
// remove anything else.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blockdev: socket path: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("blockdev: %s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("blockdev: %s: another server is listening there", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("blockdev: remove stale socket: %w", err)
	}
	return nil
}

// SocketPath returns the path of the listening socket.
func (s *NBDServer) SocketPath() string { return s.path }

// URI returns the NBD URI of the default export, nbd+unix:///?socket=PATH.
func (s *NBDServer) URI() string { return s.ExportURI("") }

// ExportURI returns the NBD URI of the named export.
func (s *NBDServer) ExportURI(name string) string {
	// Keep slashes readable: libnbd decodes percent-escapes either way.
	socket := strings.ReplaceAll(url.QueryEscape(s.path), "%2F", "/")
	return "nbd+unix:///" + url.PathEscape(name) + "?socket=" + socket
}

func (s *NBDServer) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.isClosing() {
				return
			}
			// Typically EMFILE: back off instead of spinning.
			s.log.WithError(err).Warn("NBD accept failed")
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.startConn(nc)
	}
}

func (s *NBDServer) startConn(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		nc.Close()
		return
	}
	if len(s.conns) >= s.opts.MaxConns {
		s.log.WithField("max_conns", s.opts.MaxConns).Warn("NBD connection refused: too many connections")
		nc.Close()
		return
	}
	s.nextID++
	c := newNBDConn(s, nc, s.nextID)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

func (s *NBDServer) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// setDeadline sets a connection's deadline unless the server is closing,
// in which case Close has already set the deadlines that end it.
func (s *NBDServer) setDeadline(nc net.Conn, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		nc.SetDeadline(t)
	}
}

// exportKnown reports whether a client may ask for the export by name.
func (s *NBDServer) exportKnown(name string) bool {
	return name == "" || name == s.opts.ExportName
}

// Close stops accepting connections, lets every in-flight request finish
// and reply, closes the connections and removes the socket. Clients see
// their connection end; requests they had not sent yet are not served.
// Close returns once the Device has answered every in-flight request; a
// reply the client does not read within a few seconds is dropped.
func (s *NBDServer) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	err := s.ln.Close()
	now := time.Now()
	for c := range s.conns {
		c.nc.SetReadDeadline(now)
		c.nc.SetWriteDeadline(now.Add(closeGrace))
	}
	s.mu.Unlock()

	s.wg.Wait()
	if rmErr := os.Remove(s.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	s.log.Info("NBD server closed")
	return err
}
