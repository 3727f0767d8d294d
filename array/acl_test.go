package array

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAccessList(t *testing.T) {
	local := netip.MustParseAddr("127.0.0.5")
	other := netip.MustParseAddr("198.18.0.9")
	acl := AccessList{
		{Initiator: "iqn.2026-11.org.example:host1"},
		{CHAPUser: "vol1"},
		{Network: netip.MustParsePrefix("198.18.0.0/15"), Initiator: "iqn.2026-11.org.example:host2"},
	}
	cases := []struct {
		initiator, user string
		addr            netip.Addr
		ok              bool
	}{
		{"iqn.2026-11.org.example:host1", "", local, true},
		{"IQN.2026-11.ORG.EXAMPLE:HOST1", "", local, true}, // iSCSI names are case-insensitive
		{"iqn.2026-11.org.example:other", "vol1", local, true},
		{"iqn.2026-11.org.example:other", "vol2", local, false},
		{"iqn.2026-11.org.example:host2", "", other, true},
		{"iqn.2026-11.org.example:host2", "", local, false}, // right name, wrong network
		{"iqn.2026-11.org.example:host2", "", netip.MustParseAddr("::ffff:198.18.1.1"), true},
	}
	for _, c := range cases {
		err := acl.Check(c.initiator, c.user, c.addr)
		if (err == nil) != c.ok {
			t.Errorf("Check(%s, %q, %s) = %v; want ok %v", c.initiator, c.user, c.addr, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "no access record matches") {
			t.Errorf("refusal does not say why: %v", err)
		}
	}
	if !acl.RequiresCHAP() {
		t.Error("a list with a CHAP record does not require CHAP")
	}
	if (AccessList{}).Check("iqn.x", "", local) == nil {
		t.Error("an empty list let a login in")
	}
	if (AccessRecord{}).Matches("iqn.x", "", local) {
		t.Error("an empty record matched")
	}
}

func TestParseAccessRecord(t *testing.T) {
	r, err := ParseAccessRecord("initiator=iqn.a:b,chap=u1,network=127.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	if r.Initiator != "iqn.a:b" || r.CHAPUser != "u1" || r.Network.String() != "127.0.0.9/32" {
		t.Fatalf("parsed %+v", r)
	}
	for _, bad := range []string{"", "user=x", "network=nope", "chap="} {
		if _, err := ParseAccessRecord(bad); err == nil {
			t.Errorf("ParseAccessRecord(%q) succeeded", bad)
		}
	}
}
