package cmd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/groupapi"
)

// tmuxPane is one detached tmux session running a command in a real
// terminal, 200x50.
type tmuxPane struct {
	t       *testing.T
	socket  string // a private tmux server, so that no other tmux is touched
	session string
}

func startTmux(t *testing.T, command string) *tmuxPane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (make deps installs it); the interactive wizard needs a real terminal")
	}
	p := &tmuxPane{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock"), session: "setup"}
	if out, err := p.tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", p.session, command); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { p.tmux("kill-server") })
	return p
}

func (p *tmuxPane) tmux(args ...string) ([]byte, error) {
	return exec.Command("tmux", append([]string{"-S", p.socket}, args...)...).CombinedOutput()
}

// screen is the pane with its history.
func (p *tmuxPane) screen() string {
	out, err := p.tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", p.session)
	if err != nil {
		p.t.Fatalf("tmux capture-pane: %v\n%s", err, out)
	}
	return string(out)
}

// waitFor polls the screen until re matches after the first `after`
// bytes, for at most 30 s, and returns the offset just past the match.
func (p *tmuxPane) waitFor(after int, re string) int {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := p.screen()
		if after <= len(s) {
			if loc := rx.FindStringIndex(s[after:]); loc != nil {
				return after + loc[1]
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited 30 s for %q; the screen shows:\n%s", re, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answer waits for the prompt, then types the line and Enter.
func (p *tmuxPane) answer(after int, prompt, line string) int {
	p.t.Helper()
	at := p.waitFor(after, prompt)
	if line != "" {
		p.typeText(line)
	}
	if out, err := p.tmux("send-keys", "-t", p.session, "Enter"); err != nil {
		p.t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	return at
}

// typeText types text into the pane through a tmux paste buffer loaded
// from stdin, so that the answers (passwords among them) never appear on
// a command line.
func (p *tmuxPane) typeText(text string) {
	p.t.Helper()
	load := exec.Command("tmux", "-S", p.socket, "load-buffer", "-b", "answer", "-")
	load.Stdin = strings.NewReader(text)
	if out, err := load.CombinedOutput(); err != nil {
		p.t.Fatalf("tmux load-buffer: %v\n%s", err, out)
	}
	if out, err := p.tmux("paste-buffer", "-d", "-b", "answer", "-t", p.session); err != nil {
		p.t.Fatalf("tmux paste-buffer: %v\n%s", err, out)
	}
}

// TestSetupArrayInteractive drives the wizard through a real terminal:
// a wrong IP and two different password typings are asked again, and
// the confirmed setup creates a group.
func TestSetupArrayInteractive(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (make deps installs it); the interactive wizard needs a real terminal")
	}
	s := startSetupSite(t, 1)

	// Answers as flags without --yes, on a terminal: the summary is shown
	// and nothing is applied when the answer is no.
	membership := writeFile(t, "membership", "membership-1\n")
	admin := writeFile(t, "admin", "admin-pass-1\n")
	declined := filepath.Join(t.TempDir(), "declined")
	p := startTmux(t, fmt.Sprintf("%s setup-array --serial %s --member-name m1 --ip %s/24 --gateway %s --group g --group-ip %s --create "+
		"--membership-password-file %s --admin-password-file %s --probe %s --no-mdns --timeout 1s; echo $? > %s; echo FLAGS-EXITED; sleep 60",
		s.bin, s.serials[0], s.addr(11), s.addr(254), s.addr(1), membership, admin, s.probe, declined))
	at := p.waitFor(0, `group\s*[│|]\s*g: create a new group`)
	at = p.answer(at, `apply this setup to the array \[y/N\]: `, "n")
	p.waitFor(at, `not confirmed; nothing was applied[\s\S]*FLAGS-EXITED`)
	if code, _ := os.ReadFile(declined); strings.TrimSpace(string(code)) != "1" {
		t.Fatalf("declined setup exited with %q:\n%s", code, p.screen())
	}
	if got := s.uninitialized(t); len(got) != 1 {
		t.Fatalf("after a declined setup, uninitialised: %v", got)
	}

	status := filepath.Join(t.TempDir(), "status")
	command := fmt.Sprintf("%s setup-array --probe %s --no-mdns --timeout 1s; echo $? > %s; echo WIZARD-EXITED; sleep 60",
		s.bin, s.probe, status)
	p = startTmux(t, command)

	at = p.answer(0, `array to set up \(number or serial\) \[1\]: `, "")
	at = p.answer(at, `member name \[[a-z0-9]+\]: `, "wizard1")
	at = p.answer(at, `member IP address/prefix \(the prefix is the netmask\) \[`+regexp.QuoteMeta(s.addr(11))+`/24\]: `, "127.0.99.11/24")
	at = p.waitFor(at, `127\.0\.99\.11 is not on the member's network `+regexp.QuoteMeta(s.base)+`0/24`)
	at = p.answer(at, `member IP address/prefix .*: `, "") // the default, the member's address
	at = p.answer(at, `default gateway \[`+regexp.QuoteMeta(s.addr(254))+`\]: `, "")
	at = p.answer(at, `group name: `, "wizgroup")
	at = p.answer(at, `create a new group or join an existing one \(create/join\) \[create\]: `, "")
	at = p.answer(at, `group IP address \[`+regexp.QuoteMeta(s.addr(1))+`\]: `, "")
	at = p.answer(at, `membership password of the new group: `, "membership-1")
	at = p.answer(at, `membership password of the new group \(again\): `, "membership-2")
	at = p.waitFor(at, `the two passwords differ`)
	at = p.answer(at, `membership password of the new group: `, "membership-1")
	at = p.answer(at, `membership password of the new group \(again\): `, "membership-1")
	at = p.answer(at, `admin password of the new group: `, "admin-pass-1")
	at = p.answer(at, `admin password of the new group \(again\): `, "admin-pass-1")
	at = p.answer(at, `RAID policy \(raid10, raid50, raid6, raid5\) \[raid10\]: `, "raid50")
	at = p.waitFor(at, `wizgroup: create a new group`)
	at = p.answer(at, `apply this setup to the array \[y/N\]: `, "y")
	at = p.answer(at, `create a volume for this host now .* \[Y/n\]: `, "")
	at = p.answer(at, `volume name: `, "wizvol")
	at = p.answer(at, `volume size \[10GiB\]: `, "32MiB")
	at = p.answer(at, `this host's initiator name \[iqn\.[^\]]+\]: `, "")
	secretFile := filepath.Join(t.TempDir(), "wizvol.chap")
	at = p.answer(at, `file for the volume's CHAP secret \(created with mode 0600\) \[wizvol\.chap\]: `, secretFile)
	at = p.waitFor(at, `hitkit mpio connect --portal \S+ --target \S+:wizvol --chap-user wizvol --chap-secret-file `+regexp.QuoteMeta(secretFile))
	p.waitFor(at, `WIZARD-EXITED`)
	if fi, err := os.Stat(secretFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CHAP secret file: %v", err)
	}

	screen := p.screen()
	code, _ := os.ReadFile(status)
	if strings.TrimSpace(string(code)) != "0" {
		t.Fatalf("the wizard exited with %q:\n%s", code, screen)
	}
	for _, secret := range []string{"membership-1", "membership-2", "admin-pass-1"} {
		if strings.Contains(screen, secret) {
			t.Fatalf("the password %q was echoed:\n%s", secret, screen)
		}
	}
	m := regexp.MustCompile(`management API\s*[│|]\s*(\S+)\s*[│|][\s\S]*management fingerprint\s*[│|]\s*([0-9A-Fa-f:]{64,})`).FindStringSubmatch(screen)
	if m == nil {
		t.Fatalf("no management API in the result:\n%s", screen)
	}
	if len(s.uninitialized(t)) != 0 {
		t.Fatalf("the member is still uninitialised:\n%s", screen)
	}
	api, err := groupapi.Dial(m[1], m[2], []byte("admin-pass-1"))
	if err != nil {
		t.Fatalf("the new group's management API with the admin password typed: %v", err)
	}
	defer api.Close()
	g, err := api.Group()
	if err != nil || g.Name != "wizgroup" || len(g.Members) != 1 || g.Members[0].Name != "wizard1" {
		t.Fatalf("group %+v, %v", g, err)
	}
	if v, err := api.Volume("wizvol"); err != nil || v.Size != 32<<20 || len(v.Access) != 1 || v.Access[0].CHAPUser != "wizvol" {
		t.Fatalf("volume %+v, %v", v, err)
	}
}
