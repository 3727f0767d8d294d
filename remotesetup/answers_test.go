package remotesetup

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/setupapi"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "member1", "m-1.lab", "0abc", strings.Repeat("a", 63)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-m", ".m", "Member", "m_1", "m 1", strings.Repeat("a", 64), "m:1"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) took it", bad)
		}
	}
}

func TestParseMemberIP(t *testing.T) {
	network := netip.MustParsePrefix("127.0.10.0/24")
	if p, err := ParseMemberIP(" 127.0.10.31/24 ", network); err != nil || p.String() != "127.0.10.31/24" {
		t.Fatalf("ParseMemberIP = %v, %v", p, err)
	}
	for in, says := range map[string]string{
		"127.0.10.31":     "no prefix length",
		"127.0.10.300/24": "not ADDRESS/PREFIX",
		"127.0.11.31/24":  "not on the member's network 127.0.10.0/24",
		"127.0.10.31/16":  "give the address with its prefix, /24",
		"127.0.10.31/25":  "give the address with its prefix, /24",
		"127.0.10.0/24":   "network or broadcast",
		"127.0.10.255/24": "network or broadcast",
		"::1/64":          "IPv4",
		"127.0.10.31/31":  "8 to 30",
		"bogus":           "not ADDRESS/PREFIX",
	} {
		_, err := ParseMemberIP(in, network)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("ParseMemberIP(%q) = %v; want it to say %q", in, err, says)
		}
	}
	// Without a network (before the member answers) only the form counts.
	if _, err := ParseMemberIP("127.0.11.31/24", netip.Prefix{}); err != nil {
		t.Errorf("ParseMemberIP without a network: %v", err)
	}
}

func TestParseGatewayAndGroupIP(t *testing.T) {
	ip := netip.MustParsePrefix("127.0.10.31/24")
	gw, err := ParseGateway("127.0.10.254", ip)
	if err != nil {
		t.Fatal(err)
	}
	for in, says := range map[string]string{
		"127.0.9.1":       "not in the member's subnet 127.0.10.0/24",
		"127.0.10.31":     "member's own address",
		"127.0.10.255":    "broadcast",
		"127.0.10.1:3260": "without a port",
		"x":               "not an IPv4 address",
	} {
		if _, err := ParseGateway(in, ip); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("ParseGateway(%q) = %v; want %q", in, err, says)
		}
	}
	if a, err := ParseGroupIP("127.0.10.1", ip, gw); err != nil || a.String() != "127.0.10.1" {
		t.Fatalf("ParseGroupIP = %v, %v", a, err)
	}
	if _, err := ParseGroupIP("127.0.10.254", ip, gw); err == nil || !strings.Contains(err.Error(), "gateway") {
		t.Errorf("group IP on the gateway: %v", err)
	}
	if _, err := ParseGroupIP("127.0.20.1", ip, gw); err == nil || !strings.Contains(err.Error(), "subnet") {
		t.Errorf("group IP off the subnet: %v", err)
	}
}

func TestCheckPasswordAndRAID(t *testing.T) {
	for pw, ok := range map[string]bool{"": false, "short": false, "1234567": false, "12345678": true, "two\nlines!": false, " leading-space": false, "trailing-space ": false, "tab\tinside": false, "ünïcode-pw": false, strings.Repeat("x", 256): false, strings.Repeat("x", 255): true} {
		if err := CheckPassword([]byte(pw)); (err == nil) != ok {
			t.Errorf("CheckPassword(%q) = %v", pw, err)
		}
	}
	for _, r := range setupapi.RAIDPolicies {
		if err := CheckRAID(r); err != nil {
			t.Error(err)
		}
	}
	if err := CheckRAID("raid0"); err == nil || !strings.Contains(err.Error(), "raid10, raid50, raid6, raid5") {
		t.Errorf("CheckRAID(raid0) = %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10GiB": 10 << 30, "512m": 512 << 20, "1T": 1 << 40, "4096": 4096, "8MB": 8 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1g", "ten", "65TiB", "1.5g"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) took it", bad)
		}
	}
}

// answersDir holds password files for the answers tests.
func answersDir(t *testing.T) (membership, admin string) {
	t.Helper()
	dir := t.TempDir()
	membership = filepath.Join(dir, "membership")
	admin = filepath.Join(dir, "admin")
	os.WriteFile(membership, []byte("member-pass-1\n"), 0o600)
	os.WriteFile(admin, []byte("admin-pass-12\n"), 0o600)
	return membership, admin
}

func goodYAML(membership, admin string) string {
	return `# answers for the lab's member
serial: HK0123456789
member-name: member1
ip: 127.0.10.31/24
gateway: 127.0.10.254
group: lab
group-ip: 127.0.10.1
create: true
membership-password-file: ` + membership + `
admin-password-file: ` + admin + `
raid: raid50
probe: [127.0.10.31]
`
}

