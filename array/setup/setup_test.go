package setup

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/internal/peer"
	"github.com/hitkit/hitkit/setupapi"
)

// site is a lab site of uninitialised members with the setup service and
// the management API, as `hitkit lab up --members 0` runs it.
type site struct {
	lab  *labtest.Lab
	g    *array.Group
	svc  *Service
	dir  string
	base netip.Addr
}

// startSite starts a site on a base of labtest's SiteBases, away from
// the other packages' groups.
func startSite(t *testing.T, spec array.Spec) *site {
	t.Helper()
	s := &site{}
	s.lab = labtest.Start(t, s.options(spec))
	s.g, s.dir, s.base = s.lab.Group, s.lab.Dir, s.lab.Base
	return s
}

// options has a new setup service, since a service starts only once.
func (s *site) options(spec array.Spec) labtest.Options {
	s.svc = New()
	s.svc.RAIDDelay = 50 * time.Millisecond
	return labtest.Options{Spec: spec, Bases: labtest.SiteBases, Services: []array.Service{s.svc}, ManagementAPI: true}
}

// restart stops the site and serves it again from its directory.
func (s *site) restart(t *testing.T) {
	t.Helper()
	if err := s.lab.Reopen(s.options(array.Spec{})); err != nil {
		t.Fatal(err)
	}
	s.g = s.lab.Group
}

func (s *site) addr(n int) netip.Addr { return s.lab.Addr(byte(n)) }

