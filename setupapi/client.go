package setupapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hitkit/hitkit/groupapi"
)

// DefaultTimeout bounds one request to a setup endpoint.
const DefaultTimeout = 15 * time.Second

// ErrFingerprint says that the member's certificate is not the one its
// discovery answer announced: something else answers at its address.
var ErrFingerprint = errors.New("the member's certificate does not match the fingerprint it announced at discovery")

// StatusError is an answer other than 2xx: the HTTP status, the member's
// message, the Request field at fault (400) and, for 429, how long to wait.
type StatusError struct {
	Status     int
	Message    string
	Field      string
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	return fmt.Sprintf("setup endpoint: %d %s: %s", e.Status, http.StatusText(e.Status), msg)
}

// UnreachableError says that the request did not get an answer at all:
// the connection was refused, reset or timed out.
type UnreachableError struct {
	Endpoint string
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("setup endpoint %s did not answer: %v", e.Endpoint, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Client talks to one member's setup endpoint over HTTPS, trusting
// exactly the certificate whose fingerprint it was given.
type Client struct {
	base string
	hc   *http.Client
}

// Dial prepares a client for the setup endpoint (https://HOST:PORT,
// HOST:PORT or HOST; port 8444 by default) that trusts only the
// certificate with the given SHA-256 fingerprint. It sends nothing: the
// first request checks the certificate, and fails with ErrFingerprint
// when it is not the pinned one.
func Dial(endpoint, fingerprint string) (*Client, error) {
	tlsCfg, err := groupapi.PinnedTLS(fingerprint, ErrFingerprint)
	if err != nil {
		return nil, err
	}
	host, err := endpointHost(endpoint)
	if err != nil {
		return nil, err
	}
	return &Client{
		base: "https://" + host,
		hc: &http.Client{
			Timeout: DefaultTimeout,
			Transport: &http.Transport{
				TLSClientConfig: tlsCfg, Proxy: nil, MaxIdleConnsPerHost: 2,
				DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			},
		},
	}, nil
}

// endpointHost turns an endpoint as discovery announces it into host:port.
func endpointHost(endpoint string) (string, error) {
	s := strings.TrimSpace(endpoint)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return "", fmt.Errorf("setup endpoint %q: want https://HOST:PORT", endpoint)
		}
		s = u.Host
	}
	if s == "" {
		return "", errors.New("setup endpoint is empty")
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(Port))
	}
	return s, nil
}

// Endpoint is the base URL the client talks to.
func (c *Client) Endpoint() string { return c.base }

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Info fetches what the member is.
func (c *Client) Info() (Info, error) {
	var info Info
	err := c.do(http.MethodGet, "/setup/v1/info", nil, &info)
	return info, err
}

// Initialize asks the member to set itself up. The member checks the
// request and answers at once; the setup then runs on, and Progress
// follows it.
func (c *Client) Initialize(req Request) (Progress, error) {
	var p Progress
	err := c.do(http.MethodPost, "/setup/v1/initialize", req, &p)
	return p, err
}

// Progress fetches how far the setup is.
func (c *Client) Progress() (Progress, error) {
	var p Progress
	err := c.do(http.MethodGet, "/setup/v1/progress", nil, &p)
	return p, err
}

func (c *Client) do(method, path string, in, out any) error {
	req, err := groupapi.NewJSONRequest(method, c.base+path, in)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrFingerprint) {
			return fmt.Errorf("%s: %w", c.base, ErrFingerprint)
		}
		return &UnreachableError{Endpoint: c.base, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &UnreachableError{Endpoint: c.base, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return statusError(resp, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("setup endpoint %s %s: bad JSON in the answer: %w", method, path, err)
	}
	return nil
}

func statusError(resp *http.Response, body []byte) *StatusError {
	var e Error
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
		if len(e.Error) > 200 {
			e.Error = e.Error[:200]
		}
	}
	se := &StatusError{Status: resp.StatusCode, Message: e.Error, Field: e.Field}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return se
}

// unwrapURLError drops net/http's "Get URL:" prefix, which repeats the
// endpoint that UnreachableError already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
