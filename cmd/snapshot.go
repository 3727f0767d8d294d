package cmd

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/vss"
	"github.com/urfave/cli/v2"
)

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "host-consistent array snapshots: create, list, mount, clean up, schedule",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown snapshot command %q; hitkit snapshot --help lists them", c.Args().First())
			}
			cli.ShowSubcommandHelp(c)
			return usagef("no snapshot command given")
		},
		OnUsageError:    badFlag,
		HideHelpCommand: true,
		Subcommands: []*cli.Command{
			snapshotCreateCommand(),
			snapshotListCommand(),
			snapshotDeleteCommand(),
			snapshotMountCommand(),
			snapshotUnmountCommand(),
			snapshotCleanupCommand(),
			snapshotScheduleCommand(),
			thawGuardCommand(),
		},
	}
}

// groupFlags reach a volume's group and target when hitkitd does not
// know the volume (it is not connected, nor saved for login at boot).
func groupFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "group-api", Usage: "group management API, HOST[:PORT] (default: what the volume was connected with)"},
		&cli.StringFlag{Name: "group-fingerprint", Usage: "SHA-256 fingerprint of the group's management API certificate"},
		&cli.StringFlag{Name: "group-admin-file", Usage: "file holding the group's admin password (or set HITKIT_GROUP_ADMIN)"},
		&cli.StringFlag{Name: "portal", Usage: "group IP, HOST[:PORT] (default: the group's, from its API)"},
		&cli.StringFlag{Name: "chap-user", Usage: "CHAP user of the volume (default: the volume's, from the API)"},
		&cli.StringFlag{Name: "chap-secret-file", Usage: "file holding the volume's CHAP secret (or set HITKIT_CHAP_SECRET)"},
		&cli.StringFlag{Name: "initiator-name", Usage: "this host's IQN (default: derived from the hostname)"},
	}, daemonDirFlags()...)
}

// resolveVolume finds how to reach a volume: from hitkitd, the saved
// volumes, or the flags, which win.
func resolveVolume(c *cli.Context, name string) (*vss.Access, *groupapi.Client, error) {
	o := vss.Override{
		GroupAPI: strings.TrimSpace(c.String("group-api")), GroupFingerprint: strings.TrimSpace(c.String("group-fingerprint")),
		Portal: strings.TrimSpace(c.String("portal")), CHAPUser: c.String("chap-user"), InitiatorName: c.String("initiator-name"),
	}
	if o.GroupFingerprint != "" {
		if _, err := groupapi.ParseFingerprint(o.GroupFingerprint); err != nil {
			return nil, nil, usagef("--group-fingerprint: %v", err)
		}
	}
	if secretGiven(c.String("group-admin-file"), "HITKIT_GROUP_ADMIN") {
		pw, err := readSecret(c.String("group-admin-file"), "HITKIT_GROUP_ADMIN", "group admin password: ")
		if err != nil {
			return nil, nil, err
		}
		o.GroupPassword = pw
	}
	if secretGiven(c.String("chap-secret-file"), "HITKIT_CHAP_SECRET") {
		s, err := readSecret(c.String("chap-secret-file"), "HITKIT_CHAP_SECRET", "CHAP secret: ")
		if err != nil {
			return nil, nil, err
		}
		o.CHAPSecret = s
	}
	a, err := vss.Resolve(c.Context, name, dirs(c), o)
	if err != nil {
		return nil, nil, err
	}
	api, err := a.Dial()
	if err != nil {
		return nil, nil, err
	}
	return a, api, nil
}

func dirs(c *cli.Context) vss.Dirs {
	return vss.Dirs{Runtime: c.String("runtime-dir"), State: c.String("state-dir")}
}

// needArgs checks that the command got exactly the arguments it names.
func needArgs(c *cli.Context, names ...string) error {
	for _, a := range c.Args().Slice() {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			return usagef("%s: flags go before the arguments (%s)", c.Command.Name, a)
		}
	}
	if c.NArg() != len(names) {
		return usagef("%s needs %s", c.Command.Name, strings.Join(names, " "))
	}
	return nil
}

func snapshotCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "freeze the volume's filesystem, snapshot it on the array, thaw, and prune old snapshots",
		ArgsUsage: "VOLUME",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "mountpoint", Usage: "the filesystem to freeze (default: where the volume's device is mounted)"},
			&cli.IntFlag{Name: "keep", Usage: "keep this many snapshots made by snapshot create, deleting the oldest (0: all)"},
			&cli.DurationFlag{Name: "freeze-timeout", Value: vss.DefaultFreezeTimeout, Usage: "thaw and fail if the array takes longer"},
			jsonFlag(),
		}, groupFlags()...),
		OnUsageError: badFlag,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, "VOLUME"); err != nil {
				return err
			}
			if c.Int("keep") < 0 {
				return usagef("--keep must not be negative")
			}
			a, api, err := resolveVolume(c, c.Args().First())
			if err != nil {
				return err
			}
			defer api.Close()
			mp := c.String("mountpoint")
			if mp != "" {
				if mp, err = filepath.Abs(mp); err != nil {
					return err
				}
			}
			res, err := vss.Create(c.Context, a, api, vss.CreateOptions{
				Mountpoint: mp, Keep: c.Int("keep"), FreezeTimeout: c.Duration("freeze-timeout"), Guard: thawGuard,
			})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, res)
			}
			frozen := "no (not mounted: crash-consistent)"
			if res.Frozen != nil {
				frozen = fmt.Sprintf("%s for %v", res.Frozen.Mountpoint, res.Frozen.Duration.Round(time.Millisecond))
			}
			return printTable(c, []string{"volume", "snapshot", "frozen", "pruned"},
				[][]string{{res.Volume, res.Snapshot.Name, frozen, orDash(strings.Join(res.Pruned, " "))}})
		},
	}
}

func snapshotListCommand() *cli.Command {
	return &cli.Command{
		Name:         "list",
		Usage:        "list a volume's snapshots",
		ArgsUsage:    "VOLUME",
		Flags:        append([]cli.Flag{jsonFlag()}, groupFlags()...),
		OnUsageError: badFlag,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, "VOLUME"); err != nil {
				return err
			}
			a, api, err := resolveVolume(c, c.Args().First())
			if err != nil {
				return err
			}
			defer api.Close()
			snaps, err := api.Snapshots(a.Volume)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, map[string]any{"volume": a.Volume, "snapshots": snaps})
			}
			var rows [][]string
			for _, s := range snaps {
				rows = append(rows, []string{s.Name, s.Created.Local().Format("2006-01-02 15:04:05"), strconv.FormatBool(s.Online),
					mib(s.Reserve), orDash(vss.MadeBy(s)), orDash(s.Description)})
			}
			return printTable(c, []string{"snapshot", "created", "online", "reserve used", "made by", "description"}, rows)
		},
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func snapshotDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:         "delete",
		Usage:        "delete a snapshot on the array",
		ArgsUsage:    "VOLUME SNAPSHOT",
		Flags:        groupFlags(),
		OnUsageError: badFlag,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, "VOLUME", "SNAPSHOT"); err != nil {
				return err
			}
			a, api, err := resolveVolume(c, c.Args().First())
			if err != nil {
				return err
			}
			defer api.Close()
			return vss.Delete(api, a, c.Args().Get(1))
		},
	}
}

