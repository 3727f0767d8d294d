package mpio

import (
	"errors"
	"fmt"
	"time"

	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// Policy decides which healthy path carries the next command.
type Policy string

const (
	// PolicyLQD sends each command to the path with the fewest commands
	// outstanding: busy or slow paths get less, without any tuning.
	PolicyLQD Policy = "lqd"
	// PolicyRoundRobin takes the healthy paths in turn.
	PolicyRoundRobin Policy = "rr"
	// PolicyFailover uses the first healthy path in configuration order and
	// keeps the others on standby.
	PolicyFailover Policy = "failover"
)

// ParsePolicy reads a policy name as the CLI spells it.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return PolicyLQD, nil
	case PolicyLQD, PolicyRoundRobin, PolicyFailover:
		return p, nil
	}
	return "", fmt.Errorf("unknown path policy %q: use lqd, rr or failover", s)
}

// PathSpec says where one path leaves the host: a local source address, a
// NIC, or both. The zero value lets the kernel choose.
type PathSpec struct {
	SourceAddr string `json:"source,omitempty"` // local IP to bind
	Device     string `json:"nic,omitempty"`    // NIC to bind with SO_BINDTODEVICE
	// Portal and TargetName override Config.Session's for this path: for
	// targets without a group IP, such as tgtd listening on two portals.
	Portal     string `json:"portal,omitempty"`
	TargetName string `json:"target,omitempty"`
}

func (s PathSpec) String() string {
	switch {
	case s.Device != "" && s.SourceAddr != "":
		return s.Device + "/" + s.SourceAddr
	case s.Device != "":
		return s.Device
	case s.SourceAddr != "":
		return s.SourceAddr
	}
	return "default"
}

// Defaults of Config fields left zero.
const (
	DefaultCheckInterval  = 500 * time.Millisecond
	DefaultCheckTimeout   = time.Second
	DefaultNoPathTimeout  = 60 * time.Second
	DefaultIOTimeout      = 30 * time.Second
	DefaultBackoffMin     = 250 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
	DefaultReinstateGap   = 100 * time.Millisecond
	DefaultLoginTimeout   = 5 * time.Second
	defaultRenewAtLeast   = time.Second
	defaultDrainPollEvery = 5 * time.Millisecond
)

// Config describes a multipathed logical unit.
type Config struct {
	// Session is the template for every path's session: the portal (the
	// group IP), the target, CHAP. Its SourceAddr, Device, NOP timers,
	// ReplacementTimeout and OnEvent are set per path by the device.
	Session initiator.Config
	LUN     int

	// Paths are the ways out of the host. Sessions sessions are spread
	// over them in turn (default: one per path). No paths means one path
	// through whatever address the kernel picks.
	Paths    []PathSpec
	Sessions int

	Policy Policy // PolicyLQD by default

	// PageMap, when set, makes the device slice-aware: READ and WRITE go
	// to a usable path logged in at the member that holds their first
	// block, chosen among those by the policy, and to any path when no
	// such path is usable. Other commands use the policy over all paths.
	PageMap *PageMap

	// A path's session pings the target when the line has been quiet for
	// CheckInterval, and the path fails when an answer takes longer than
	// CheckTimeout. The defaults notice a silent blackhole within about
	// 1.7 s.
	CheckInterval time.Duration
	CheckTimeout  time.Duration

	// IOTimeout fails a path that does not complete one command in this
	// long; the command is then retried on another path.
	IOTimeout time.Duration

	// NoPathTimeout is how long a command waits for a path when none is
	// usable ("queue_if_no_path"), and how long it keeps being retried over
	// failing paths, before it fails with ErrNoPath. Negative waits for
	// ever (only the caller's context ends the wait).
	NoPathTimeout time.Duration

	// Failed paths are logged in again after BackoffMin, doubling up to
	// BackoffMax, with jitter. Logins of all paths are at least
	// ReinstateGap apart, so that a group-wide outage does not end in a
	// reconnect storm.
	BackoffMin   time.Duration
	BackoffMax   time.Duration
	ReinstateGap time.Duration

	Log *logrus.Entry
}

// ErrNoPath is the error of a command that found no usable path within
// the no-path timeout.
var ErrNoPath = errors.New("mpio: no usable path to the logical unit")

// ErrDeviceClosed is the error of a command on a closed Device.
var ErrDeviceClosed = errors.New("mpio: device closed")

func (c Config) withDefaults() Config {
	if c.Policy == "" {
		c.Policy = PolicyLQD
	}
	if len(c.Paths) == 0 {
		c.Paths = []PathSpec{{}}
	}
	if c.Sessions <= 0 {
		c.Sessions = len(c.Paths)
	}
	setDefault(&c.CheckInterval, DefaultCheckInterval)
	setDefault(&c.CheckTimeout, DefaultCheckTimeout)
	setDefault(&c.IOTimeout, DefaultIOTimeout)
	setDefault(&c.NoPathTimeout, DefaultNoPathTimeout)
	setDefault(&c.BackoffMin, DefaultBackoffMin)
	setDefault(&c.BackoffMax, DefaultBackoffMax)
	setDefault(&c.ReinstateGap, DefaultReinstateGap)
	setDefault(&c.Session.LoginTimeout, DefaultLoginTimeout)
	if c.Log == nil {
		c.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return c
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func (c Config) validate() error {
	if c.Session.Portal == "" {
		return errors.New("mpio: no portal: set the group IP to log in at")
	}
	if c.Session.TargetName == "" {
		return errors.New("mpio: no target name: set the volume's IQN")
	}
	if _, err := ParsePolicy(string(c.Policy)); err != nil {
		return err
	}
	if c.BackoffMax < c.BackoffMin {
		return fmt.Errorf("mpio: backoff maximum %v is below its minimum %v", c.BackoffMax, c.BackoffMin)
	}
	return nil
}

// sessionConfig is the initiator configuration of one path's session.
func (c Config) sessionConfig(spec PathSpec, onEvent func(initiator.Event)) initiator.Config {
	s := c.Session
	s.SourceAddr, s.Device = spec.SourceAddr, spec.Device
	if spec.Portal != "" {
		s.Portal = spec.Portal
	}
	if spec.TargetName != "" {
		s.TargetName = spec.TargetName
	}
	s.NopInterval, s.NopTimeout = c.CheckInterval, c.CheckTimeout
	// Fail at once: other paths take over, which is faster than waiting
	// for this one to log in again.
	s.ReplacementTimeout = -1
	s.OnEvent = onEvent
	s.ISID = iscsi.ISID{} // every session its own nexus
	return s
}
