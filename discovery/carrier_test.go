package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestWatchCarrier pulls the "cable" of a veth NIC by setting its peer
// down and up, and deletes it: each is reported once. The pair has no
// address, so it carries no traffic of the host.
func TestWatchCarrier(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a veth pair")
	}
	id := make([]byte, 3)
	rand.Read(id)
	nic, peer := "hk"+hex.EncodeToString(id)+"-a", "hk"+hex.EncodeToString(id)+"-b"
	if out, err := exec.Command("ip", "link", "add", nic, "type", "veth", "peer", "name", peer).CombinedOutput(); err != nil {
		t.Skipf("cannot create a veth pair: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", nic).Run() })
	ipLink(t, "set", nic, "up")
	ipLink(t, "set", peer, "up")

	type change struct {
		nic string
		up  bool
	}
	changes := make(chan change, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := WatchCarrier(ctx, func(n string, up bool) {
		if n == nic {
			changes <- change{n, up}
		}
	}); err != nil {
		t.Fatal(err)
	}
	expect := func(up bool) {
		t.Helper()
		select {
		case c := <-changes:
			if c.up != up {
				t.Fatalf("%s reported up=%v, want %v", c.nic, c.up, up)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no carrier change (up=%v) reported for %s", up, nic)
		}
	}
	// The veth's carrier may still be coming up from the set above.
	time.Sleep(100 * time.Millisecond)
	drain(changes)
	ipLink(t, "set", peer, "down")
	expect(false)
	ipLink(t, "set", peer, "up")
	expect(true)
	ipLink(t, "del", nic)
	expect(false)
}

func drain[T any](ch chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func ipLink(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"link"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip link %v: %v: %s", args, err, out)
	}
}
