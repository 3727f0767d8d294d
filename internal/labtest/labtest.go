// Package labtest starts lab array groups for tests, the way most tests
// need them: in a temporary directory, on a 127.0.X.0 base that no other
// test on the machine holds, without a control socket, with the group's
// log printed when the test fails, and closed when the test ends.
//
//	l := labtest.Start(t, labtest.Options{
//		Spec:          array.Spec{Volumes: []array.VolumeSpec{{Name: "vol1", Size: 64 << 20}}},
//		ManagementAPI: true,
//	})
//	vol, secret := l.Volume(t, "vol1"), l.CHAPSecret(t, "vol1")
//	api := l.Dial(t)
//
// Tests of package array itself cannot use it: labtest imports array.
package labtest

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/array/mgmt"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/internal/testlog"
)

// Options say which lab to start. The zero value starts the default lab
// of `hitkit lab up`: two members and one uninitialised, and vol1 of 1 GiB.
type Options struct {
	// Spec is the group or site to create. Its BaseIP is ignored: the lab
	// reserves a base of Bases.
	Spec array.Spec
	// Bases is where the base comes from; GroupBases when zero.
	Bases Bases
	// ManagementAPI serves the HTTPS management API (array/mgmt) once the
	// group is formed: at once for a group, after the setup wizard for a
	// site of uninitialised members. Lab.API is the server.
	ManagementAPI bool
	// Services and GroupServices go to array.Options as they are. A
	// service starts once only, so Reopen takes new ones.
	Services, GroupServices []array.Service
	// Logger receives the group's logs. Start keeps them, at debug level,
	// in a file whose end a failing test prints; New discards them.
	Logger logrus.FieldLogger
}

// Lab is a running lab group, or a site of uninitialised members.
type Lab struct {
	Group *array.Group
	Dir   string     // the group's state directory: group.json, secrets, volumes
	Base  netip.Addr // 127.0.X.0; the lab's addresses are in Base/24
	// API is the management API server with Options.ManagementAPI, else
	// nil. It listens once the group is formed.
	API *mgmt.Server

	logger    logrus.FieldLogger
	base      *reservation
	removeDir bool // New made Dir; Close removes it
}

// attempts bounds how often a lab tries another base when its addresses
// are taken, by a test that does not reserve its base or by a lab run by
// hand on a test range.
const attempts = 5

// Start starts a lab in a temporary directory of t, and closes it when t
// ends. It skips t when not run as root, since the lab binds 127.0.X.Y
// addresses.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab group binds 127.0.x.y addresses")
	}
	if opts.Logger == nil {
		opts.Logger = testlog.FailureLog(t)
	}
	l, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// New starts a lab that belongs to no one test, such as a group that all
// the tests of a package share and TestMain closes. It needs root. Close
// stops it and removes its directory.
func New(opts Options) (*Lab, error) {
	dir, err := os.MkdirTemp("", "hitkit-lab-")
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		quiet := logrus.New()
		quiet.SetOutput(io.Discard)
		opts.Logger = quiet
	}
	l, err := start(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	l.removeDir = true
	return l, nil
}

// start creates and opens the lab in dir on a reserved base, trying
// another base when the addresses turn out to be in use. It keeps the
// bases that failed reserved until it is done, so that it does not pick
// one of them again.
func start(dir string, opts Options) (*Lab, error) {
	var failed []*reservation
	defer func() {
		for _, r := range failed {
			r.release()
		}
	}()
	var err error
	for range attempts {
		var r *reservation
		if r, err = reserve(opts.Bases); err != nil {
			break
		}
		spec := opts.Spec
		spec.BaseIP = r.base
		if _, err = array.Create(dir, spec); err != nil {
			r.release()
			return nil, err // a bad spec: no other base helps
		}
		l := &Lab{Dir: dir, Base: r.base, base: r}
		if err = l.open(opts); err == nil {
			return l, nil
		}
		failed = append(failed, r)
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		if err := emptyDir(dir); err != nil {
			return nil, err
		}
	}
	return nil, err
}

// open serves the group in l.Dir with opts' logger and services.
func (l *Lab) open(opts Options) error {
	if opts.Logger != nil {
		l.logger = opts.Logger
	}
	groupServices := opts.GroupServices
	l.API = nil
	if opts.ManagementAPI {
		l.API = mgmt.New()
		groupServices = append(groupServices[:len(groupServices):len(groupServices)], l.API)
	}
	g, err := array.Open(l.Dir, array.Options{
		Logger: l.logger, NoControlSocket: true,
		Services: opts.Services, GroupServices: groupServices,
	})
	if err != nil {
		return err
	}
	l.Group = g
	return nil
}

