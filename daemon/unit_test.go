package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/mpio"
)

func TestPlanPaths(t *testing.T) {
	// A loopback portal is reached from loopback sources; the lab's
	// tests use 127.0.0.2 and 127.0.0.3 as two NICs.
	const portal = "127.0.0.1:3260"
	tests := []struct {
		name     string
		req      ConnectRequest
		paths    []mpio.PathSpec
		sessions int
		err      string
	}{
		{name: "defaults", req: ConnectRequest{Portal: portal},
			paths: []mpio.PathSpec{{SourceAddr: "127.0.0.1"}}, sessions: 4},
		{name: "two sources", req: ConnectRequest{Portal: portal, Sources: []string{"127.0.0.2", "127.0.0.3"}},
			paths: []mpio.PathSpec{{SourceAddr: "127.0.0.2"}, {SourceAddr: "127.0.0.3"}}, sessions: 4},
		{name: "capped", req: ConnectRequest{Portal: portal, SessionsPerSlice: 4, MaxSessions: 6},
			paths: []mpio.PathSpec{{SourceAddr: "127.0.0.1"}}, sessions: 6},
		{name: "named NIC binds it", req: ConnectRequest{Portal: portal, NICs: []string{"lo"}},
			paths: []mpio.PathSpec{{SourceAddr: "127.0.0.1", Device: "lo"}}, sessions: 4},
		{name: "exclude", req: ConnectRequest{Portal: portal, Sources: []string{"127.0.0.2", "127.0.0.3"}, ExcludeSubnets: []string{"127.0.0.3/32"}},
			paths: []mpio.PathSpec{{SourceAddr: "127.0.0.2"}}, sessions: 4},
		{name: "all filtered", req: ConnectRequest{Portal: portal, Sources: []string{"127.0.0.2"}, ExcludeSubnets: []string{"127.0.0.0/8"}}, err: "exclude"},
		{name: "unknown NIC", req: ConnectRequest{Portal: portal, NICs: []string{"hk-nonexistent0"}}, err: "hk-nonexistent0"},
		{name: "bad source", req: ConnectRequest{Portal: portal, Sources: []string{"nope"}}, err: "source address"},
		{name: "bad subnet", req: ConnectRequest{Portal: portal, IncludeSubnets: []string{"1.2.3.4"}}, err: "subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := planPaths(tt.req)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(plan.Paths, tt.paths) || plan.Sessions != tt.sessions {
				t.Fatalf("plan = %+v, want paths %+v and %d sessions", plan, tt.paths, tt.sessions)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	ok := ConnectRequest{Name: "vol1", Portal: "127.0.0.1", Target: "iqn.x:vol1"}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*ConnectRequest){
		func(r *ConnectRequest) { r.Name = "../etc" },
		func(r *ConnectRequest) { r.Name = "" },
		func(r *ConnectRequest) { r.Portal = "" },
		func(r *ConnectRequest) { r.Policy = "fastest" },
		func(r *ConnectRequest) { r.NoPathTimeout = "soon" },
		func(r *ConnectRequest) { r.Sources, r.NICs = []string{"127.0.0.2"}, []string{"lo"} },
		func(r *ConnectRequest) { r.GroupAdminPassword = "pw" },
		func(r *ConnectRequest) { r.GroupFingerprint = strings.Repeat("ab", 32) },
		func(r *ConnectRequest) { r.GroupAdminPassword, r.GroupFingerprint = "pw", "zz" },
	} {
		r := ok
		bad(&r)
		if err := r.Check(); err == nil {
			t.Errorf("%+v passed the check", r)
		}
	}
}

// TestStore checks that the saved list never holds a secret, and that the
// secret file is private.
func TestStore(t *testing.T) {
	s := &store{dir: filepath.Join(t.TempDir(), "state")}
	r := ConnectRequest{Name: "vol1", Portal: "127.0.0.1", Target: "iqn.x:vol1", CHAPUser: "u", CHAPSecret: "s3cret-value", LoginAtBoot: true,
		GroupFingerprint: strings.Repeat("ab", 32), GroupAdminPassword: "admin-pw-value"}
	if err := s.put(r); err != nil {
		t.Fatal(err)
	}
	if err := s.put(ConnectRequest{Name: "vol2", Portal: "127.0.0.1", Target: "iqn.x:vol2"}); err != nil {
		t.Fatal(err)
	}
	list, _ := os.ReadFile(s.listPath())
	if strings.Contains(string(list), "s3cret-value") || strings.Contains(string(list), "admin-pw-value") {
		t.Fatalf("volumes.json holds the secret: %s", list)
	}
	fi, err := os.Stat(s.secretPath("vol1"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v", err, fi.Mode())
	}
	if fi, err := os.Stat(s.groupPath("vol1")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("group password file: %v", err)
	}
	got, err := s.load()
	if err != nil || len(got) != 2 || !reflect.DeepEqual(got[0], r) {
		t.Fatalf("load = %+v, %v", got, err)
	}
	if err := s.remove("vol1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.groupPath("vol1")); !os.IsNotExist(err) {
		t.Fatalf("group password file left after remove: %v", err)
	}
	if _, err := os.Stat(s.secretPath("vol1")); !os.IsNotExist(err) {
		t.Fatalf("secret file left after remove: %v", err)
	}
	if got, _ := s.load(); len(got) != 1 || got[0].Name != "vol2" {
		t.Fatalf("after remove: %+v", got)
	}
}

func TestSessionCount(t *testing.T) {
	for _, tc := range []struct{ perSlice, max, members, want int }{
		{0, 0, 1, 2}, {0, 0, 2, 4}, {0, 0, 3, 6}, {0, 0, 4, 6}, {3, 20, 3, 9}, {1, 0, 0, 1},
	} {
		r := ConnectRequest{SessionsPerSlice: tc.perSlice, MaxSessions: tc.max}
		if got := sessionCount(r, tc.members); got != tc.want {
			t.Errorf("%+v: %d sessions, want %d", tc, got, tc.want)
		}
	}
	if got := (ConnectRequest{Portal: "10.0.0.5:3260"}).GroupAPIAddr(); got != "10.0.0.5" {
		t.Errorf("default group API %q", got)
	}
}
