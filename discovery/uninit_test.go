package discovery

import (
	"net/netip"
	"testing"
)

func TestParseProbeRange(t *testing.T) {
	for _, tc := range []struct {
		in          string
		n           int
		first, last string
	}{
		{"127.0.10.0/24", 254, "127.0.10.1", "127.0.10.254"},
		{"127.0.10.7/24", 254, "127.0.10.1", "127.0.10.254"},
		{"127.0.10.31-127.0.10.40", 10, "127.0.10.31", "127.0.10.40"},
		{" 127.0.10.5 ", 1, "127.0.10.5", "127.0.10.5"},
		{"127.0.10.5-127.0.10.5", 1, "127.0.10.5", "127.0.10.5"},
		{"127.0.10.4/31", 2, "127.0.10.4", "127.0.10.5"},
		{"127.0.10.4/32", 1, "127.0.10.4", "127.0.10.4"},
		{"127.0.0.0/20", 4094, "127.0.0.1", "127.0.15.254"},
		{"127.0.0.0-127.0.15.255", 4096, "127.0.0.0", "127.0.15.255"},
		{"127.0.9.250-127.0.10.5", 12, "127.0.9.250", "127.0.10.5"},
	} {
		got, err := ParseProbeRange(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if len(got) != tc.n || got[0] != netip.MustParseAddr(tc.first) || got[len(got)-1] != netip.MustParseAddr(tc.last) {
			t.Errorf("%q = %d addresses %v..%v, want %d %s..%s", tc.in, len(got), got[0], got[len(got)-1], tc.n, tc.first, tc.last)
		}
	}
	for _, bad := range []string{
		"", "nonsense", "127.0.10.0/33", "127.0.0.0/19", "127.0.0.0-127.0.16.0", "127.0.10.40-127.0.10.31",
		"127.0.10.1-", "-127.0.10.1", "127.0.10.1-x", "::1", "fe80::/120", "127.0.10.1-::1", "0.0.0.0/0",
	} {
		if got, err := ParseProbeRange(bad); err == nil {
			t.Errorf("%q = %d addresses, want an error", bad, len(got))
		}
	}
}