// emptyDir removes what a failed start left in dir, keeping dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Reopen stops the group and serves it again from its directory, as a
// restart of `hitkit lab up` does. It takes the services of opts (new
// ones: a service starts once only) and its Logger when set; Spec and
// Bases are ignored. The lab keeps its base.
func (l *Lab) Reopen(opts Options) error {
	if err := l.Group.Close(); err != nil {
		return err
	}
	return l.open(opts)
}

// Close stops the group and frees its base; a lab from New also loses
// its directory. Closing twice is harmless.
func (l *Lab) Close() error {
	var err error
	if l.Group != nil {
		err = l.Group.Close()
	}
	l.base.release()
	if l.removeDir {
		err = errors.Join(err, os.RemoveAll(l.Dir))
		l.removeDir = false
	}
	return err
}

// GroupIP is the group's address, BASE+1, or the zero Addr while a site
// holds no group.
func (l *Lab) GroupIP() netip.Addr {
	ap, err := netip.ParseAddrPort(l.Group.GroupAddr())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// GroupAddr is the group IP's iSCSI portal, host:port.
func (l *Lab) GroupAddr() string { return l.Group.GroupAddr() }

// Addr is BASE+n, an address of the lab's /24.
func (l *Lab) Addr(n byte) netip.Addr {
	b := l.Base.As4()
	b[3] = n
	return netip.AddrFrom4(b)
}

// ManagementAddr is where the management API listens, host:port.
func (l *Lab) ManagementAddr() string {
	if l.API != nil && l.API.ListenAddr() != "" {
		return l.API.ListenAddr()
	}
	return l.Group.ManagementAddr()
}

// Fingerprint is the management API certificate's fingerprint, which
// clients pin.
func (l *Lab) Fingerprint(t testing.TB) string {
	t.Helper()
	if l.API != nil && l.API.Fingerprint() != "" {
		return l.API.Fingerprint()
	}
	fp, err := mgmt.FingerprintFile(l.Dir)
	if err != nil {
		t.Fatalf("the lab has no management API certificate: %v", err)
	}
	return fp
}

// AdminPasswordFile is the file that holds the group's admin password.
func (l *Lab) AdminPasswordFile() string { return array.AdminPasswordFile(l.Dir) }

// AdminPassword is the group's admin password.
func (l *Lab) AdminPassword(t testing.TB) string {
	t.Helper()
	return readSecret(t, l.AdminPasswordFile())
}

// CHAPSecretFile is the file that holds a volume's CHAP secret, for
// commands that take --chap-secret-file.
func (l *Lab) CHAPSecretFile(volume string) string { return array.CHAPSecretFile(l.Dir, volume) }

// CHAPSecret is a volume's CHAP secret.
func (l *Lab) CHAPSecret(t testing.TB, volume string) string {
	t.Helper()
	return readSecret(t, l.CHAPSecretFile(volume))
}

// MutualCHAPSecret is what the group answers with when an initiator asks
// it to authenticate in turn; the user name is the group's name.
func (l *Lab) MutualCHAPSecret(t testing.TB) string {
	t.Helper()
	return readSecret(t, array.MutualCHAPFile(l.Dir))
}

// readSecret reads a secret file as the lab writes it: one line.
func readSecret(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		t.Fatalf("secret file %s is empty", path)
	}
	return s
}

// Volume is a volume's configuration: its IQN, CHAP user and so on.
func (l *Lab) Volume(t testing.TB, name string) array.VolumeConfig {
	t.Helper()
	for _, v := range l.Group.Config().Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("the lab has no volume %q", name)
	return array.VolumeConfig{}
}

// Dial logs in to the management API as admin, pinned to the
// certificate's fingerprint. The client closes when t ends.
func (l *Lab) Dial(t testing.TB) *groupapi.Client {
	t.Helper()
	c, err := groupapi.Dial(l.ManagementAddr(), l.Fingerprint(t), []byte(l.AdminPassword(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RequireSources skips t unless each address can be bound as a source,
// as tests that play several NICs with 127.0.0.2, 127.0.0.3 ... need.
func RequireSources(t testing.TB, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		ln, err := net.Listen("tcp", net.JoinHostPort(a, "0"))
		if err != nil {
			t.Skipf("cannot bind source address %s: %v", a, err)
		}
		ln.Close()
	}
}