// client talks to member m's setup endpoint, pinned to the announced
// fingerprint.
func (s *site) client(t *testing.T, m int) *setupapi.Client {
	t.Helper()
	url, fp, ok := s.svc.Endpoint(m)
	if !ok {
		t.Fatalf("member %d has no setup endpoint", m)
	}
	c, err := setupapi.Dial(url, fp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *site) createRequest() setupapi.Request {
	return setupapi.Request{
		MemberName: "alpha", IP: s.addr(101).String() + "/24", Gateway: s.addr(254).String(),
		GroupName: "site", GroupIP: s.addr(5).String(), Mode: setupapi.ModeCreate,
		MembershipPassword: "member-pass-123", AdminPassword: "admin-pass-123", RAID: "raid6",
	}
}

func (s *site) joinRequest() setupapi.Request {
	return setupapi.Request{
		MemberName: "beta", IP: s.addr(21).String() + "/24", Gateway: s.addr(254).String(),
		GroupName: "site", GroupIP: s.addr(5).String(), Mode: setupapi.ModeJoin,
		MembershipPassword: "member-pass-123", RAID: "raid10",
	}
}

// waitDone follows a setup's progress until it ends, and wants it done.
func waitDone(t *testing.T, c *setupapi.Client) setupapi.Progress {
	t.Helper()
	var steps []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p, err := c.Progress()
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) == 0 || steps[len(steps)-1] != p.Step {
			steps = append(steps, p.Step)
		}
		switch p.State {
		case setupapi.StateDone:
			if p.Percent != 100 || p.Result == nil {
				t.Fatalf("done without 100%% and a result: %+v", p)
			}
			return p
		case setupapi.StateFailed:
			t.Fatalf("setup failed at %q: %s", p.Step, p.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("setup did not finish in 30 s; steps seen %q", steps)
	return setupapi.Progress{}
}

// statusError wants err to be an answer with the given status and field.
func statusError(t *testing.T, err error, status int, field string) *setupapi.StatusError {
	t.Helper()
	var se *setupapi.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a %d answer", err, status)
	}
	if se.Status != status || se.Field != field || se.Message == "" {
		t.Fatalf("answer %d field %q (%q), want %d field %q with a message", se.Status, se.Field, se.Message, status, field)
	}
	return se
}

func memberState(t *testing.T, c *setupapi.Client) string {
	t.Helper()
	info, err := c.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestCreateThenJoin forms a group on a site that holds none, then joins
// a second member: the volume written before the join reads back
// identical with its pages on both members, new volumes span both, and
// hosts log in through the group IP.
func TestCreateThenJoin(t *testing.T) {
	s := startSite(t, array.Spec{Members: -1, Uninitialized: 2, PageSize: 64 << 10})
	if s.g.Name() != "" || s.g.GroupAddr() != "" || dialable(netip.AddrPortFrom(s.addr(1), 3260).String()) {
		t.Fatal("a site with no group serves a group")
	}
	c1 := s.client(t, 1)
	info, err := c1.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "uninitialized" || info.Address != s.addr(11).String() || info.Network != s.base.String()+"/24" ||
		info.Ports != 2 || len(info.MACs) != 2 || info.RawCapacity != array.DefaultMemberCapacity || info.Serial == "" {
		t.Fatalf("info: %+v", info)
	}

	// Create the group on member 1, at its own address and group IP.
	p, err := c1.Initialize(s.createRequest())
	if err != nil {
		t.Fatal(err)
	}
	if p.State != setupapi.StateRunning {
		t.Fatalf("initialize answered %+v", p)
	}
	res := waitDone(t, c1).Result
	wantCap := int64(array.DefaultMemberCapacity) / 14 * 11 / (1 << 20) * (1 << 20)
	if res.GroupName != "site" || res.GroupIP != s.addr(5).String()+":3260" || res.ManagementAddr != s.addr(5).String()+":8443" ||
		res.Member != 1 || res.MemberName != "alpha" || res.Capacity != wantCap || res.ManagementFingerprint == "" {
		t.Fatalf("result: %+v (capacity want %d)", res, wantCap)
	}
	if st := memberState(t, c1); st != "initialized" {
		t.Fatalf("member 1 is %s after setup", st)
	}
	_, err = c1.Initialize(s.createRequest())
	statusError(t, err, http.StatusConflict, "")
	for _, a := range []netip.Addr{s.addr(101), s.addr(102), s.addr(5)} {
		if !dialable(netip.AddrPortFrom(a, 3260).String()) {
			t.Fatalf("nothing listens at %s:3260 after the create", a)
		}
	}
	pw, _ := os.ReadFile(array.MembershipPasswordFile(s.dir))
	if strings.TrimSpace(string(pw)) != "member-pass-123" {
		t.Fatal("the membership password file does not hold the password set")
	}
	if fi, err := os.Stat(array.MembershipPasswordFile(s.dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("membership password file: %v %v", fi, err)
	}

	// A volume made through the management API with a host-chosen secret.
	api, err := groupapi.Dial(res.ManagementAddr, res.ManagementFingerprint, []byte("admin-pass-123"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateVolume(groupapi.CreateVolume{Name: "early", Size: 8 << 20, CHAPSecret: "short"}); err == nil {
		t.Fatal("a 5-character CHAP secret was accepted")
	}
	if _, err := api.CreateVolume(groupapi.CreateVolume{Name: "early", Size: 8 << 20, CHAPSecret: "host-chosen-secret-1"}); err != nil {
		t.Fatal(err)
	}
	secret, _ := os.ReadFile(array.CHAPSecretFile(s.dir, "early"))
	if strings.TrimSpace(string(secret)) != "host-chosen-secret-1" {
		t.Fatal("the volume's secret file does not hold the host's secret")
	}
	vol, err := s.g.Volume("early")
	if err != nil {
		t.Fatal(err)
	}
	payload := randomBytes(3<<20+4096, 7) // across pages, ending mid-page
	if _, err := vol.WriteAt(payload, 100<<10); err != nil {
		t.Fatal(err)
	}
	if pm := vol.PageMap(); !slices.Equal(pm.Members, []int{1}) {
		t.Fatalf("before the join the volume is on %v", pm.Members)
	}

	// Join member 2: a wrong password changes nothing, then it joins.
	c2 := s.client(t, 2)
	bad := s.joinRequest()
	bad.MembershipPassword = "not-the-password"
	_, err = c2.Initialize(bad)
	statusError(t, err, http.StatusForbidden, "membership_password")
	if st := memberState(t, c2); st != "uninitialized" {
		t.Fatalf("member 2 is %s after a wrong password", st)
	}
	bad = s.joinRequest()
	bad.GroupName = "other"
	_, err = c2.Initialize(bad)
	statusError(t, err, http.StatusBadRequest, "group_name")
	bad = s.joinRequest()
	bad.AdminPassword = "admin-pass-123"
	_, err = c2.Initialize(bad)
	statusError(t, err, http.StatusBadRequest, "admin_password")
	if _, err := c2.Initialize(s.joinRequest()); err != nil {
		t.Fatal(err)
	}
	res2 := waitDone(t, c2).Result
	if res2.Member != 2 || res2.MemberName != "beta" || res2.GroupIP != res.GroupIP || res2.Capacity != int64(array.DefaultMemberCapacity)/14*6/(1<<20)*(1<<20) {
		t.Fatalf("join result: %+v", res2)
	}

	checkSpread := func(t *testing.T) {
		t.Helper()
		vol, err := s.g.Volume("early")
		if err != nil {
			t.Fatal(err)
		}
		pm := vol.PageMap()
		if !slices.Equal(pm.Members, []int{1, 2}) {
			t.Fatalf("after the join the volume is on %v", pm.Members)
		}
		got := make([]byte, len(payload))
		if _, err := vol.ReadAt(got, 100<<10); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatal("the volume's data changed in the rebalance")
		}
		alloc := vol.AllocatedBytes()
		// 49 pages of 64 KiB hold data; each member holds about half,
		// and member 1 no longer keeps the pages it gave away.
		if alloc[2] < 20*(64<<10) || alloc[1] > 30*(64<<10) {
			t.Fatalf("allocated per member after the rebalance: %v", alloc)
		}
	}
	checkSpread(t)
	apiPM, err := api.PageMap("early")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(apiPM.Members, []int{1, 2}) || len(apiPM.Ports[2]) != 2 || apiPM.Ports[2][0] != s.addr(21).String()+":3260" {
		t.Fatalf("page map from the API: %+v", apiPM)
	}
	later, err := api.CreateVolume(groupapi.CreateVolume{Name: "later", Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(later.Members, []int{1, 2}) {
		t.Fatalf("a volume made after the join is on %v", later.Members)
	}

	t.Run("iscsi login through the group IP", func(t *testing.T) {
		peer.Require(t, "iscsi-inq")
		for _, name := range []string{"early", "later"} {
			secret, _ := os.ReadFile(array.CHAPSecretFile(s.dir, name))
			url := fmt.Sprintf("iscsi://%s%%%s@%s/%s/0", name, strings.TrimSpace(string(secret)), res.GroupIP, array.VolumeIQN("site", name))
			out, err := peer.IscsiInq(t, url)
			if err != nil || !strings.Contains(out, "HITKIT") {
				t.Fatalf("iscsi-inq %s through the group IP: %v\n%s", name, err, out)
			}
		}
	})

	// The site comes back as it was: both members in the group, the
	// volume spread and whole, and no setup endpoint any more.
	s.restart(t)
	cfg := s.g.Config()
	if cfg.Name != "site" || cfg.GroupIP != s.addr(5) || !cfg.Members[0].Initialized || !cfg.Members[1].Initialized ||
		cfg.Members[0].IP.String() != s.addr(101).String()+"/24" || cfg.Members[1].RAID != "raid10" {
		t.Fatalf("configuration after restart: %+v", cfg)
	}
	checkSpread(t)
	if _, _, ok := s.svc.Endpoint(1); ok {
		t.Fatal("an initialised member serves a setup endpoint after a restart")
	}
}

// TestAnnouncedFingerprint checks that the fingerprint the service
// announces is the certificate it serves, and that it survives restarts.
func TestAnnouncedFingerprint(t *testing.T) {
	s := startSite(t, array.Spec{Members: -1, Uninitialized: 1})
	url, fp, ok := s.svc.Endpoint(1)
	if !ok || url != "https://"+s.addr(11).String()+":8444" {
		t.Fatalf("endpoint %q %v", url, ok)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	conn.Close()
	served := strings.ToUpper(fmt.Sprintf("%x", sum[:]))
	if strings.ReplaceAll(fp, ":", "") != served {
		t.Fatalf("announced %s, served %s", fp, served)
	}
	st := s.g.Status()
	if st.Members[0].SetupEndpoint != url || st.Members[0].SetupFingerprint != fp {
		t.Fatalf("status shows %q %q", st.Members[0].SetupEndpoint, st.Members[0].SetupFingerprint)
	}
	for _, name := range []string{"cert.pem", "key.pem"} {
		fi, err := os.Stat(filepath.Join(CertDir(s.dir, 1), "mgmt", name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, fi, err)
		}
	}
	s.restart(t)
	if _, fp2, _ := s.svc.Endpoint(1); fp2 != fp {
		t.Fatal("the certificate changed across a restart")
	}
	// A client pinned to another fingerprint is refused by the client.
	wrong := "00" + fp[2:]
	if strings.HasPrefix(fp, "00") {
		wrong = "11" + fp[2:]
	}
	c, _ := setupapi.Dial(url, wrong)
	if _, err := c.Info(); !errors.Is(err, setupapi.ErrFingerprint) {
		t.Fatalf("a wrong pin: %v", err)
	}
}

// TestRefusals: every refused request names what is wrong, changes
// nothing, and a corrected request then works.
func TestRefusals(t *testing.T) {
	s := startSite(t, array.Spec{Members: -1, Uninitialized: 2})
	c1 := s.client(t, 1)

	t.Run("bad fields", func(t *testing.T) {
		cases := []struct {
			field  string
			change func(*setupapi.Request)
		}{
			{"mode", func(r *setupapi.Request) { r.Mode = "adopt" }},
			{"member_name", func(r *setupapi.Request) { r.MemberName = "Bad_Name" }},
			{"member_name", func(r *setupapi.Request) { r.MemberName = "" }},
			{"ip", func(r *setupapi.Request) { r.IP = "nonsense" }},
			{"ip", func(r *setupapi.Request) { r.IP = "198.18.0.5/24" }},
			{"ip", func(r *setupapi.Request) { r.IP = s.addr(101).String() + "/16" }},
			{"ip", func(r *setupapi.Request) { r.IP = s.addr(254).String() + "/24" }}, // its second port falls off the subnet
			{"ip", func(r *setupapi.Request) { r.IP = s.addr(4).String() + "/24" }},   // its second port is the group IP
			{"gateway", func(r *setupapi.Request) { r.Gateway = "127.1.2.3" }},
			{"group_name", func(r *setupapi.Request) { r.GroupName = "-x" }},
			{"group_ip", func(r *setupapi.Request) { r.GroupIP = s.addr(5).String() + ":3260" }},
			{"group_ip", func(r *setupapi.Request) { r.GroupIP = "127.1.0.5" }},
			{"raid", func(r *setupapi.Request) { r.RAID = "raid0" }},
			{"admin_password", func(r *setupapi.Request) { r.AdminPassword = "short" }},
			{"admin_password", func(r *setupapi.Request) { r.AdminPassword = "" }},
			{"membership_password", func(r *setupapi.Request) { r.MembershipPassword = "tab\tinside" }},
		}
		for _, tc := range cases {
			r := s.createRequest()
			tc.change(&r)
			_, err := c1.Initialize(r)
			statusError(t, err, http.StatusBadRequest, tc.field)
		}
	})

	t.Run("unknown field and malformed body", func(t *testing.T) {
		url, _, _ := s.svc.Endpoint(1)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
		for body, want := range map[string]int{
			`{"member_name":"a","surprise":1}`: 400,
			`{"member_name":`:                  400,
			``:                                 400,
			`{} {}`:                            400,
		} {
			resp, err := hc.Post(url+"/setup/v1/initialize", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("body %q: status %d, want %d", body, resp.StatusCode, want)
			}
		}
		resp, err := hc.Get(url + "/setup/v1/initialize")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET initialize: %d", resp.StatusCode)
		}
	})

	t.Run("join with no group", func(t *testing.T) {
		r := s.joinRequest()
		r.IP = s.addr(101).String() + "/24"
		_, err := c1.Initialize(r)
		statusError(t, err, http.StatusConflict, "mode")
	})

	t.Run("group IP in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(s.addr(7), 3260).String())
		if err != nil {
			t.Fatal(err)
		}
		r := s.createRequest()
		r.GroupIP = s.addr(7).String()
		_, err = c1.Initialize(r)
		ln.Close()
		statusError(t, err, http.StatusConflict, "group_ip")
	})

	t.Run("member IP in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(s.addr(102), 3260).String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c1.Initialize(s.createRequest()) // its second port is .102
		ln.Close()
		statusError(t, err, http.StatusConflict, "ip")
		r := s.createRequest()
		r.IP = s.addr(21).String() + "/24" // member 2's address, where its setup endpoint answers
		_, err = c1.Initialize(r)
		statusError(t, err, http.StatusConflict, "ip")
	})

	if st := memberState(t, c1); st != "uninitialized" {
		t.Fatalf("member 1 is %s after refusals", st)
	}
	if array.Exists(s.dir) {
		if cfg, _ := array.LoadConfig(s.dir); cfg.Formed() {
			t.Fatal("group.json holds a group after refusals")
		}
	}

	// One setup at a time: member 2 waits while member 1 sets up.
	s.svc.RAIDDelay = time.Second
	if _, err := c1.Initialize(s.createRequest()); err != nil {
		t.Fatal(err)
	}
	c2 := s.client(t, 2)
	_, err := c2.Initialize(s.joinRequest())
	statusError(t, err, http.StatusConflict, "")
	if st := memberState(t, c1); st != "initializing" {
		t.Fatalf("member 1 is %s during its setup", st)
	}
	waitDone(t, c1)

	t.Run("create on a site that has a group", func(t *testing.T) {
		r := s.createRequest()
		r.MemberName, r.IP = "gamma", s.addr(21).String()+"/24"
		_, err := c2.Initialize(r)
		se := statusError(t, err, http.StatusConflict, "mode")
		if !strings.Contains(se.Message, "site") || !strings.Contains(se.Message, "join") {
			t.Fatalf("message %q does not name the group and say to join it", se.Message)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		now := time.Now()
		s.svc.Guesses.Max, s.svc.Guesses.Now = 3, func() time.Time { return now }
		bad := s.joinRequest()
		bad.MembershipPassword = "guess-number-x"
		for range 3 {
			_, err := c2.Initialize(bad)
			statusError(t, err, http.StatusForbidden, "membership_password")
		}
		_, err := c2.Initialize(s.joinRequest()) // the right password, but too late
		se := statusError(t, err, http.StatusTooManyRequests, "")
		if se.RetryAfter < time.Second || se.RetryAfter > time.Minute {
			t.Fatalf("Retry-After %v", se.RetryAfter)
		}
		if st := memberState(t, c2); st != "uninitialized" {
			t.Fatalf("member 2 is %s", st)
		}
		now = now.Add(time.Minute)
		if _, err := c2.Initialize(s.joinRequest()); err != nil {
			t.Fatalf("after the wait: %v", err)
		}
		waitDone(t, c2)
	})
}

// TestStopMidSetup: a site stopped while a member initialises its RAID
// comes back with the member uninitialised, and the setup then works.
func TestStopMidSetup(t *testing.T) {
	s := startSite(t, array.Spec{Members: -1, Uninitialized: 1})
	s.svc.RAIDDelay = 10 * time.Second
	c := s.client(t, 1)
	if _, err := c.Initialize(s.createRequest()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := c.Progress()
		if err != nil {
			t.Fatal(err)
		}
		if p.Step == array.StepRAID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached the RAID step: %+v", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.restart(t)
	if cfg := s.g.Config(); cfg.Formed() || cfg.Members[0].Initialized {
		t.Fatalf("the site holds a group after a setup stopped mid-way: %+v", cfg)
	}
	c = s.client(t, 1)
	if st := memberState(t, c); st != "uninitialized" {
		t.Fatalf("member is %s", st)
	}
	if _, err := c.Initialize(s.createRequest()); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
}

// TestDefaultLabJoin: the default lab (2 members and 1 waiting) has a
// membership password, and its third member joins it.
func TestDefaultLabJoin(t *testing.T) {
	s := startSite(t, array.Spec{Volumes: []array.VolumeSpec{{Name: "vol1", Size: 4 << 20}}})
	pw, err := os.ReadFile(array.MembershipPasswordFile(s.dir))
	if err != nil {
		t.Fatal(err)
	}
	if st := s.g.Status(); st.MembershipPasswordFile != array.MembershipPasswordFile(s.dir) {
		t.Fatalf("status: membership password file %q", st.MembershipPasswordFile)
	}
	vol, _ := s.g.Volume("vol1")
	payload := randomBytes(4<<20, 3)
	if _, err := vol.WriteAt(payload, 0); err != nil {
		t.Fatal(err)
	}
	c := s.client(t, 3)
	r := setupapi.Request{
		MemberName: "member3", IP: s.addr(31).String() + "/24", Gateway: s.addr(254).String(),
		GroupName: array.DefaultGroupName, GroupIP: s.addr(1).String(), Mode: setupapi.ModeJoin,
		MembershipPassword: strings.TrimSpace(string(pw)), RAID: "raid50",
	}
	if _, err := c.Initialize(r); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	pm, _ := s.g.PageMap("vol1")
	if !slices.Equal(pm.Members, []int{1, 2, 3}) {
		t.Fatalf("page map after the join: %v", pm.Members)
	}
	got := make([]byte, len(payload))
	if _, err := vol.ReadAt(got, 0); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("data after the join differs (%v)", err)
	}
	if !dialable(s.addr(31).String()+":3260") || !dialable(s.addr(32).String()+":3260") {
		t.Fatal("the joined member's ports do not listen")
	}
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}
