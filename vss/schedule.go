package vss

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/internal/atomicfile"
)

// Schedule is a recurring `hitkit snapshot create`, run by cron or a
// systemd timer: hitkit has no scheduler of its own.
type Schedule struct {
	Volume string
	Every  string   // 5m..30m (dividing an hour), 1h..12h (dividing a day), hourly, daily, weekly
	Keep   int      // --keep
	Hitkit string   // absolute path of the hitkit binary
	Args   []string // extra flags of snapshot create, such as --state-dir
}

// interval is Every as a cron line's time fields and a systemd OnCalendar.
func (s Schedule) interval() (cron, calendar string, err error) {
	switch s.Every {
	case "hourly":
		return "0 * * * *", "hourly", nil
	case "daily":
		return "0 0 * * *", "daily", nil
	case "weekly":
		return "0 0 * * 0", "weekly", nil
	}
	d, err := time.ParseDuration(s.Every)
	switch {
	case err != nil:
	case d >= time.Minute && d < time.Hour && d%time.Minute == 0 && 60%int(d.Minutes()) == 0:
		m := int(d.Minutes())
		return fmt.Sprintf("*/%d * * * *", m), fmt.Sprintf("*:0/%d", m), nil
	case d >= time.Hour && d < 24*time.Hour && d%time.Hour == 0 && 24%int(d.Hours()) == 0:
		h := int(d.Hours())
		return fmt.Sprintf("0 */%d * * *", h), fmt.Sprintf("0/%d:00", h), nil
	case d == 24*time.Hour:
		return "0 0 * * *", "daily", nil
	}
	return "", "", fmt.Errorf("--every %q: use minutes dividing an hour (15m), hours dividing a day (1h, 6h), hourly, daily or weekly", s.Every)
}

var unitSafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// UnitName is the name of the cron file and of the systemd units, without
// their suffixes; cron.d ignores files with dots in their names.
func (s Schedule) UnitName() string {
	return "hitkit-snapshot-" + unitSafe.ReplaceAllString(s.Volume, "_")
}

func (s Schedule) command() string {
	// urfave/cli reads flags only before the arguments.
	args := []string{s.Hitkit, "snapshot", "create"}
	if s.Keep > 0 {
		args = append(args, "--keep", strconv.Itoa(s.Keep))
	}
	args = append(append(args, s.Args...), s.Volume)
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>()*?[]#~%!{}") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (s Schedule) check() error {
	if !filepath.IsAbs(s.Hitkit) {
		return fmt.Errorf("the hitkit binary %q is not an absolute path", s.Hitkit)
	}
	if !daemon.ValidName(s.Volume) {
		return fmt.Errorf("volume name %q: use letters, digits, '.', '_' and '-'", s.Volume)
	}
	_, _, err := s.interval()
	return err
}

// Cron is the file for /etc/cron.d.
func (s Schedule) Cron() (string, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	when, _, _ := s.interval()
	// cron's % is a newline unless escaped.
	return fmt.Sprintf("# hitkit: snapshot %s %s (hitkit snapshot schedule)\nSHELL=/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n%s root %s\n",
		s.Volume, s.Every, when, strings.ReplaceAll(s.command(), "%", `\%`)), nil
}

// Systemd is a oneshot service and the timer that starts it.
func (s Schedule) Systemd() (service, timer string, err error) {
	if err := s.check(); err != nil {
		return "", "", err
	}
	_, cal, _ := s.interval()
	service = fmt.Sprintf(`[Unit]
Description=hitkit: snapshot of volume %[1]s
After=hitkitd.service

[Service]
Type=oneshot
ExecStart=%[2]s
`, s.Volume, s.command())
	timer = fmt.Sprintf(`[Unit]
Description=hitkit: snapshot of volume %[1]s, %[2]s

[Timer]
OnCalendar=%[3]s
Persistent=true
Unit=%[4]s.service

[Install]
WantedBy=timers.target
`, s.Volume, s.Every, cal, s.UnitName())
	return service, timer, nil
}

// Install writes the cron file, or the systemd units, under root ("/"
// on a real host), and returns the paths written.
func (s Schedule) Install(root string, systemd bool) ([]string, error) {
	if !systemd {
		text, err := s.Cron()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(root, "etc", "cron.d", s.UnitName())
		return []string{path}, writeConfig(path, text)
	}
	service, timer, err := s.Systemd()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "etc", "systemd", "system")
	sp, tp := filepath.Join(dir, s.UnitName()+".service"), filepath.Join(dir, s.UnitName()+".timer")
	if err := writeConfig(sp, service); err != nil {
		return nil, err
	}
	return []string{sp, tp}, writeConfig(tp, timer)
}

func writeConfig(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(text), 0o644)
}