func TestAnswersFile(t *testing.T) {
	membership, admin := answersDir(t)
	a, err := ParseAnswers("answers.yaml", []byte(goodYAML(membership, admin)))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := a.Check()
	if err != nil {
		t.Fatal(err)
	}
	want := setupapi.Request{
		MemberName: "member1", IP: "127.0.10.31/24", Gateway: "127.0.10.254", GroupName: "lab",
		GroupIP: "127.0.10.1", Mode: setupapi.ModeCreate, MembershipPassword: "member-pass-1",
		AdminPassword: "admin-pass-12", RAID: "raid50",
	}
	if plan.Request != want || plan.Serial != "HK0123456789" || len(a.Probe) != 1 || plan.Access != nil {
		t.Fatalf("plan = %+v\nwant %+v", plan, want)
	}
	info := setupapi.Info{Network: "127.0.10.0/24"}
	if err := a.CheckNetwork(plan, info); err != nil {
		t.Fatal(err)
	}
}

func TestAnswersFileErrors(t *testing.T) {
	membership, admin := answersDir(t)
	good := goodYAML(membership, admin)
	for name, tc := range map[string]struct {
		from, to string
		says     string
	}{
		"typo key":        {"gateway:", "gatway:", "answers.yaml line 5: unknown key \"gatway\" (a typo?"},
		"wrong type":      {"create: true", "create: [1]", "answers.yaml line 8: cannot unmarshal"},
		"bad ip":          {"ip: 127.0.10.31/24", "ip: 127.0.10.310/24", "answers.yaml line 4: ip: "},
		"bad name":        {"member-name: member1", "member-name: Member_1", "answers.yaml line 3: member-name: "},
		"gateway off":     {"gateway: 127.0.10.254", "gateway: 127.0.11.254", "answers.yaml line 5: gateway: 127.0.11.254 is not in the member's subnet"},
		"group ip off":    {"group-ip: 127.0.10.1", "group-ip: 127.0.99.1", "answers.yaml line 7: group-ip: "},
		"both modes":      {"create: true", "create: true\njoin: true", "answers.yaml line 9: join: say either create"},
		"bad raid":        {"raid: raid50", "raid: raid0", "answers.yaml line 11: raid: \"raid0\" is not a RAID policy"},
		"missing pw file": {"membership-password-file: " + membership, "membership-password-file: /nonexistent/pw", "answers.yaml line 9: membership-password-file: cannot read"},
		"missing group":   {"group: lab\n", "", "answers.yaml: group: is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			text := strings.Replace(good, tc.from, tc.to, 1)
			if text == good {
				t.Fatalf("%q not in the answers", tc.from)
			}
			a, err := ParseAnswers("answers.yaml", []byte(text))
			if err == nil {
				_, err = a.Check()
			}
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v; want it to say %q", err, tc.says)
			}
			if strings.Contains(err.Error(), "member-pass-1") || strings.Contains(err.Error(), "admin-pass-12") {
				t.Fatal("a password appears in the error")
			}
		})
	}
}

func TestAnswersWrongSubnetForMember(t *testing.T) {
	membership, admin := answersDir(t)
	text := strings.NewReplacer("127.0.10.", "127.0.20.").Replace(goodYAML(membership, admin))
	a, err := ParseAnswers("answers.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := a.Check()
	if err != nil {
		t.Fatal(err)
	}
	err = a.CheckNetwork(plan, setupapi.Info{Network: "127.0.10.0/24"})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "ip" || fe.Line != 4 || !strings.Contains(err.Error(), "not on the member's network 127.0.10.0/24") {
		t.Fatalf("CheckNetwork = %v", err)
	}
}

func TestAnswersPasswords(t *testing.T) {
	membership, admin := answersDir(t)
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	a := &Answers{Serial: "S", MemberName: "m", IP: "127.0.10.31/24", Gateway: "127.0.10.254", Group: "g", GroupIP: "127.0.10.1",
		Join: true, MembershipPasswordFile: short}
	if _, err := a.Check(); err == nil || !strings.Contains(err.Error(), "--membership-password-file: the password in "+short+" is 3 characters; use at least 8") {
		t.Fatalf("short password: %v", err)
	}
	// A join needs no admin password, unless a host volume is asked for.
	a.MembershipPasswordFile = membership
	plan, err := a.Check()
	if err != nil || plan.Request.AdminPassword != "" || plan.Request.Mode != setupapi.ModeJoin || plan.Request.RAID != "raid10" {
		t.Fatalf("join: %+v, %v", plan.Request, err)
	}
	a.HostVolume, a.HostVolumeSize, a.CHAPSecretOut = "data", "1GiB", filepath.Join(t.TempDir(), "data.chap")
	if _, err := a.Check(); err == nil || !strings.Contains(err.Error(), "--admin-password-file: missing") {
		t.Fatalf("host volume without an admin password: %v", err)
	}
	a.AdminPasswordFile = admin
	plan, err = a.Check()
	if err != nil || plan.Access == nil || plan.Access.Size != 1<<30 || string(plan.AdminPassword) != "admin-pass-12" || plan.Request.AdminPassword != "" {
		t.Fatalf("join with a host volume: %+v, %v", plan, err)
	}
	os.WriteFile(a.CHAPSecretOut, []byte("old"), 0o600)
	if _, err := a.Check(); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("an existing secret file: %v", err)
	}
}

func TestEmptyAnswersFile(t *testing.T) {
	if _, err := ParseAnswers("a.yaml", []byte("# nothing\n")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty file: %v", err)
	}
}
