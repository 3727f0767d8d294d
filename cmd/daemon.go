package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

// daemonStartTimeout bounds how long a detached start waits for the
// control socket to answer.
const daemonStartTimeout = 15 * time.Second

// daemonExecutable is the program a detached start runs; tests of the
// CLI point it at a built hitkit binary.
var daemonExecutable = os.Executable

func daemonDirFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "runtime-dir", Value: daemon.DefaultRuntimeDir, Usage: "control socket, NBD sockets and device links"},
		&cli.StringFlag{Name: "state-dir", Value: daemon.DefaultStateDir, Usage: "saved volumes for --login-at-boot, and the detached daemon's log"},
	}
}

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "run hitkitd, which owns the multipathed volumes and their devices",
		Description: "Without --foreground, hitkitd starts detached, logs to STATE-DIR/hitkitd.log, " +
			"and the command returns once its control socket answers.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "foreground", Usage: "run in this process until SIGTERM or SIGINT (for systemd)"},
			&cli.BoolFlag{Name: "stop", Usage: "stop the running hitkitd: flush, log out, remove its devices"},
		}, daemonDirFlags()...),
		OnUsageError: badFlag,
		Action:       runDaemon,
	}
}

func runDaemon(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("daemon takes no arguments")
	}
	runtime, state := c.String("runtime-dir"), c.String("state-dir")
	if c.Bool("stop") {
		return shutdownDaemon(c, runtime)
	}
	if !c.Bool("foreground") {
		pid, err := startDetached(c.Context, runtime, state)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "hitkitd running (pid %d), control socket %s\n", pid, daemon.SocketPath(runtime))
		return nil
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := daemon.New(daemon.Options{RuntimeDir: runtime, StateDir: state, Log: logrus.NewEntry(logrus.StandardLogger())})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// shutdownDaemon asks hitkitd to shut down and waits for its process to
// end, which it does once its devices are gone and its sessions logged out.
func shutdownDaemon(c *cli.Context, runtime string) error {
	client := daemon.NewClient(runtime)
	pid, err := client.Ping(c.Context)
	if err != nil {
		return fmt.Errorf("hitkitd is not running (no answer on %s)", daemon.SocketPath(runtime))
	}
	if err := client.Shutdown(c.Context); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !processAlive(pid) {
			fmt.Fprintf(c.App.Writer, "hitkitd (pid %d) stopped\n", pid)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("hitkitd (pid %d) did not stop within 30 s", pid)
}

// ensureDaemon starts hitkitd in the background unless it already answers.
func ensureDaemon(ctx context.Context, runtime, state string) (*daemon.Client, error) {
	client := daemon.NewClient(runtime)
	if _, err := client.Ping(ctx); err == nil {
		return client, nil
	}
	if _, err := startDetached(ctx, runtime, state); err != nil {
		return nil, err
	}
	return client, nil
}

// startDetached runs `hitkit daemon --foreground` in its own session, so
// that it outlives this command and its terminal, and waits until the
// control socket answers.
func startDetached(ctx context.Context, runtime, state string) (int, error) {
	client := daemon.NewClient(runtime)
	if pid, err := client.Ping(ctx); err == nil {
		return pid, nil
	}
	exe, err := daemonExecutable()
	if err != nil {
		return 0, err
	}
	logFile, logPath, err := openDaemonLog(runtime, state)
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	cmd := exec.Command(exe, "--log-level", "info", "daemon", "--foreground", "--runtime-dir", runtime, "--state-dir", state)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting hitkitd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(daemonStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("hitkitd exited at start (%v); see %s", err, logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if pid, err := client.Ping(ctx); err == nil {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("hitkitd did not answer on %s within %v; see %s", daemon.SocketPath(runtime), daemonStartTimeout, logPath)
}

// openDaemonLog opens STATE/hitkitd.log, or RUNTIME/hitkitd.log when the
// state directory cannot be written.
func openDaemonLog(runtime, state string) (*os.File, string, error) {
	var errs []error
	for _, dir := range []string{state, runtime} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(dir, "hitkitd.log")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err == nil {
			return f, path, nil
		}
		errs = append(errs, err)
	}
	return nil, "", fmt.Errorf("no place for hitkitd's log: %w", errors.Join(errs...))
}
