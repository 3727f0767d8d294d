package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/health"
	"github.com/urfave/cli/v2"
)

// healthCommand is the check for cron, Nagios and Prometheus. Unlike the
// other commands it exits with the Nagios codes, usage errors included
// (UNKNOWN, 3): a monitoring system reads 2 as CRITICAL.
func healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "check volumes, paths, NICs, hitkitd and the array; for cron, Nagios and Prometheus",
		UsageText: "hitkit health [--json|--nagios] [--prometheus FILE] [--alert-email ADDR --smtp HOST:PORT] " +
			"[--timeout 30s] [--verbose] [--state-dir DIR]",
		Description: "Exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Prints nothing when all is OK, unless --verbose.",
		Flags: append([]cli.Flag{
			jsonFlag(),
			&cli.BoolFlag{Name: "nagios", Usage: "print one Nagios status line with perfdata"},
			&cli.StringFlag{Name: "prometheus", Usage: "also write the metrics to this node_exporter textfile (atomically)"},
			&cli.StringSliceFlag{Name: "alert-email", Usage: "mail this address when the overall state changes (repeatable)"},
			&cli.StringFlag{Name: "smtp", Value: "localhost:25", Usage: "SMTP relay for alerts, HOST:PORT"},
			&cli.StringFlag{Name: "alert-from", Usage: "sender of alerts (default hitkit@HOSTNAME)"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "bound on the whole run"},
			&cli.BoolFlag{Name: "verbose", Usage: "show every check, OK ones too"},
			&cli.StringFlag{Name: "group-admin-file", Usage: "file holding the group admin password (or set HITKIT_GROUP_ADMIN); default: the one the volume was connected with"},
		}, daemonDirFlags()...),
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return cli.Exit(err.Error(), health.Unknown.ExitCode())
		},
		Action: runHealth,
	}
}

// healthCheckShare is the part of --timeout the checks may use; the rest
// is kept for the outputs and the alert mail.
const healthCheckShare = 0.8

func runHealth(c *cli.Context) error {
	if err := healthUsage(c); err != nil {
		return cli.Exit(err.Error(), health.Unknown.ExitCode())
	}
	timeout := c.Duration("timeout")
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	state := c.String("state-dir")
	unlock, err := health.Lock(state)
	if err != nil {
		return healthFailed(c, err)
	}
	defer unlock()
	mem, err := health.LoadMemory(state)
	if err != nil {
		fmt.Fprintln(c.App.ErrWriter, "hitkit:", err)
	}
	client := daemon.NewClient(c.String("runtime-dir"))
	checkCtx, cancelCheck := context.WithTimeout(ctx, time.Duration(float64(timeout)*healthCheckShare))
	defer cancelCheck()
	report := health.Check(checkCtx, health.Options{
		Daemon: client, StateDir: state, Previous: mem,
		GroupPassword: groupPassword(c.String("group-admin-file"), client),
	})
	next := health.Remember(report, mem)
	next.Notified = alert(ctx, c, mem, report)
	if err := next.Save(state); err != nil {
		fmt.Fprintln(c.App.ErrWriter, "hitkit: saving the health state:", err)
	}
	if file := c.String("prometheus"); file != "" {
		if err := health.WritePrometheus(file, report); err != nil {
			fmt.Fprintln(c.App.ErrWriter, "hitkit: writing the Prometheus file:", err)
		}
	}
	if err := printHealth(c, report); err != nil {
		return err
	}
	if code := report.State.ExitCode(); code != 0 {
		return cli.Exit("", code)
	}
	return nil
}

func healthUsage(c *cli.Context) error {
	switch {
	case c.NArg() > 0:
		return fmt.Errorf("health takes no arguments")
	case c.Bool("json") && c.Bool("nagios"):
		return fmt.Errorf("--json and --nagios exclude each other")
	case c.Duration("timeout") <= 0:
		return fmt.Errorf("--timeout must be positive")
	case len(c.StringSlice("alert-email")) > 0 && c.String("smtp") == "":
		return fmt.Errorf("--alert-email needs --smtp HOST:PORT")
	}
	return nil
}

// healthFailed reports a run that could not check anything (another run
// holds the lock, the state directory cannot be written): UNKNOWN.
func healthFailed(c *cli.Context, err error) error {
	if c.Bool("nagios") {
		fmt.Fprintf(c.App.Writer, "HITKIT UNKNOWN - %v\n", err)
		return cli.Exit("", health.Unknown.ExitCode())
	}
	return cli.Exit(err.Error(), health.Unknown.ExitCode())
}

// alert mails a change of the overall state and returns the state now
// notified: unchanged when the mail failed, so the next run tries again.
// Without --alert-email the current state counts as notified, so that
// alerts enabled later start from it.
func alert(ctx context.Context, c *cli.Context, mem health.Memory, r health.Report) health.State {
	to := c.StringSlice("alert-email")
	if len(to) == 0 {
		return r.State
	}
	if !health.ShouldAlert(mem, r.State) {
		return mem.Notified
	}
	mail := health.Mail{Server: c.String("smtp"), From: c.String("alert-from"), To: to}
	if err := health.SendAlert(ctx, mail, mem.Notified, r); err != nil {
		fmt.Fprintln(c.App.ErrWriter, "hitkit:", err)
		return mem.Notified
	}
	return r.State
}

// groupPassword finds a volume's group admin password: the file or
// variable given to health, else the one the volume was connected with,
// from hitkitd. It never prompts: health runs from cron.
func groupPassword(file string, client *daemon.Client) func(context.Context, daemon.VolumeInfo) ([]byte, error) {
	return func(ctx context.Context, v daemon.VolumeInfo) ([]byte, error) {
		if secretGiven(file, "HITKIT_GROUP_ADMIN") {
			return readSecret(file, "HITKIT_GROUP_ADMIN", "")
		}
		req, err := client.Request(ctx, v.Name)
		if err != nil {
			return nil, fmt.Errorf("asking hitkitd for the group admin password of %s: %w", v.Name, err)
		}
		if req.GroupAdminPassword == "" {
			return nil, errors.New("volume " + v.Name + " was connected without the group admin password")
		}
		return []byte(req.GroupAdminPassword), nil
	}
}

func printHealth(c *cli.Context, r health.Report) error {
	switch {
	case c.Bool("json"):
		return printJSON(c, r)
	case c.Bool("nagios"):
		return health.WriteNagios(c.App.Writer, r)
	}
	verbose := c.Bool("verbose")
	if r.State == health.OK && !verbose {
		return nil // quiet for cron
	}
	findings := r.Findings
	if !verbose {
		findings = r.Problems()
	}
	fmt.Fprintf(c.App.Writer, "hitkit health: %s\n", r.State)
	rows := make([][]string, 0, len(findings))
	for _, f := range findings {
		rows = append(rows, []string{f.State.String(), f.Check, f.Subject, f.Message})
	}
	return printTable(c, []string{"state", "check", "subject", "message"}, rows)
}
