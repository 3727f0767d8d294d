package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/hitkit/hitkit/internal/atomicfile"
)

// store keeps the --login-at-boot volumes in STATE/volumes.json, and their
// CHAP secrets apart, one 0600 file each in STATE/secrets, so that the
// list can be read and backed up without exposing a secret.
// Its methods read, change and write the whole list, so they take turns.
type store struct {
	dir string
	mu  sync.Mutex
}

type stateFile struct {
	Volumes []ConnectRequest `json:"volumes"`
}

func (s *store) listPath() string { return filepath.Join(s.dir, "volumes.json") }

func (s *store) secretPath(name string) string {
	return filepath.Join(s.dir, "secrets", name+".chap")
}

func (s *store) groupPath(name string) string {
	return filepath.Join(s.dir, "secrets", name+".group")
}

func (s *store) mutualPath(name string) string {
	return filepath.Join(s.dir, "secrets", name+".mutual")
}

// load returns the saved requests with their secrets filled in.
func (s *store) load() ([]ConnectRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read()
}

func (s *store) read() ([]ConnectRequest, error) {
	b, err := os.ReadFile(s.listPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %v", s.listPath(), err)
	}
	for i, r := range st.Volumes {
		if r.GroupFingerprint != "" {
			password, err := os.ReadFile(s.groupPath(r.Name))
			if err != nil {
				return nil, fmt.Errorf("volume %s: group admin password: %w", r.Name, err)
			}
			st.Volumes[i].GroupAdminPassword = string(password)
		}
		if r.CHAPUser == "" {
			continue
		}
		secret, err := os.ReadFile(s.secretPath(r.Name))
		if err != nil {
			return nil, fmt.Errorf("volume %s: CHAP secret: %w", r.Name, err)
		}
		st.Volumes[i].CHAPSecret = string(secret)
		if r.MutualUser == "" {
			continue
		}
		if secret, err = os.ReadFile(s.mutualPath(r.Name)); err != nil {
			return nil, fmt.Errorf("volume %s: mutual CHAP secret: %w", r.Name, err)
		}
		st.Volumes[i].MutualSecret = string(secret)
	}
	return st.Volumes, nil
}

// put adds or replaces a volume.
func (s *store) put(r ConnectRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.read()
	if err != nil {
		return err
	}
	if r.CHAPSecret != "" {
		if err := os.MkdirAll(filepath.Dir(s.secretPath(r.Name)), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(s.secretPath(r.Name), []byte(r.CHAPSecret), 0o600); err != nil {
			return err
		}
	}
	if r.GroupAdminPassword != "" {
		if err := os.MkdirAll(filepath.Dir(s.groupPath(r.Name)), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(s.groupPath(r.Name), []byte(r.GroupAdminPassword), 0o600); err != nil {
			return err
		}
	}
	if r.MutualSecret != "" {
		if err := atomicfile.Write(s.mutualPath(r.Name), []byte(r.MutualSecret), 0o600); err != nil {
			return err
		}
	}
	list = append(without(list, r.Name), r)
	return s.save(list)
}

// remove forgets a volume; forgetting an unknown one is not an error.
func (s *store) remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.read()
	if err != nil {
		return err
	}
	if err := s.save(without(list, name)); err != nil {
		return err
	}
	for _, path := range []string{s.secretPath(name), s.mutualPath(name), s.groupPath(name)} {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (s *store) save(list []ConnectRequest) error {
	st := stateFile{Volumes: make([]ConnectRequest, 0, len(list))}
	for _, r := range list {
		r.CHAPSecret, r.MutualSecret, r.GroupAdminPassword = "", "", ""
		st.Volumes = append(st.Volumes, r)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.listPath(), append(b, '\n'), 0o600)
}

func without(list []ConnectRequest, name string) []ConnectRequest {
	out := list[:0:0]
	for _, r := range list {
		if r.Name != name {
			out = append(out, r)
		}
	}
	return out
}
