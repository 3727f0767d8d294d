package target

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/hitkit/hitkit/iscsi"
)

// AccessFunc decides whether an initiator may log in to a target. A
// non-nil error refuses the login with status 0x0202 (authorization
// failure); the error is logged, never sent.
type AccessFunc func(initiatorName, chapUser string, remote netip.Addr) error

// CHAP makes logins authenticate.
type CHAP struct {
	// Lookup returns a user's secret.
	Lookup func(user string) (secret []byte, ok bool)
	// Mutual holds the target's own credentials, for initiators that ask
	// it to authenticate in turn; nil refuses mutual CHAP.
	Mutual *iscsi.ChapCredentials
}

// StaticUsers is a CHAP Lookup over a fixed map of users to secrets.
func StaticUsers(users map[string]string) func(string) ([]byte, bool) {
	return func(u string) ([]byte, bool) {
		s, ok := users[u]
		return []byte(s), ok
	}
}

// Target is an iSCSI target node: a name, the logical units it exports
// and who may use them. Set the exported fields before AddTarget; the LUN
// map may change at any time.
type Target struct {
	Name   string // IQN
	Alias  string
	CHAP   *CHAP      // nil: no authentication (AuthMethod=None)
	Access AccessFunc // nil: everyone

	mu   sync.RWMutex
	luns map[uint16]Unit
}

// NewTarget returns a target with no logical units.
func NewTarget(name string) *Target {
	return &Target{Name: name, luns: map[uint16]Unit{}}
}

// SetLUN exports u as lun, replacing what was there.
func (t *Target) SetLUN(lun uint16, u Unit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.luns == nil {
		t.luns = map[uint16]Unit{}
	}
	t.luns[lun] = u
}

// RemoveLUN stops exporting lun.
func (t *Target) RemoveLUN(lun uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.luns, lun)
}

// LUNs lists the exported LUNs in ascending order.
func (t *Target) LUNs() []uint16 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]uint16, 0, len(t.luns))
	for l := range t.luns {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// Unit returns the unit at lun.
func (t *Target) Unit(lun uint16) (Unit, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	u, ok := t.luns[lun]
	return u, ok
}

func (t *Target) units() []Unit {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Unit, 0, len(t.luns))
	for _, u := range t.luns {
		out = append(out, u)
	}
	return out
}

// AddTarget makes t available for login.
func (s *Server) AddTarget(t *Target) error {
	if t.Name == "" {
		return errors.New("target: a target needs a name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if _, dup := s.targets[t.Name]; dup {
		return fmt.Errorf("target: %s already exists", t.Name)
	}
	s.targets[t.Name] = t
	delete(s.removed, t.Name)
	s.log.WithField("target", t.Name).Info("target added")
	return nil
}

// RemoveTarget withdraws a target and drops its sessions. Later logins
// to it get status 0x0204 (target removed).
func (s *Server) RemoveTarget(name string) error {
	s.mu.Lock()
	_, ok := s.targets[name]
	delete(s.targets, name)
	if ok {
		s.removed[name] = true
	}
	var drop []*session
	for _, ss := range s.sessions {
		if ss.target != nil && ss.target.Name == name {
			drop = append(drop, ss)
		}
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("target: no target %s", name)
	}
	for _, ss := range drop {
		ss.conn.close(errTargetRemoved)
	}
	s.log.WithField("target", name).Info("target removed")
	return nil
}

var errTargetRemoved = errors.New("target removed")

// Target returns the target named name.
func (s *Server) Target(name string) (*Target, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.targets[name]
	return t, ok
}

// Targets lists the targets by name.
func (s *Server) Targets() []*Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Target, 0, len(s.targets))
	for _, t := range s.targets {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Target) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// lookupTarget finds a target for a login, with the status that refuses
// it when there is none.
func (s *Server) lookupTarget(name string) (*Target, iscsi.LoginStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.targets[name]; ok {
		return t, iscsi.LoginSuccess
	}
	if s.removed[name] {
		return nil, iscsi.LoginTargetRemoved
	}
	return nil, iscsi.LoginNotFound
}

// nexusLost tells the units that keep per-nexus state that n is gone.
func (t *Target) nexusLost(n Nexus) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, u := range t.luns {
		if o, ok := u.(NexusObserver); ok {
			o.NexusLost(n)
		}
	}
}
