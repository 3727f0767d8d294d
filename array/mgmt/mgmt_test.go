package mgmt_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/array/mgmt"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/internal/peer"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	g        *array.Group
	srv      *mgmt.Server
	password []byte
	log      *syncBuffer
	raw      *http.Client // trusts the group's certificate through a CA pool
	base     string
}

// start runs a lab group in-process (labtest), with the
// management API as a service and every log line captured.
func start(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{log: &syncBuffer{}}
	l := logrus.New()
	l.SetOutput(f.log)
	l.SetLevel(logrus.DebugLevel)
	lab := labtest.Start(t, labtest.Options{
		Spec:          array.Spec{Volumes: []array.VolumeSpec{{Name: "vol1", Size: 64 << 20}}},
		ManagementAPI: true, Logger: l,
	})
	f.g, f.srv, f.password = lab.Group, lab.API, []byte(lab.AdminPassword(t))
	dir := lab.Dir
	pemCert, err := os.ReadFile(mgmt.CertFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCert) {
		t.Fatal("cert.pem holds no certificate")
	}
	f.raw = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(f.raw.CloseIdleConnections)
	f.base = "https://" + f.g.ManagementAddr()
	return f
}

func (f *fixture) dial(t *testing.T) *groupapi.Client {
	t.Helper()
	c, err := groupapi.Dial(f.g.ManagementAddr(), f.srv.Fingerprint(), f.password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// request sends a raw request; auth is "basic", "none", or a bearer token.
func (f *fixture) request(t *testing.T, method, path, body, auth string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	switch auth {
	case "basic":
		req.SetBasicAuth("admin", string(f.password))
	case "none":
	default:
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func wantJSONError(t *testing.T, b []byte) string {
	t.Helper()
	var e groupapi.Error
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not a JSON error", b)
	}
	return e.Error
}

func TestAuth(t *testing.T) {
	f := start(t)
	t.Run("no credentials", func(t *testing.T) {
		code, b := f.request(t, "GET", "/api/v1/group", "", "none")
		if code != 401 {
			t.Fatalf("status %d, want 401", code)
		}
		wantJSONError(t, b)
	})
	t.Run("wrong basic password", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.base+"/api/v1/group", nil)
		req.SetBasicAuth("admin", "wrong-password")
		resp, err := f.raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("status %d (WWW-Authenticate %q), want 401 with a challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("wrong user", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.base+"/api/v1/group", nil)
		req.SetBasicAuth("root", string(f.password))
		resp, err := f.raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	})
	t.Run("basic auth", func(t *testing.T) {
		if code, b := f.request(t, "GET", "/api/v1/group", "", "basic"); code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
	})
	t.Run("token flow", func(t *testing.T) {
		code, b := f.request(t, "POST", "/api/v1/login", `{"password":"nope"}`, "none")
		if code != 401 {
			t.Fatalf("login with a wrong password: status %d", code)
		}
		wantJSONError(t, b)
		body, _ := json.Marshal(groupapi.LoginRequest{Password: string(f.password)})
		code, b = f.request(t, "POST", "/api/v1/login", string(body), "none")
		if code != 200 {
			t.Fatalf("login: status %d: %s", code, b)
		}
		var lr groupapi.LoginResponse
		if err := json.Unmarshal(b, &lr); err != nil || lr.Token == "" {
			t.Fatalf("login answer %s", b)
		}
		if code, b := f.request(t, "GET", "/api/v1/volumes", "", lr.Token); code != 200 {
			t.Fatalf("with the token: status %d: %s", code, b)
		}
		if code, _ := f.request(t, "GET", "/api/v1/volumes", "", lr.Token+"x"); code != 401 {
			t.Fatalf("with a wrong token: status %d, want 401", code)
		}
	})
	t.Run("client with a wrong password", func(t *testing.T) {
		_, err := groupapi.Dial(f.g.ManagementAddr(), f.srv.Fingerprint(), []byte("wrong"))
		var se *groupapi.StatusError
		if !errors.As(err, &se) || se.Status != 401 || se.Message == "" {
			t.Fatalf("err = %v, want a 401 with the server's message", err)
		}
	})
}

func TestPinning(t *testing.T) {
	f := start(t)
	fp := f.srv.Fingerprint()
	if len(fp) != 95 || strings.Count(fp, ":") != 31 {
		t.Fatalf("fingerprint %q is not 32 hex pairs with colons", fp)
	}
	for _, file := range []string{mgmt.CertFile(f.g.Dir()), mgmt.KeyFile(f.g.Dir())} {
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", file, st.Mode().Perm())
		}
	}
	wrong := "00" + fp[2:]
	if fp[:2] == "00" {
		wrong = "11" + fp[2:]
	}
	if _, err := groupapi.Dial(f.g.ManagementAddr(), wrong, f.password); !errors.Is(err, groupapi.ErrFingerprint) {
		t.Fatalf("wrong fingerprint: err = %v, want ErrFingerprint", err)
	}
	if _, err := groupapi.Dial(f.g.ManagementAddr(), "not-hex", f.password); err == nil {
		t.Fatal("a malformed fingerprint was accepted")
	}
	// Lower case without colons pins the same certificate.
	c, err := groupapi.Dial(f.g.ManagementAddr(), strings.ToLower(strings.ReplaceAll(fp, ":", "")), f.password)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got, err := mgmt.FingerprintFile(f.g.Dir()); err != nil || got != fp {
		t.Fatalf("FingerprintFile = %q, %v; want %q", got, err, fp)
	}
	// The certificate is kept: loading it again gives the same fingerprint.
	host, _, _ := net.SplitHostPort(f.g.ManagementAddr())
	if _, again, err := mgmt.LoadOrCreateCert(f.g.Dir(), host); err != nil || again != fp {
		t.Fatalf("reloaded fingerprint %q, %v; want %q", again, err, fp)
	}
}

func TestResources(t *testing.T) {
	f := start(t)
	c := f.dial(t)

	g, err := c.Group()
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != f.g.Name() || g.GroupIP != f.g.GroupAddr() || len(g.Members) != len(f.g.Members()) || g.Volumes != 1 {
		t.Fatalf("group %+v", g)
	}

	members, err := c.Members()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != len(f.g.Members()) {
		t.Fatalf("%d members, want %d", len(members), len(f.g.Members()))
	}
	for i, m := range members {
		if m.Firmware != "lab-1.0" || m.Number != i+1 || m.Serial != f.g.Members()[i].Serial() || m.Capacity <= 0 {
			t.Errorf("member %+v", m)
		}
		if m.State == string(array.MemberOnline) && len(m.Ports) != len(f.g.Members()[i].Ports()) {
			t.Errorf("member %d: %d ports, want %d", m.Number, len(m.Ports), len(f.g.Members()[i].Ports()))
		}
	}

	vols, err := c.Volumes()
	if err != nil || len(vols) != 1 || vols[0].Name != "vol1" || vols[0].Size != 64<<20 {
		t.Fatalf("volumes %+v, %v", vols, err)
	}

	v, err := c.CreateVolume(groupapi.CreateVolume{Name: "data", Size: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "data" || v.Size != 32<<20 || v.IQN != array.VolumeIQN(f.g.Name(), "data") || len(v.Access) != 1 {
		t.Fatalf("created %+v", v)
	}
	if _, err := f.g.Volume("data"); err != nil {
		t.Fatalf("the group does not serve the new volume: %v", err)
	}

	v, err = c.ResizeVolume("data", 48<<20, false)
	if err != nil || v.Size != 48<<20 {
		t.Fatalf("resize: %+v, %v", v, err)
	}
	if got, _ := f.g.Volume("data"); got.Size() != 48<<20 {
		t.Fatalf("the group says %d bytes after resize", got.Size())
	}
	if v, err = c.ResizeVolume("data", 16<<20, true); err != nil || v.Size != 16<<20 {
		t.Fatalf("shrink: %+v, %v", v, err)
	}
	if v, err = c.Volume("data"); err != nil || v.Size != 16<<20 {
		t.Fatalf("volume: %+v, %v", v, err)
	}

	acl, err := c.Access("vol1")
	if err != nil || len(acl) != 1 || acl[0].CHAPUser == "" {
		t.Fatalf("access %+v, %v", acl, err)
	}
	want := []groupapi.AccessRecord{{CHAPUser: acl[0].CHAPUser, Network: "127.0.0.0/8"}, {CHAPUser: acl[0].CHAPUser, Initiator: "iqn.2026-11.org.example:host1"}}
	got, err := c.SetAccess("vol1", want)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("set access: %+v, %v", got, err)
	}
	cfg := f.g.Config()
	if n := len(cfg.Volumes[0].Access); n != 2 || cfg.Volumes[0].Access[0].Network.String() != "127.0.0.0/8" {
		t.Fatalf("the group has access %v", cfg.Volumes[0].Access)
	}

	for _, name := range []string{"vol1", "data"} {
		pm, err := c.PageMap(name)
		if err != nil {
			t.Fatal(err)
		}
		apm, err := f.g.PageMap(name)
		if err != nil {
			t.Fatal(err)
		}
		if pm.PageSize != apm.PageSize || pm.Size != apm.Size || pm.Pages != apm.Pages() || !reflect.DeepEqual(pm.Members, apm.Members) {
			t.Fatalf("%s: page map %+v, group says %+v", name, pm, apm)
		}
		for page := range apm.Pages() {
			if pm.Owner(page) != apm.Owner(page) || pm.OwnerAt(page*pm.PageSize+1) != apm.OwnerAt(page*apm.PageSize+1) {
				t.Fatalf("%s: page %d owned by %d, group says %d", name, page, pm.Owner(page), apm.Owner(page))
			}
		}
		for _, n := range apm.Members {
			m, _ := f.g.Member(n)
			var addrs []string
			for _, p := range m.Ports() {
				addrs = append(addrs, p.Addr)
			}
			if !reflect.DeepEqual(pm.Ports[n], addrs) {
				t.Fatalf("%s: member %d ports %v, want %v", name, n, pm.Ports[n], addrs)
			}
		}
	}

	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Volumes) != 2 || len(st.Members) != len(f.g.Members()) || len(st.Ports) < 2 || st.Ports[0].Address != f.g.GroupAddr() {
		t.Fatalf("stats %+v", st)
	}

	if err := c.DeleteVolume("data", false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var se *groupapi.StatusError
	if _, err := c.Volume("data"); !errors.As(err, &se) || se.Status != 404 {
		t.Fatalf("deleted volume: %v, want 404", err)
	}
	if _, err := c.Volume("nosuch"); !errors.As(err, &se) || se.Status != 404 {
		t.Fatalf("missing volume: %v, want 404", err)
	}

	ev, err := c.Events()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind)
	}
	if want := []string{"volume-created", "volume-resized", "volume-resized", "access-changed", "volume-deleted"}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
}

