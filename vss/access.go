package vss

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/initiator"
)

// Access is how to reach a volume: its group's management API, and a
// login to its iSCSI target (which its snapshots' targets share). It
// comes from hitkitd when the volume is connected, from the volumes
// saved for login at boot, or from flags; see Resolve.
type Access struct {
	// Name is the volume's name on this host (hitkitd's), Volume its name
	// on the array.
	Name   string
	Volume string
	// Request is how the volume is (or would be) connected: the portal
	// (group IP), target, CHAP, paths, and the group's management API.
	Request daemon.ConnectRequest
	// Connected says that hitkitd has the volume; Link is then its device
	// link, RUNTIME/dev/NAME.
	Connected bool
	Link      string

	RuntimeDir, StateDir string
}

// Dirs are hitkitd's directories.
type Dirs struct {
	Runtime string // control socket and device links (/run/hitkit)
	State   string // saved volumes and records of mounted snapshots (/var/lib/hitkit)
}

// Override holds what the caller gives explicitly (flags); set fields win
// over what hitkitd or the saved volume say.
type Override struct {
	GroupAPI, GroupFingerprint string
	GroupPassword              []byte
	Portal                     string
	CHAPUser                   string
	CHAPSecret                 []byte
	InitiatorName              string
}

// ErrNoGroup says that nothing tells how to reach the volume's group.
var ErrNoGroup = errors.New("no way to the group's management API: connect the volume with --group-admin-file and --group-fingerprint, or give them here")

// Resolve finds how to reach the volume named name on this host.
func Resolve(ctx context.Context, name string, dirs Dirs, o Override) (*Access, error) {
	a := &Access{Name: name, Volume: name, RuntimeDir: dirs.Runtime, StateDir: dirs.State}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	r, err := daemon.NewClient(dirs.Runtime).Request(cctx, name)
	cancel()
	switch {
	case err == nil:
		a.Request, a.Connected = r, true
		a.Link = daemon.DevLink(dirs.Runtime, name)
	case errors.Is(err, daemon.ErrNotRunning) || isNotConnected(err):
		saved, serr := daemon.SavedVolumes(dirs.State)
		if serr != nil {
			return nil, serr
		}
		for _, r := range saved {
			if r.Name == name {
				a.Request = r
			}
		}
	default:
		return nil, err
	}
	a.apply(o)
	if a.Request.GroupFingerprint == "" || a.Request.GroupAdminPassword == "" {
		return nil, fmt.Errorf("volume %s: %w", name, ErrNoGroup)
	}
	return a, nil
}

func isNotConnected(err error) bool {
	return errors.Is(err, daemon.ErrNotConnected)
}

func (a *Access) apply(o Override) {
	r := &a.Request
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&r.GroupAPI, o.GroupAPI)
	set(&r.GroupFingerprint, o.GroupFingerprint)
	if o.GroupPassword != nil {
		r.GroupAdminPassword = string(o.GroupPassword)
	}
	set(&r.Portal, o.Portal)
	set(&r.CHAPUser, o.CHAPUser)
	if o.CHAPSecret != nil {
		r.CHAPSecret = string(o.CHAPSecret)
	}
	set(&r.InitiatorName, o.InitiatorName)
	if r.Name == "" {
		r.Name = a.Name
	}
}

// Dial logs in to the group's management API, and learns the volume's
// name on the array (by its target name, when connected), and the portal
// and target when they are not known yet.
func (a *Access) Dial() (*groupapi.Client, error) {
	if a.Request.Portal == "" && a.Request.GroupAPI == "" {
		return nil, fmt.Errorf("volume %s: %w", a.Name, ErrNoGroup)
	}
	addr := a.Request.GroupAPIAddr()
	api, err := groupapi.Dial(addr, a.Request.GroupFingerprint, []byte(a.Request.GroupAdminPassword))
	if err != nil {
		return nil, fmt.Errorf("group management API at %s: %w", addr, err)
	}
	if err := a.learn(api); err != nil {
		api.Close()
		return nil, err
	}
	return api, nil
}

func (a *Access) learn(api *groupapi.Client) error {
	if a.Request.Target != "" {
		vols, err := api.Volumes()
		if err != nil {
			return err
		}
		for _, v := range vols {
			if v.IQN == a.Request.Target {
				a.Volume = v.Name
				return nil
			}
		}
		return fmt.Errorf("no volume on the group has the target name %s", a.Request.Target)
	}
	v, err := api.Volume(a.Volume)
	if err != nil {
		return fmt.Errorf("volume %s: %w", a.Volume, err)
	}
	a.Request.Target = v.IQN
	if a.Request.CHAPUser == "" {
		a.Request.CHAPUser = v.CHAPUser
	}
	if a.Request.Portal == "" {
		g, err := api.Group()
		if err != nil {
			return err
		}
		a.Request.Portal = g.GroupIP
	}
	return nil
}

// sessionConfig is a login to target (the volume's or a snapshot's) with
// the volume's credentials, through the group IP.
func (a *Access) sessionConfig(target string) (initiator.Config, error) {
	r := a.Request
	if r.CHAPUser != "" && r.CHAPSecret == "" {
		return initiator.Config{}, fmt.Errorf("volume %s: CHAP user %s needs its secret (--chap-secret-file or HITKIT_CHAP_SECRET)", a.Name, r.CHAPUser)
	}
	cfg, err := r.SessionConfig()
	cfg.TargetName = target
	return cfg, err
}

// openUnit logs in to target and opens its LUN; close ends the session.
func (a *Access) openUnit(ctx context.Context, target string) (*initiator.LogicalUnit, func(), error) {
	cfg, err := a.sessionConfig(target)
	if err != nil {
		return nil, nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := initiator.Dial(dctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("login to %s: %w", target, err)
	}
	lu, err := initiator.OpenLogicalUnit(dctx, s, a.Request.LUN)
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("%s: %w", target, err)
	}
	return lu, func() { s.Close() }, nil
}
