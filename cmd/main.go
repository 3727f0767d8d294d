// Package cmd is hitkit's command line: flag parsing and output formatting.
// Protocol logic lives in the packages that the commands call.
package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

// Exit codes shared by every command except health, which uses Nagios codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks a mistake in how the command was called; it exits with 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	return run(args, os.Stdout, os.Stderr)
}

func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return exitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "hitkit:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "hitkit:", err)
	var ue usageError
	if errors.As(err, &ue) || isMissingFlag(err) {
		return exitUsage
	}
	return exitError
}

// isMissingFlag spots urfave/cli's error for a missing required flag,
// whose type it does not export.
func isMissingFlag(err error) bool {
	return strings.HasPrefix(err.Error(), "Required flag") || strings.HasPrefix(err.Error(), "Required flags")
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "hitkit",
		Usage:     "host integration toolkit for iSCSI SANs",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "warning", Usage: "debug, info, warning or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
			&cli.StringFlag{Name: "config", Value: "/etc/hitkit/hitkit.conf", Usage: "configuration file"},
		},
		Before: func(c *cli.Context) error { return setupLogging(c, stderr) },
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q; hitkit --help lists the commands", c.Args().First())
			}
			cli.ShowAppHelp(c)
			return usagef("no command given")
		},
		Commands: []*cli.Command{
			// In the order an admin meets them: find and set up the array,
			// look at a volume, connect it, protect it, watch the host.
			discoverCommand(),
			setupArrayCommand(),
			inquiryCommand(),
			benchCommand(),
			daemonCommand(),
			mpioCommand(),
			snapshotCommand(),
			backupCommand(),
			restoreCommand(),
			healthCommand(),
			tuneCommand(),
			labCommand(),
		},
		// urfave/cli prints usage and returns an error for bad flags; map it to exit 2.
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err.Error()}
		},
		HideHelpCommand: true,
		// cli.Exit errors reach run(), which prints them and returns their
		// code; urfave/cli's default handler would call os.Exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func setupLogging(c *cli.Context, stderr io.Writer) error {
	level, err := logrus.ParseLevel(c.String("log-level"))
	if err != nil {
		return usagef("--log-level: %v", err)
	}
	logrus.SetLevel(level)
	logrus.SetOutput(stderr)
	switch c.String("log-format") {
	case "text":
		logrus.SetFormatter(&logrus.TextFormatter{})
	case "json":
		logrus.SetFormatter(&logrus.JSONFormatter{})
	default:
		return usagef("--log-format must be text or json")
	}
	return nil
}