// snapshot is what a bad request must leave alone.
type snapshot struct {
	Config  array.Config
	Volumes []array.VolumeStatus
}

func (f *fixture) snapshot() snapshot {
	return snapshot{f.g.Config(), f.g.Status().Volumes}
}

func TestBadRequests(t *testing.T) {
	f := start(t)
	before := f.snapshot()
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed JSON", "POST", "/api/v1/volumes", `{"name": "x", "size": `, 400},
		{"not an object", "POST", "/api/v1/volumes", `[1,2]`, 400},
		{"trailing data", "POST", "/api/v1/volumes", `{"name":"x","size":1048576} {}`, 400},
		{"empty body", "POST", "/api/v1/volumes", ``, 400},
		{"unknown field", "POST", "/api/v1/volumes", `{"name":"x","size":1048576,"colour":"red"}`, 400},
		{"zero size", "POST", "/api/v1/volumes", `{"name":"x","size":0}`, 400},
		{"negative size", "POST", "/api/v1/volumes", `{"name":"x","size":-1048576}`, 400},
		{"over 64 TiB", "POST", "/api/v1/volumes", `{"name":"x","size":70368744177665}`, 400},
		{"size overflows", "POST", "/api/v1/volumes", `{"name":"x","size":1e30}`, 400},
		{"odd size", "POST", "/api/v1/volumes", `{"name":"x","size":1000}`, 400},
		{"duplicate name", "POST", "/api/v1/volumes", `{"name":"vol1","size":1048576}`, 409},
		{"bad name", "POST", "/api/v1/volumes", `{"name":"Bad_Name!","size":1048576}`, 400},
		{"empty name", "POST", "/api/v1/volumes", `{"size":1048576}`, 400},
		{"bad access record", "POST", "/api/v1/volumes", `{"name":"x","size":1048576,"access":[{}]}`, 400},
		{"bad network", "POST", "/api/v1/volumes", `{"name":"x","size":1048576,"access":[{"network":"everyone"}]}`, 400},
		{"resize to zero", "PATCH", "/api/v1/volumes/vol1", `{"size":0}`, 400},
		{"resize over 64 TiB", "PATCH", "/api/v1/volumes/vol1", `{"size":140737488355328}`, 400},
		{"shrink without asking", "PATCH", "/api/v1/volumes/vol1", `{"size":1048576}`, 409},
		{"resize unknown field", "PATCH", "/api/v1/volumes/vol1", `{"size":134217728,"force":true}`, 400},
		{"resize missing volume", "PATCH", "/api/v1/volumes/nosuch", `{"size":134217728}`, 404},
		{"resize bad name", "PATCH", "/api/v1/volumes/BAD", `{"size":134217728}`, 400},
		{"access empty", "PUT", "/api/v1/volumes/vol1/access", `{"records":[]}`, 400},
		{"access wildcard record", "PUT", "/api/v1/volumes/vol1/access", `{"records":[{}]}`, 400},
		{"access malformed", "PUT", "/api/v1/volumes/vol1/access", `{"records":`, 400},
		{"access unknown field", "PUT", "/api/v1/volumes/vol1/access", `{"records":[{"network":"127.0.0.0/8","who":"me"}]}`, 400},
		{"access drops CHAP", "PUT", "/api/v1/volumes/vol1/access", `{"records":[{"network":"127.0.0.0/8"}]}`, 422},
		{"delete with a bad force", "DELETE", "/api/v1/volumes/vol1?force=maybe", ``, 400},
		{"unknown endpoint", "GET", "/api/v1/nothing", ``, 404},
		{"wrong method", "PUT", "/api/v1/group", `{}`, 405},
		{"wrong method on a volume", "POST", "/api/v1/volumes/vol1", `{}`, 405},
		{"body too large", "POST", "/api/v1/volumes", `{"name":"x","size":1048576,"access":[` + strings.Repeat(`{"network":"127.0.0.0/8"},`, 50000) + `{}]}`, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := f.request(t, tc.method, tc.path, tc.body, "basic")
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, b)
			}
			t.Log(wantJSONError(t, b))
			if after := f.snapshot(); !reflect.DeepEqual(before, after) {
				t.Fatalf("the group changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestNoSecretsInLog(t *testing.T) {
	f := start(t)
	c := f.dial(t)
	if _, err := c.Volumes(); err != nil {
		t.Fatal(err)
	}
	f.request(t, "GET", "/api/v1/group", "", "basic")
	f.request(t, "POST", "/api/v1/login", `{"password":"a-wrong-guess-123"}`, "none")
	body, _ := json.Marshal(groupapi.LoginRequest{Password: string(f.password)})
	_, b := f.request(t, "POST", "/api/v1/login", string(body), "none")
	var lr groupapi.LoginResponse
	json.Unmarshal(b, &lr)
	f.request(t, "GET", "/api/v1/stats", "", lr.Token)
	f.g.Close()
	log := f.log.String()
	if !strings.Contains(log, "/api/v1/login") || !strings.Contains(log, "status=401") || !strings.Contains(log, "status=200") {
		t.Fatalf("requests are not logged:\n%s", log)
	}
	for _, secret := range []string{string(f.password), "a-wrong-guess-123", lr.Token, "Basic ", "Bearer "} {
		if secret != "" && strings.Contains(log, secret) {
			t.Fatalf("the log holds a secret (%.6s...):\n%s", secret, log)
		}
	}
}

// TestStatsRates drives I/O at vol1 through one member port with
// iscsi-perf and checks that the sampled rates show it there, and
// nowhere on an idle port.
func TestStatsRates(t *testing.T) {
	perf, err := exec.LookPath("iscsi-perf")
	if err != nil {
		t.Skip("needs iscsi-perf (libiscsi-bin)")
	}
	f := start(t)
	c := f.dial(t)
	var vol array.VolumeStatus
	for _, v := range f.g.Status().Volumes {
		if v.Name == "vol1" {
			vol = v
		}
	}
	secret, err := os.ReadFile(array.CHAPSecretFile(f.g.Dir(), "vol1"))
	if err != nil {
		t.Fatal(err)
	}
	ms := f.g.Members()
	if len(ms) < 2 {
		t.Fatalf("want two members, have %d", len(ms))
	}
	busy, idle := ms[0].Ports()[0].Addr, ms[1].Ports()[0].Addr
	url := fmt.Sprintf("iscsi://%s%%%s@%s/%s/0", vol.CHAPUser, strings.TrimRight(string(secret), "\r\n"), busy, vol.IQN)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := peer.LibiscsiCommand(ctx, perf, "-m", "8", "-b", "8", "-t", "2", url)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	find := func(st groupapi.Stats) (port, idlePort groupapi.PortStats, v groupapi.VolumeStats) {
		for _, p := range st.Ports {
			switch p.Address {
			case busy:
				port = p
			case idle:
				idlePort = p
			}
		}
		for _, x := range st.Volumes {
			if x.Name == "vol1" {
				v = x
			}
		}
		return
	}
	var got bool
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !got {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("iscsi-perf ended (%v) before the stats showed its I/O:\n%s", err, out.String())
		case <-tick.C:
		}
		st, err := c.Stats()
		if err != nil {
			t.Fatal(err)
		}
		port, idlePort, v := find(st)
		if v.IOPS == 0 || port.IOPS == 0 {
			continue
		}
		got = true
		t.Logf("busy port %+v; idle port %+v; volume %+v", port.Rates, idlePort.Rates, v.Rates)
		if v.AvgLatencyUs <= 0 || port.AvgLatencyUs <= 0 {
			t.Errorf("no latency: port %+v, volume %+v", port.Rates, v.Rates)
		}
		if v.ReadMBps <= 0 || port.ReadMBps <= 0 {
			t.Errorf("no read rate (iscsi-perf reads): port %+v, volume %+v", port.Rates, v.Rates)
		}
		if idlePort.Address != idle || idlePort.Rates != (groupapi.Rates{}) {
			t.Errorf("idle port %+v has rates", idlePort)
		}
	}
	if err := <-exited; err != nil {
		t.Fatalf("iscsi-perf: %v\n%s", err, out.String())
	}
}
