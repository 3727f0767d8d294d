package cmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/internal/peer"
)

// hitkit runs the CLI in-process and returns its exit code and output.
func hitkit(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"hitkit"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLIAgainstTgtd(t *testing.T) {
	const user, secret = "cli-user", "cli-secret-123"
	tg := peer.StartTgtd(t, peer.Options{CHAPUser: user, CHAPSecret: secret})
	secretFile := filepath.Join(t.TempDir(), "chap")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	login := []string{"--portal", tg.Portal(), "--chap-user", user, "--chap-secret-file", secretFile, "--chap-algorithms", "md5"}
	lun := []string{"--target", tg.IQN, "--lun", strconv.Itoa(tg.LUN)}

	// tgtd's discovery sessions take no CHAP unless a discovery account
	// is set up, so discovery logs in without it.
	t.Run("discover", func(t *testing.T) {
		code, out, errOut := hitkit(t, "discover", "--json", "--portal", tg.Portal())
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got []struct {
			Target  string `json:"target"`
			Portals []struct {
				Address string `json:"address"`
				TPGT    int    `json:"tpgt"`
			} `json:"portals"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(got) != 1 || got[0].Target != tg.IQN || len(got[0].Portals) != 1 || got[0].Portals[0].Address != tg.Portal() || got[0].Portals[0].TPGT != 1 {
			t.Fatalf("discover --json = %s", out)
		}
	})
	t.Run("inquiry", func(t *testing.T) {
		code, out, errOut := hitkit(t, append(append([]string{"inquiry", "--json"}, login...), lun...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, k := range []string{"vendor", "product", "revision", "serial", "wwid", "size_bytes", "block_size"} {
			if _, ok := got[k]; !ok {
				t.Errorf("inquiry --json has no %q: %s", k, out)
			}
		}
		if got["size_bytes"] != float64(64<<20) || got["block_size"] != float64(512) || !strings.HasPrefix(got["wwid"].(string), "naa.") {
			t.Errorf("inquiry --json = %s", out)
		}
	})
	t.Run("bench verify", func(t *testing.T) {
		args := append(append([]string{"bench", "--json", "--pattern", "verify", "--bs", "64k", "--qd", "8", "--span", "8m", "--allow-write"}, login...), lun...)
		code, out, errOut := hitkit(t, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if got["verified_blocks"] != float64(8<<20/(64<<10)) {
			t.Errorf("verified %v blocks, want %d: %s", got["verified_blocks"], 8<<20/(64<<10), out)
		}
		for _, k := range []string{"iops", "mbps", "lat_p50_us", "lat_p99_us", "lat_max_us"} {
			if _, ok := got[k]; !ok {
				t.Errorf("bench --json has no %q", k)
			}
		}
	})
	t.Run("secret from the environment", func(t *testing.T) {
		t.Setenv("HITKIT_CHAP_SECRET", secret)
		code, _, errOut := hitkit(t, append([]string{"inquiry", "--portal", tg.Portal(), "--chap-user", user, "--chap-algorithms", "md5"}, lun...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		t.Setenv("HITKIT_CHAP_SECRET", "wrong-secret-456")
		code, _, errOut := hitkit(t, append([]string{"inquiry", "--portal", tg.Portal(), "--chap-user", user, "--chap-algorithms", "md5"}, lun...)...)
		if code != 1 || !strings.Contains(errOut, "authentication failed") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Fatalf("exit %d, stderr %q: want exit 1 and one line saying authentication failed", code, errOut)
		}
		if strings.Contains(errOut, "wrong-secret-456") {
			t.Fatal("the secret appears in the error")
		}
	})
	t.Run("write needs --allow-write", func(t *testing.T) {
		code, _, errOut := hitkit(t, append(append([]string{"bench", "--pattern", "randwrite"}, login...), lun...)...)
		if code != 2 || !strings.Contains(errOut, "--allow-write") {
			t.Fatalf("exit %d, stderr %q: want exit 2 naming --allow-write", code, errOut)
		}
	})
}

func TestCLIUsageAndErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"discover"}, 2, "portal"},
		{[]string{"discover", "--portal", "127.0.0.1:1"}, 1, "127.0.0.1:1"},
		{[]string{"inquiry", "--portal", "127.0.0.1:1"}, 2, "target"},
		{[]string{"bench", "--portal", "127.0.0.1:1", "--target", "iqn.x", "--pattern", "zigzag"}, 2, "zigzag"},
		{[]string{"discover", "--portal", "127.0.0.1:1", "--chap-algorithms", "md4"}, 2, "md4"},
		{[]string{"no-such-command"}, 2, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := hitkit(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tc.code, tc.says)
			}
		})
	}
}
