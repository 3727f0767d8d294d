package setupapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// endpoint serves the contract's three routes over TLS with the answers
// given, and returns the client's endpoint and the certificate's
// fingerprint.
func endpoint(t *testing.T, h http.Handler) (string, string) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(srv.Certificate().Raw)
	return srv.URL, hex.EncodeToString(sum[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func TestClientRoundTrip(t *testing.T) {
	var got Request
	mux := http.NewServeMux()
	mux.HandleFunc("GET /setup/v1/info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, Info{Serial: "S1", State: "uninitialized", Address: "127.0.10.31", Network: "127.0.10.0/24", Ports: 2})
	})
	mux.HandleFunc("POST /setup/v1/initialize", func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			writeJSON(w, 400, Error{Error: err.Error()})
			return
		}
		writeJSON(w, 202, Progress{State: StateRunning, Step: "checking", Percent: 1})
	})
	mux.HandleFunc("GET /setup/v1/progress", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, Progress{State: StateDone, Percent: 100, Result: &Result{GroupName: "g", ManagementAddr: "127.0.10.1:8443"}})
	})
	url, fp := endpoint(t, mux)
	c, err := Dial(url, strings.ToUpper(fp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Info()
	if err != nil || info.Serial != "S1" || info.Network != "127.0.10.0/24" || info.Ports != 2 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	req := Request{MemberName: "m1", IP: "127.0.10.31/24", GroupName: "g", GroupIP: "127.0.10.1", Mode: ModeCreate, MembershipPassword: "secret-123", RAID: "raid10"}
	p, err := c.Initialize(req)
	if err != nil || p.State != StateRunning || got != req {
		t.Fatalf("Initialize = %+v, %v; server got %+v", p, err, got)
	}
	p, err = c.Progress()
	if err != nil || p.State != StateDone || p.Result == nil || p.Result.ManagementAddr != "127.0.10.1:8443" {
		t.Fatalf("Progress = %+v, %v", p, err)
	}
}

func TestClientErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /setup/v1/info", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write([]byte("not json"))
	})
	mux.HandleFunc("POST /setup/v1/initialize", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		json.NewDecoder(r.Body).Decode(&req)
		switch req.MemberName {
		case "bad":
			writeJSON(w, 400, Error{Error: "not a valid name", Field: "member_name"})
		case "pw":
			writeJSON(w, 403, Error{Error: "wrong membership password"})
		default:
			w.Header().Set("Retry-After", "7")
			writeJSON(w, 429, Error{Error: "too many wrong passwords"})
		}
	})
	mux.HandleFunc("GET /setup/v1/progress", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, "a string, not a Progress")
	})
	url, fp := endpoint(t, mux)
	c, err := Dial(url, fp)
	if err != nil {
		t.Fatal(err)
	}
	var se *StatusError
	if _, err := c.Info(); !errors.As(err, &se) || se.Status != 500 || se.Message != "not json" {
		t.Errorf("Info: %v", err)
	}
	if _, err := c.Initialize(Request{MemberName: "bad"}); !errors.As(err, &se) || se.Status != 400 || se.Field != "member_name" || !strings.Contains(err.Error(), "member_name") {
		t.Errorf("Initialize with a bad field: %v", err)
	}
	if _, err := c.Initialize(Request{MemberName: "pw"}); !errors.As(err, &se) || se.Status != 403 || se.Message != "wrong membership password" {
		t.Errorf("Initialize with a wrong password: %v", err)
	}
	if _, err := c.Initialize(Request{MemberName: "many"}); !errors.As(err, &se) || se.Status != 429 || se.RetryAfter != 7*time.Second {
		t.Errorf("Initialize throttled: %v", err)
	}
	if _, err := c.Progress(); err == nil || !strings.Contains(err.Error(), "bad JSON") {
		t.Errorf("Progress with a bad body: %v", err)
	}
}

func TestClientPinsFingerprint(t *testing.T) {
	url, fp := endpoint(t, http.NotFoundHandler())
	other := strings.Repeat("ab", 32)
	if other == fp {
		other = strings.Repeat("cd", 32)
	}
	c, err := Dial(url, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("Info with the wrong pin: %v; want ErrFingerprint", err)
	}
	if _, err := Dial(url, "abc"); err == nil {
		t.Fatal("Dial took a malformed fingerprint")
	}
	if _, err := Dial("http://127.0.0.1:8444", fp); err == nil {
		t.Fatal("Dial took a plain-HTTP endpoint")
	}
}

func TestClientUnreachable(t *testing.T) {
	url, fp := endpoint(t, http.NotFoundHandler())
	c, err := Dial(url, fp)
	if err != nil {
		t.Fatal(err)
	}
	// A closed port on loopback: the connection is refused.
	c2, _ := Dial("127.0.0.1:1", fp)
	var ue *UnreachableError
	if _, err := c2.Info(); !errors.As(err, &ue) {
		t.Fatalf("Info from a closed port: %v; want UnreachableError", err)
	}
	if _, err := c.Progress(); errors.As(err, &ue) {
		t.Fatalf("a 404 is an answer, not unreachable: %v", err)
	}
}

func TestEndpointHost(t *testing.T) {
	for in, want := range map[string]string{
		"https://127.0.10.31:8444": "127.0.10.31:8444",
		"127.0.10.31":              "127.0.10.31:8444",
		"127.0.10.31:9000":         "127.0.10.31:9000",
		" https://127.0.10.31/ ":   "127.0.10.31:8444",
	} {
		if got, err := endpointHost(in); err != nil || got != want {
			t.Errorf("endpointHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "https://"} {
		if _, err := endpointHost(bad); err == nil {
			t.Errorf("endpointHost(%q) took it", bad)
		}
	}
}
