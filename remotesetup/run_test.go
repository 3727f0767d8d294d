package remotesetup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hitkit/hitkit/setupapi"
)

// These tests drive Apply against an HTTPS endpoint that follows the
// setupapi contract step by step, to reach the states a real member
// reaches only by accident (a failure late in the setup, or going away
// in the middle). The real member is exercised end to end in cmd.

type fakeMember struct {
	srv   *httptest.Server
	polls atomic.Int32
	// progress answers poll n (from 1); initialize answers with init.
	init     func(w http.ResponseWriter, req setupapi.Request)
	progress func(n int32, w http.ResponseWriter)
}

func startMember(t *testing.T, m *fakeMember) *setupapi.Client {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /setup/v1/initialize", func(w http.ResponseWriter, r *http.Request) {
		var req setupapi.Request
		json.NewDecoder(r.Body).Decode(&req)
		m.init(w, req)
	})
	mux.HandleFunc("GET /setup/v1/progress", func(w http.ResponseWriter, r *http.Request) {
		m.progress(m.polls.Add(1), w)
	})
	m.srv = httptest.NewUnstartedServer(mux)
	m.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the wrong-certificate test's handshake errors
	m.srv.StartTLS()
	t.Cleanup(m.srv.Close)
	sum := sha256.Sum256(m.srv.Certificate().Raw)
	c, err := setupapi.Dial(m.srv.URL, hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

var running = setupapi.Progress{State: setupapi.StateRunning, Step: "initialising disks", Percent: 10}

func TestApplyDone(t *testing.T) {
	m := &fakeMember{
		init: func(w http.ResponseWriter, req setupapi.Request) { reply(w, 202, running) },
		progress: func(n int32, w http.ResponseWriter) {
			if n < 3 {
				reply(w, 200, setupapi.Progress{State: setupapi.StateRunning, Step: "step", Percent: int(n) * 30})
				return
			}
			reply(w, 200, setupapi.Progress{State: setupapi.StateDone, Percent: 100, Result: &setupapi.Result{GroupName: "lab", Member: 1}})
		},
	}
	c := startMember(t, m)
	var seen []int
	res, err := Apply(context.Background(), c, setupapi.Request{}, func(p setupapi.Progress) { seen = append(seen, p.Percent) })
	if err != nil || res.GroupName != "lab" || res.Member != 1 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if len(seen) != 4 || seen[0] != 10 || seen[3] != 100 {
		t.Fatalf("progress seen %v", seen)
	}
}

func TestApplyFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		init     func(w http.ResponseWriter, req setupapi.Request)
		progress func(n int32, w http.ResponseWriter)
		says     string
		gone     bool
	}{
		"wrong membership password": {
			init: func(w http.ResponseWriter, req setupapi.Request) {
				reply(w, 403, setupapi.Error{Error: "wrong membership password"})
			},
			says: "the group at 127.0.10.1 refused the membership password (wrong membership password); the member stays uninitialised",
		},
		"group IP in use": {
			init: func(w http.ResponseWriter, req setupapi.Request) {
				reply(w, 409, setupapi.Error{Error: "group IP 127.0.10.1 is in use"})
			},
			says: "the member refused: group IP 127.0.10.1 is in use; it stays uninitialised",
		},
		"a field": {
			init: func(w http.ResponseWriter, req setupapi.Request) {
				reply(w, 400, setupapi.Error{Error: "not on the member's network", Field: "group_ip"})
			},
			says: "the member refused --group-ip: not on the member's network",
		},
		"failed late": {
			init: func(w http.ResponseWriter, req setupapi.Request) { reply(w, 202, running) },
			progress: func(n int32, w http.ResponseWriter) {
				reply(w, 200, setupapi.Progress{State: setupapi.StateFailed, Error: "disk 3 failed"})
			},
			says: "the setup failed on the member: disk 3 failed; it stays uninitialised",
		},
		"went away taking the request": {
			init: func(w http.ResponseWriter, req setupapi.Request) {
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close()
			},
			says: "the member went away during setup; it stays uninitialised; run setup-array again",
			gone: true,
		},
		"went away": {
			init: func(w http.ResponseWriter, req setupapi.Request) { reply(w, 202, running) },
			progress: func(n int32, w http.ResponseWriter) {
				// The connection drops without an answer, as when the
				// member loses power.
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close()
			},
			says: "the member went away during setup; it stays uninitialised; run setup-array again",
			gone: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			m := &fakeMember{init: tc.init, progress: tc.progress}
			c := startMember(t, m)
			_, err := Apply(context.Background(), c, setupapi.Request{GroupIP: "127.0.10.1"}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err %v; want %q", err, tc.says)
			}
			if errors.Is(err, ErrMemberGone) != tc.gone {
				t.Fatalf("ErrMemberGone: %v", err)
			}
			// net/http may retry a GET once on a reused connection, so a
			// lost poll can reach the member twice.
			if n := m.polls.Load(); tc.progress != nil && tc.gone && (n < lostPolls || n > 2*lostPolls) {
				t.Fatalf("gave up after %d polls; want %d", n, lostPolls)
			}
		})
	}
}

func TestApplyWrongCertificate(t *testing.T) {
	m := &fakeMember{init: func(w http.ResponseWriter, req setupapi.Request) { reply(w, 202, running) }}
	startMember(t, m)
	c, err := setupapi.Dial(m.srv.URL, strings.Repeat("00", 32))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Apply(context.Background(), c, setupapi.Request{}, nil)
	if !errors.Is(err, setupapi.ErrFingerprint) || !strings.Contains(err.Error(), "nothing was sent") {
		t.Fatalf("err %v", err)
	}
}

func TestApplyNobodyThere(t *testing.T) {
	c, err := setupapi.Dial("127.0.0.1:1", strings.Repeat("00", 32))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Apply(context.Background(), c, setupapi.Request{}, nil)
	if err == nil || errors.Is(err, ErrMemberGone) || !strings.Contains(err.Error(), "the member did not answer the setup request") {
		t.Fatalf("err %v", err)
	}
}