func snapshotMountCommand() *cli.Command {
	return &cli.Command{
		Name:         "mount",
		Usage:        "set a snapshot online, connect it read-only through hitkitd, and mount it read-only",
		ArgsUsage:    "VOLUME SNAPSHOT PATH",
		Flags:        append([]cli.Flag{jsonFlag()}, groupFlags()...),
		OnUsageError: badFlag,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, "VOLUME", "SNAPSHOT", "PATH"); err != nil {
				return err
			}
			a, api, err := resolveVolume(c, c.Args().First())
			if err != nil {
				return err
			}
			defer api.Close()
			hitkitd, err := ensureDaemon(c.Context, a.RuntimeDir, a.StateDir)
			if err != nil {
				return err
			}
			// A signal ends the mount's waits; what it did is then undone.
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			m, err := vss.Mount(ctx, a, api, hitkitd, c.Args().Get(1), c.Args().Get(2))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, m)
			}
			return printTable(c, []string{"volume", "snapshot", "mounted at", "block device", "type"},
				[][]string{{m.Volume, m.Snapshot, m.Path, m.BlockDevice, m.FSType}})
		},
	}
}

func snapshotUnmountCommand() *cli.Command {
	return &cli.Command{
		Name:         "unmount",
		Aliases:      []string{"umount"},
		Usage:        "unmount a snapshot, disconnect it, and set it offline",
		ArgsUsage:    "PATH",
		Flags:        groupFlags(),
		OnUsageError: badFlag,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, "PATH"); err != nil {
				return err
			}
			rec, err := vss.FindRecord(c.String("state-dir"), c.Args().First())
			if err != nil {
				return err
			}
			_, api, err := resolveVolume(c, rec.Name)
			if err != nil {
				return err
			}
			defer api.Close()
			ctx := context.WithoutCancel(c.Context)
			return vss.Unmount(ctx, api, daemon.NewClient(c.String("runtime-dir")), c.String("state-dir"), rec)
		},
	}
}

func snapshotCleanupCommand() *cli.Command {
	return &cli.Command{
		Name: "cleanup",
		Usage: "set offline the snapshots that a crash left online (unmounting and disconnecting what remains); " +
			"VOLUMEs default to the connected ones and those with records",
		ArgsUsage:    "[VOLUME...]",
		Flags:        append([]cli.Flag{jsonFlag()}, groupFlags()...),
		OnUsageError: badFlag,
		Action:       snapshotCleanup,
	}
}

