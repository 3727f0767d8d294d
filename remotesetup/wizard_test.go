package remotesetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/setupapi"
)

// typed is a prompter fed with lines, as a user would type them; its
// "no echo" reads take the next line too.
func typed(lines ...string) (*Prompter, *bytes.Buffer) {
	out := &bytes.Buffer{}
	p := &Prompter{In: strings.NewReader(strings.Join(lines, "\n") + "\n"), Out: out}
	p.ReadPassword = func() ([]byte, error) {
		s, err := p.line()
		if errors.Is(err, ErrInputEnded) {
			return nil, err
		}
		return []byte(s), err
	}
	return p, out
}

// freeLoopback is a random 127.0.x.0/24 for one test's addresses.
func freeLoopback() string {
	return fmt.Sprintf("127.0.%d.", 200+rand.IntN(50))
}

func TestWizardAsksAgain(t *testing.T) {
	base := freeLoopback()
	// Something answers on the first group IP typed: a create must refuse it.
	busy, err := net.Listen("tcp", base+"5:3260")
	if err != nil {
		t.Skipf("cannot listen on %s5:3260: %v", base, err)
	}
	defer busy.Close()
	p, out := typed(
		"Bad_Name", "m1", // a name with upper case and '_', then a good one
		base+"31", "127.0.99.31/24", "", // no prefix, off the network, then the default
		"", // gateway: the default, .254
		"lab",
		"merge", "create",
		base+"5",     // in use: mode and group IP are asked again
		"", base+"1", // create again (the default), then a free address
		"short", "membership-1", "membership-2", "membership-1", "membership-1", // too short, differ, then equal
		"admin-pass-1", "admin-pass-1",
		"raid0", "raid6",
	)
	w := &Wizard{P: p}
	tg := Target{Array: discovery.Array{Serial: "HK1"}, Info: setupapi.Info{Address: base + "31", Network: base + "0/24", Model: "PS-Lab"}}
	plan, err := w.ask(context.Background(), tg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := setupapi.Request{
		MemberName: "m1", IP: base + "31/24", Gateway: base + "254", GroupName: "lab", GroupIP: base + "1",
		Mode: setupapi.ModeCreate, MembershipPassword: "membership-1", AdminPassword: "admin-pass-1", RAID: "raid6",
	}
	if plan.Request != want {
		t.Fatalf("plan %+v\nwant %+v\n%s", plan.Request, want, out)
	}
	for _, says := range []string{
		`"Bad_Name" is not a valid name`,
		"has no prefix length",
		"127.0.99.31 is not on the member's network",
		"answer create or join",
		base + "5 is in use: something answers on " + base + "5:3260",
		"the password is 5 characters; use at least 8",
		"the two passwords differ",
		`"raid0" is not a RAID policy`,
	} {
		if !strings.Contains(out.String(), says) {
			t.Errorf("the wizard did not say %q:\n%s", says, out)
		}
	}
	if strings.Contains(out.String(), "membership-1") || strings.Contains(out.String(), "admin-pass-1") {
		t.Error("a password was echoed")
	}
	var summary bytes.Buffer
	PrintSummary(&summary, tg, plan)
	if !strings.Contains(summary.String(), "255.255.255.0 (/24)") || strings.Contains(summary.String(), "admin-pass-1") {
		t.Errorf("summary:\n%s", summary.String())
	}
}

func TestWizardJoinNeedsAGroup(t *testing.T) {
	base := freeLoopback()
	group, err := net.Listen("tcp", base+"1:3260")
	if err != nil {
		t.Skipf("cannot listen on %s1:3260: %v", base, err)
	}
	defer group.Close()
	p, out := typed("m2", base+"32/24", base+"254", "lab", "join", base+"9", "", base+"1", "membership-1", "membership-1", "")
	plan, err := (&Wizard{P: p}).ask(context.Background(), Target{Info: setupapi.Info{Address: base + "32", Network: base + "0/24"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if plan.Request.Mode != setupapi.ModeJoin || plan.Request.GroupIP != base+"1" || plan.Request.AdminPassword != "" || plan.Request.RAID != "raid10" {
		t.Fatalf("plan %+v", plan.Request)
	}
	if !strings.Contains(out.String(), "no group answers at "+base+"9") {
		t.Errorf("a join to an empty address was not refused:\n%s", out)
	}
}

func TestWizardInputEnds(t *testing.T) {
	p, _ := typed("m1")
	_, err := (&Wizard{P: p}).ask(context.Background(), Target{Info: setupapi.Info{Address: "127.0.10.31", Network: "127.0.10.0/24"}})
	if !errors.Is(err, ErrInputEnded) {
		t.Fatalf("err %v; want ErrInputEnded", err)
	}
}

func TestPickArray(t *testing.T) {
	arrays := []discovery.Array{{Serial: "HKA", Address: "127.0.10.31"}, {Serial: "HKB", Address: "127.0.10.41"}}
	p, out := typed("3", "hkb")
	a, err := (&Wizard{P: p, Arrays: arrays}).pickArray()
	if err != nil || a.Serial != "HKB" {
		t.Fatalf("picked %+v, %v", a, err)
	}
	if !strings.Contains(out.String(), "HKA") || !strings.Contains(out.String(), `"3" is neither a number from 1 to 2`) {
		t.Errorf("output:\n%s", out)
	}
	if _, err := (&Wizard{P: p}).pickArray(); err == nil || !strings.Contains(err.Error(), "no uninitialised array answered") {
		t.Errorf("no arrays: %v", err)
	}
	if _, err := FindSerial(arrays, "HKC"); err == nil || !strings.Contains(err.Error(), "found HKA, HKB") {
		t.Errorf("FindSerial: %v", err)
	}
}

func TestConfirm(t *testing.T) {
	p, out := typed("maybe", "", "yes")
	if ok, err := p.Confirm("go", false); err != nil || ok {
		t.Fatalf("Confirm = %v, %v; want the default no after a wrong answer", ok, err)
	}
	if ok, err := p.Confirm("go", false); err != nil || !ok {
		t.Fatalf("Confirm = %v, %v", ok, err)
	}
	if !strings.Contains(out.String(), "answer yes or no") {
		t.Errorf("output:\n%s", out)
	}
}

func TestDefaults(t *testing.T) {
	ip := netip.MustParsePrefix("127.0.10.31/24")
	if got := defaultGroupIP(ip, netip.MustParseAddr("127.0.10.254")); got != "127.0.10.1" {
		t.Errorf("defaultGroupIP = %q", got)
	}
	if got := defaultGroupIP(netip.MustParsePrefix("127.0.10.1/24"), netip.Addr{}); got != "" {
		t.Errorf("defaultGroupIP on the member's address = %q", got)
	}
	if defaultMemberName("HK01AB") != "hk01ab" || defaultMemberName("HK_1") != "" {
		t.Error("defaultMemberName")
	}
}

func TestAskHostAccess(t *testing.T) {
	p, _ := typed("n")
	if h, err := (&Wizard{P: p}).AskHostAccess(&Plan{}, "iqn.2026-11.org.hitkit:h"); err != nil || h != nil {
		t.Fatalf("declined: %+v, %v", h, err)
	}
	dir := t.TempDir()
	// A join has no admin password yet: it is asked for, once.
	p, out := typed("", "Data", "data", "ten", "", "", dir+"/data.chap", "admin-pass-1")
	plan := &Plan{}
	h, err := (&Wizard{P: p}).AskHostAccess(plan, "iqn.2026-11.org.hitkit:h")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := HostAccess{Volume: "data", Size: 10 << 30, InitiatorName: "iqn.2026-11.org.hitkit:h", SecretFile: dir + "/data.chap"}
	if *h != want || string(plan.AdminPassword) != "admin-pass-1" {
		t.Fatalf("got %+v, admin %q\n%s", *h, plan.AdminPassword, out)
	}
	if !strings.Contains(out.String(), `"Data" is not a valid name`) || !strings.Contains(out.String(), `"ten" is not a size`) {
		t.Errorf("output:\n%s", out)
	}
}
