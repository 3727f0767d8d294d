package groupapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPort is where a group's management API listens.
const DefaultPort = 8443

// DefaultTimeout bounds one request.
const DefaultTimeout = 30 * time.Second

// StatusError is a response other than 2xx: the HTTP status and the
// server's message.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("management API: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// ErrFingerprint says that the server's certificate is not the pinned one.
var ErrFingerprint = errors.New("the group's certificate does not match the pinned SHA-256 fingerprint")

// Client talks to one group's management API over HTTPS, trusting exactly
// the certificate whose fingerprint it was given.
type Client struct {
	base     string
	hc       *http.Client
	password []byte

	mu    sync.Mutex
	token string
}

// ParseFingerprint reads a SHA-256 fingerprint written as 64 hex digits,
// with or without colons, in either case.
func ParseFingerprint(s string) ([]byte, error) {
	h := strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s))
	h = strings.TrimPrefix(strings.TrimPrefix(h, "sha256/"), "SHA256/")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("fingerprint %q: want the certificate's SHA-256 as 64 hex digits, such as `hitkit lab up` prints", s)
	}
	return b, nil
}

// PinnedTLS is a client TLS configuration that trusts exactly the
// certificate with the given SHA-256 fingerprint (as ParseFingerprint
// reads it) and fails the handshake with mismatch on any other. Groups
// and uninitialised members serve self-signed certificates, which hosts
// pin this way.
func PinnedTLS(fingerprint string, mismatch error) (*tls.Config, error) {
	pin, err := ParseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is not verified against any CA: no CA vouches for a
		// self-signed certificate. VerifyPeerCertificate pins it instead,
		// and refuses every other certificate.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return mismatch
			}
			sum := sha256.Sum256(raw[0])
			if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
				return mismatch
			}
			return nil
		},
	}, nil
}

// Dial connects to the management API at addr (host or host:port; port
// 8443 by default), checks that its certificate has the given SHA-256
// fingerprint, and logs in with the admin password. The password is kept
// to log in again when the token expires.
func Dial(addr, fingerprint string, password []byte) (*Client, error) {
	tlsCfg, err := PinnedTLS(fingerprint, ErrFingerprint)
	if err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, strconv.Itoa(DefaultPort))
	}
	c := &Client{
		base:     "https://" + addr,
		password: bytes.Clone(password),
		hc: &http.Client{
			Timeout:   DefaultTimeout,
			Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4},
		},
	}
	if err := c.login(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

func (c *Client) login() error {
	var out LoginResponse
	if err := c.send(http.MethodPost, "/api/v1/login", "", LoginRequest{Password: string(c.password)}, &out); err != nil {
		if errors.Is(err, ErrFingerprint) {
			return ErrFingerprint
		}
		return err
	}
	c.mu.Lock()
	c.token = out.Token
	c.mu.Unlock()
	return nil
}

// do sends a request with the token, logging in again once on a 401.
func (c *Client) do(method, path string, in, out any) error {
	c.mu.Lock()
	tok := c.token
	c.mu.Unlock()
	err := c.send(method, path, tok, in, out)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusUnauthorized {
		if err := c.login(); err != nil {
			return err
		}
		c.mu.Lock()
		tok = c.token
		c.mu.Unlock()
		err = c.send(method, path, tok, in, out)
	}
	return err
}

// NewJSONRequest is a request for target that asks for JSON and, unless
// in is nil, sends in as its JSON body: how the clients of the management
// API and of the setup endpoints frame their requests.
func NewJSONRequest(method, target string, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

func (c *Client) send(method, path, token string, in, out any) error {
	req, err := NewJSONRequest(method, c.base+path, in)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrFingerprint) {
			return fmt.Errorf("%s: %w", c.base, ErrFingerprint)
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &StatusError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("management API %s %s: bad JSON in the answer: %w", method, path, err)
	}
	return nil
}

func volPath(name string, rest string) string {
	return "/api/v1/volumes/" + url.PathEscape(name) + rest
}

// Group fetches the group's name, IP and members.
func (c *Client) Group() (Group, error) {
	var g Group
	if err := c.do(http.MethodGet, "/api/v1/group", nil, &g); err != nil {
		return g, err
	}
	return g, nil
}

// Members lists the members with their ports.
func (c *Client) Members() ([]Member, error) {
	var m []Member
	if err := c.do(http.MethodGet, "/api/v1/members", nil, &m); err != nil {
		return m, err
	}
	return m, nil
}

// Volumes lists the volumes.
func (c *Client) Volumes() ([]Volume, error) {
	var v []Volume
	if err := c.do(http.MethodGet, "/api/v1/volumes", nil, &v); err != nil {
		return v, err
	}
	return v, nil
}

// Volume fetches one volume.
func (c *Client) Volume(name string) (Volume, error) {
	var v Volume
	if err := c.do(http.MethodGet, volPath(name, ""), nil, &v); err != nil {
		return v, err
	}
	return v, nil
}

// CreateVolume creates a volume and returns it.
func (c *Client) CreateVolume(req CreateVolume) (Volume, error) {
	var v Volume
	if err := c.do(http.MethodPost, "/api/v1/volumes", req, &v); err != nil {
		return v, err
	}
	return v, nil
}

// ResizeVolume changes a volume's size; shrink must be set to make it smaller.
func (c *Client) ResizeVolume(name string, size int64, shrink bool) (Volume, error) {
	var v Volume
	if err := c.do(http.MethodPatch, volPath(name, ""), ResizeVolume{Size: size, Shrink: shrink}, &v); err != nil {
		return v, err
	}
	return v, nil
}

// DeleteVolume deletes a volume with its snapshots. The group refuses a
// volume that still has sessions unless force is set, which drops them.
func (c *Client) DeleteVolume(name string, force bool) error {
	path := volPath(name, "")
	if force {
		path += "?force=true"
	}
	return c.do(http.MethodDelete, path, nil, nil)
}

// Access fetches a volume's access control records.
func (c *Client) Access(name string) ([]AccessRecord, error) {
	var a Access
	if err := c.do(http.MethodGet, volPath(name, "/access"), nil, &a); err != nil {
		return a.Records, err
	}
	return a.Records, nil
}

// SetAccess replaces a volume's access control records.
func (c *Client) SetAccess(name string, records []AccessRecord) ([]AccessRecord, error) {
	var a Access
	if err := c.do(http.MethodPut, volPath(name, "/access"), Access{Records: records}, &a); err != nil {
		return a.Records, err
	}
	return a.Records, nil
}

// PageMap fetches which member holds which page of a volume, with the
// members' portals.
func (c *Client) PageMap(name string) (PageMap, error) {
	var m PageMap
	if err := c.do(http.MethodGet, volPath(name, "/pagemap"), nil, &m); err != nil {
		return m, err
	}
	return m, nil
}

// Stats fetches per-port, per-member and per-volume counters.
func (c *Client) Stats() (Stats, error) {
	var s Stats
	if err := c.do(http.MethodGet, "/api/v1/stats", nil, &s); err != nil {
		return s, err
	}
	return s, nil
}

// Events lists the recent changes made through the API, oldest first.
func (c *Client) Events() ([]Event, error) {
	var e []Event
	if err := c.do(http.MethodGet, "/api/v1/events", nil, &e); err != nil {
		return e, err
	}
	return e, nil
}