func snapshotCleanup(c *cli.Context) error {
	names, err := cleanupVolumes(c)
	if err != nil {
		return err
	}
	hitkitd := daemon.NewClient(c.String("runtime-dir"))
	results := []vss.CleanupResult{}
	var failed []string
	for _, name := range names {
		a, api, err := resolveVolume(c, name)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		res, err := vss.Cleanup(context.WithoutCancel(c.Context), api, hitkitd, a.StateDir, a.Volume)
		api.Close()
		results = append(results, res...)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if c.Bool("json") {
		if err := printJSON(c, map[string]any{"cleaned": results, "errors": failed}); err != nil {
			return err
		}
	} else if len(results) > 0 {
		var rows [][]string
		for _, r := range results {
			state := "offline"
			if r.Error != "" {
				state = "FAILED: " + r.Error
			}
			rows = append(rows, []string{r.Volume, r.Snapshot, r.Reason, state})
		}
		if err := printTable(c, []string{"volume", "snapshot", "why", "now"}, rows); err != nil {
			return err
		}
	} else if len(failed) == 0 {
		fmt.Fprintln(c.App.Writer, "no stray snapshots")
	}
	if len(failed) > 0 {
		return fmt.Errorf("cleanup incomplete: %s", strings.Join(failed, "; "))
	}
	return nil
}

// cleanupVolumes are the volumes named, or else those hitkitd has
// connected (snapshots aside) and those with records.
func cleanupVolumes(c *cli.Context) ([]string, error) {
	if c.NArg() > 0 {
		return c.Args().Slice(), nil
	}
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	recs, err := vss.Records(c.String("state-dir"))
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		add(r.Name)
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	if vols, err := daemon.NewClient(c.String("runtime-dir")).Status(ctx, ""); err == nil {
		for _, v := range vols {
			if !strings.HasPrefix(v.Name, "snap.") {
				add(v.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil, usagef("no volume is connected and none has records: name the VOLUMEs to check")
	}
	return names, nil
}

func snapshotScheduleCommand() *cli.Command {
	return &cli.Command{
		Name:      "schedule",
		Usage:     "print (or install) a cron entry or systemd timer that runs snapshot create",
		ArgsUsage: "VOLUME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "every", Usage: "15m, 1h, 6h, hourly, daily, weekly ...", Required: true},
			&cli.IntFlag{Name: "keep", Usage: "--keep for snapshot create"},
			&cli.BoolFlag{Name: "systemd", Usage: "a systemd service and timer instead of a cron entry"},
			&cli.BoolFlag{Name: "install", Usage: "write it to /etc/cron.d or /etc/systemd/system"},
			&cli.StringFlag{Name: "root", Value: "/", Usage: "install under this root directory"},
			&cli.StringFlag{Name: "hitkit", Usage: "path of the hitkit binary to run (default: this one)"},
			&cli.StringFlag{Name: "runtime-dir", Usage: "passed on to snapshot create"},
			&cli.StringFlag{Name: "state-dir", Usage: "passed on to snapshot create"},
		},
		OnUsageError: badFlag,
		Action:       snapshotSchedule,
	}
}

func snapshotSchedule(c *cli.Context) error {
	if err := needArgs(c, "VOLUME"); err != nil {
		return err
	}
	bin := c.String("hitkit")
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		bin = exe
	}
	s := vss.Schedule{Volume: c.Args().First(), Every: c.String("every"), Keep: c.Int("keep"), Hitkit: bin}
	for _, f := range []string{"runtime-dir", "state-dir"} {
		if v := c.String(f); v != "" {
			s.Args = append(s.Args, "--"+f, v)
		}
	}
	if c.Int("keep") < 0 {
		return usagef("--keep must not be negative")
	}
	if c.Bool("install") {
		paths, err := s.Install(c.String("root"), c.Bool("systemd"))
		if err != nil {
			return usageIfSchedule(err)
		}
		for _, p := range paths {
			fmt.Fprintln(c.App.Writer, "wrote", p)
		}
		if c.Bool("systemd") {
			fmt.Fprintf(c.App.Writer, "now run: systemctl daemon-reload && systemctl enable --now %s.timer\n", s.UnitName())
		}
		return nil
	}
	if c.Bool("systemd") {
		service, timer, err := s.Systemd()
		if err != nil {
			return usageIfSchedule(err)
		}
		fmt.Fprintf(c.App.Writer, "# /etc/systemd/system/%s.service\n%s\n# /etc/systemd/system/%s.timer\n%s", s.UnitName(), service, s.UnitName(), timer)
		return nil
	}
	text, err := s.Cron()
	if err != nil {
		return usageIfSchedule(err)
	}
	fmt.Fprintf(c.App.Writer, "# /etc/cron.d/%s\n%s", s.UnitName(), text)
	return nil
}

// usageIfSchedule: a bad --every or volume name is a usage error.
func usageIfSchedule(err error) error {
	if strings.Contains(err.Error(), "--every") || strings.Contains(err.Error(), "volume name") {
		return usagef("%v", err)
	}
	return err
}

// thawGuard starts `hitkit snapshot thaw-guard MOUNTPOINT`, which thaws
// the filesystem if this process is killed while it is frozen.
func thawGuard(mountpoint string) (*vss.ThawGuard, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return vss.StartThawGuard([]string{exe, "snapshot", "thaw-guard", mountpoint})
}

func thawGuardCommand() *cli.Command {
	return &cli.Command{
		Name:         "thaw-guard",
		Usage:        "(internal) thaw MOUNTPOINT if the process on the other end of stdin dies",
		ArgsUsage:    "MOUNTPOINT",
		Hidden:       true,
		OnUsageError: badFlag,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, "MOUNTPOINT"); err != nil {
				return err
			}
			return vss.RunThawGuard(c.Args().First(), os.Stdin, c.App.Writer)
		},
	}
}
