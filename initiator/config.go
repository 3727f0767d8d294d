package initiator

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Config describes one session: where to log in, as whom, and how to
// behave when things go wrong. The zero value of each optional field picks
// the default shown beside it.
type Config struct {
	Portal        string     // host[:port] of the portal or group IP; port 3260 by default
	TargetName    string     // empty for a discovery session
	InitiatorName string     // DefaultInitiatorName()
	ISID          iscsi.ISID // zero: a random ISID, kept across reinstatement

	// CHAP, when CHAPUser is set: the target authenticates us. With
	// MutualUser set as well, we authenticate the target.
	CHAPUser     string
	CHAPSecret   []byte
	MutualUser   string
	MutualSecret []byte
	// CHAPAlgorithms are offered in this order; empty means
	// iscsi.DefaultChapAlgorithms. tgt and IET read CHAP_A=7 as SHA-1, not
	// SHA-256, so against them only MD5 works.
	CHAPAlgorithms []iscsi.ChapAlgorithm

	HeaderDigest bool // require CRC32C header digests; login fails without them
	DataDigest   bool // require CRC32C data digests

	// Offers for the operational keys.
	MaxRecvDataSegmentLength uint32 // 256 KiB
	MaxBurstLength           uint32 // 16 MiB
	FirstBurstLength         uint32 // 256 KiB
	DisableImmediateData     bool
	DisableUnsolicitedData   bool // offer InitialR2T=Yes

	// Transport.
	SourceAddr   string        // local IP to bind, for a chosen NIC
	Device       string        // NIC to bind with SO_BINDTODEVICE
	DialTimeout  time.Duration // 5 s
	LoginTimeout time.Duration // 10 s
	MaxRedirects int           // 8

	// Liveness: ping when nothing was received for NopInterval, and drop the
	// connection if the answer takes longer than NopTimeout.
	NopInterval time.Duration // 5 s
	NopTimeout  time.Duration // 5 s

	// ReplacementTimeout bounds how long a session tries to log in again
	// after losing its connection before failing its commands. Negative
	// means fail at once with ErrConnectionLost, for a caller (multipath)
	// that has other paths.
	ReplacementTimeout time.Duration // 30 s

	// OnEvent receives async events from the target. When nil, the session
	// answers a logout request itself by renewing its login.
	OnEvent func(Event)

	Log *logrus.Entry
}

// DefaultInitiatorName derives this host's IQN from its hostname.
func DefaultInitiatorName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, host))
	return "iqn.2026-11.org.hitkit:" + host
}

func (c Config) withDefaults() Config {
	setDefault(&c.InitiatorName, DefaultInitiatorName())
	setDefault(&c.MaxRecvDataSegmentLength, 256<<10)
	setDefault(&c.MaxBurstLength, 16<<20)
	setDefault(&c.FirstBurstLength, 256<<10)
	setDefault(&c.DialTimeout, 5*time.Second)
	setDefault(&c.LoginTimeout, 10*time.Second)
	setDefault(&c.MaxRedirects, 8)
	setDefault(&c.NopInterval, 5*time.Second)
	setDefault(&c.NopTimeout, 5*time.Second)
	setDefault(&c.ReplacementTimeout, 30*time.Second)
	if c.Log == nil {
		c.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	c.Portal = withPort(c.Portal)
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// withPort adds the iSCSI port to an address that has none.
func withPort(addr string) string {
	if addr == "" {
		return addr
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), "3260")
}

// dial opens a TCP connection to addr from the configured source address
// and device.
func (c *Config) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: c.DialTimeout, KeepAlive: -1}
	if c.SourceAddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.SourceAddr)}
	}
	if c.Device != "" {
		dev := c.Device
		d.Control = func(network, address string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d.DialContext(ctx, "tcp", addr)
}
