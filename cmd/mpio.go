package cmd

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/mpio"
	"github.com/urfave/cli/v2"
)

// mpioConnectTimeout bounds a connect: the logins of every session, and
// the exports.
const mpioConnectTimeout = 2 * time.Minute

func mpioCommand() *cli.Command {
	return &cli.Command{
		Name:  "mpio",
		Usage: "multipathed volumes served by hitkitd",
		// Without it, urfave/cli answers an unknown subcommand with its
		// help command, which exits the process with code 3.
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown mpio command %q; hitkit mpio --help lists them", c.Args().First())
			}
			cli.ShowSubcommandHelp(c)
			return usagef("no mpio command given")
		},
		OnUsageError:    badFlag,
		HideHelpCommand: true,
		Subcommands: []*cli.Command{
			mpioConnectCommand(),
			mpioStatusCommand(),
			mpioListCommand(),
			mpioDisconnectCommand(),
		},
	}
}

func mpioConnectCommand() *cli.Command {
	return &cli.Command{
		Name:         "connect",
		Usage:        "log in to a volume over several paths and expose it as one block device",
		UsageText:    "hitkit mpio connect --portal HOST[:PORT] --target IQN [options]",
		OnUsageError: badFlag,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "portal", Usage: "group IP or portal, HOST[:PORT]", Required: true},
			&cli.StringFlag{Name: "target", Usage: "target IQN", Required: true},
			&cli.IntFlag{Name: "lun", Usage: "logical unit number"},
			&cli.StringFlag{Name: "name", Usage: "volume name (default: the IQN's last component)"},
			&cli.StringFlag{Name: "chap-user", Usage: "CHAP user name the target authenticates"},
			&cli.StringFlag{Name: "chap-secret-file", Usage: "file holding the CHAP secret (or set HITKIT_CHAP_SECRET)"},
			&cli.StringFlag{Name: "chap-algorithms", Usage: "CHAP algorithms to offer, in order (tgt needs md5)"},
			&cli.StringFlag{Name: "mutual-user", Usage: "user name the array answers with, for mutual CHAP"},
			&cli.StringFlag{Name: "mutual-secret-file", Usage: "file holding the array's mutual CHAP secret (or set HITKIT_MUTUAL_SECRET)"},
			&cli.BoolFlag{Name: "header-digest", Usage: "require CRC32C header digests"},
			&cli.BoolFlag{Name: "data-digest", Usage: "require CRC32C data digests"},
			&cli.StringFlag{Name: "initiator-name", Usage: "this host's IQN (default: derived from the hostname)"},
			&cli.StringSliceFlag{Name: "source", Usage: "local addresses, one path each: IP,..."},
			&cli.StringSliceFlag{Name: "nic", Usage: "network interfaces, one path each: DEV,..."},
			&cli.StringSliceFlag{Name: "include-subnet", Usage: "use only sources in this CIDR (repeatable)"},
			&cli.StringSliceFlag{Name: "exclude-subnet", Usage: "never use sources in this CIDR (repeatable)"},
			&cli.IntFlag{Name: "sessions-per-slice", Value: daemon.DefaultSessionsPerSlice, Usage: "sessions per member holding the volume"},
			&cli.IntFlag{Name: "max-sessions", Value: daemon.DefaultMaxSessions, Usage: "sessions per volume at most"},
			&cli.StringFlag{Name: "group-admin-file", Usage: "file holding the group's admin password (or set HITKIT_GROUP_ADMIN), to read the volume's page map: sessions per member holding it, and I/O sent to the member that owns each page"},
			&cli.StringFlag{Name: "group-fingerprint", Usage: "SHA-256 fingerprint of the group's management API certificate (needed with --group-admin-file)"},
			&cli.StringFlag{Name: "group-api", Usage: "group management API, HOST[:PORT] (default: the portal's host, port 8443)"},
			&cli.StringFlag{Name: "policy", Value: string(mpio.PolicyLQD), Usage: "path policy: lqd, rr or failover"},
			&cli.DurationFlag{Name: "no-path-timeout", Value: mpio.DefaultNoPathTimeout, Usage: "how long I/O waits when every path is down (negative: for ever)"},
			&cli.BoolFlag{Name: "login-at-boot", Usage: "reconnect the volume whenever hitkitd starts"},
			&cli.BoolFlag{Name: "read-only", Usage: "export the volume read-only (a read-only loop device; writes are refused)"},
			jsonFlag(),
		}, daemonDirFlags()...),
		Action: mpioConnect,
	}
}

func mpioConnect(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("connect takes no arguments; did you mean --name %s?", c.Args().First())
	}
	req, err := connectRequest(c)
	if err != nil {
		return err
	}
	client, err := ensureDaemon(c.Context, c.String("runtime-dir"), c.String("state-dir"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, mpioConnectTimeout)
	defer cancel()
	v, err := client.Connect(ctx, req)
	if err != nil {
		return fmt.Errorf("connecting %s: %w", req.Name, err)
	}
	if c.Bool("json") {
		return printJSON(c, v)
	}
	return printTable(c, []string{"volume", "block device", "link", "NBD URI", "paths"},
		[][]string{{v.Name, v.BlockDevice, v.Link, v.NBDURI, strconv.Itoa(len(v.Paths))}})
}

// connectRequest turns the flags into a request; every mistake in them is
// a usage error, found before anything is started.
func connectRequest(c *cli.Context) (daemon.ConnectRequest, error) {
	req := daemon.ConnectRequest{
		Name: c.String("name"), Portal: strings.TrimSpace(c.String("portal")), Target: c.String("target"),
		LUN: c.Int("lun"), InitiatorName: c.String("initiator-name"),
		CHAPUser: c.String("chap-user"), CHAPAlgorithms: c.String("chap-algorithms"),
		MutualUser:   c.String("mutual-user"),
		HeaderDigest: c.Bool("header-digest"), DataDigest: c.Bool("data-digest"),
		Sources: c.StringSlice("source"), NICs: c.StringSlice("nic"),
		IncludeSubnets: c.StringSlice("include-subnet"), ExcludeSubnets: c.StringSlice("exclude-subnet"),
		SessionsPerSlice: c.Int("sessions-per-slice"), MaxSessions: c.Int("max-sessions"),
		Policy: c.String("policy"), NoPathTimeout: c.Duration("no-path-timeout").String(),
		LoginAtBoot: c.Bool("login-at-boot"),
		GroupAPI:    strings.TrimSpace(c.String("group-api")), GroupFingerprint: strings.TrimSpace(c.String("group-fingerprint")),
		ReadOnly: c.Bool("read-only"),
	}
	if req.Name == "" {
		req.Name = req.Target[strings.LastIndex(req.Target, ":")+1:]
	}
	if req.SessionsPerSlice < 1 || req.MaxSessions < 1 {
		return req, usagef("--sessions-per-slice and --max-sessions must be at least 1")
	}
	if req.CHAPUser == "" && c.String("chap-secret-file") != "" {
		return req, usagef("--chap-secret-file needs --chap-user")
	}
	if req.MutualUser != "" && req.CHAPUser == "" {
		return req, usagef("mutual CHAP (--mutual-user) needs one-way CHAP (--chap-user) too")
	}
	groupAdmin := secretGiven(c.String("group-admin-file"), "HITKIT_GROUP_ADMIN")
	if groupAdmin && req.GroupFingerprint == "" {
		return req, usagef("--group-admin-file (or HITKIT_GROUP_ADMIN) needs --group-fingerprint")
	}
	if !groupAdmin && (req.GroupFingerprint != "" || req.GroupAPI != "") {
		return req, usagef("--group-fingerprint and --group-api need --group-admin-file (or HITKIT_GROUP_ADMIN)")
	}
	if groupAdmin {
		req.GroupAdminPassword = "-" // checked below with the real password
	}
	if err := req.Check(); err != nil {
		return req, usagef("%v", err)
	}
	if groupAdmin {
		password, err := readSecret(c.String("group-admin-file"), "HITKIT_GROUP_ADMIN", "group admin password: ")
		if err != nil {
			return req, err
		}
		req.GroupAdminPassword = string(password)
	}
	if req.CHAPUser != "" {
		secret, err := readSecret(c.String("chap-secret-file"), "HITKIT_CHAP_SECRET", "CHAP secret: ")
		if err != nil {
			return req, err
		}
		req.CHAPSecret = string(secret)
	}
	if req.MutualUser != "" {
		secret, err := readSecret(c.String("mutual-secret-file"), "HITKIT_MUTUAL_SECRET", "mutual CHAP secret: ")
		if err != nil {
			return req, err
		}
		req.MutualSecret = string(secret)
	}
	return req, nil
}

func mpioStatusCommand() *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "show every path of a volume, or of all volumes",
		ArgsUsage:    "[NAME]",
		Flags:        append([]cli.Flag{jsonFlag()}, daemonDirFlags()...),
		OnUsageError: badFlag,
		Action:       mpioStatus,
	}
}

func mpioStatus(c *cli.Context) error {
	if c.NArg() > 1 {
		return usagef("status takes at most one volume name")
	}
	vols, err := daemonStatus(c, c.Args().First())
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, map[string]any{"volumes": vols})
	}
	header := []string{"volume", "path", "NIC/source", "local", "member port", "state", "outstanding", "IOPS", "avg lat", "max lat", "errors", "last failure"}
	var rows [][]string
	for _, v := range vols {
		for _, p := range v.Paths {
			rows = append(rows, pathRow(v.Name, p))
		}
	}
	return printTable(c, header, rows)
}

func pathRow(volume string, p mpio.PathStatus) []string {
	way := p.NIC
	if way == "" {
		way = p.Source
	}
	return []string{
		volume, strconv.Itoa(p.ID), orDash(way), orDash(p.Local), orDash(p.Remote), string(p.State),
		strconv.FormatInt(p.Outstanding, 10), strconv.FormatFloat(p.IOPS, 'f', 0, 64),
		latency(p.LatencyAvgUs), latency(p.LatencyMaxUs),
		strconv.FormatUint(p.Errors, 10), orDash(p.LastFailure),
	}
}

// latency shows microseconds as people read them: "0.42ms", "12.3ms",
// "1.25s"; "-" when the path has completed nothing lately.
func latency(us float64) string {
	ms := us / 1000
	switch {
	case us <= 0:
		return "-"
	case ms < 0.01:
		return "<0.01ms"
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
	default:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + "s"
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mpioListCommand() *cli.Command {
	return &cli.Command{
		Name:         "list",
		Usage:        "list the connected volumes",
		Flags:        append([]cli.Flag{jsonFlag()}, daemonDirFlags()...),
		OnUsageError: badFlag,
		Action:       mpioList,
	}
}

func mpioList(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("list takes no arguments")
	}
	vols, err := daemonStatus(c, "")
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, map[string]any{"volumes": vols})
	}
	var rows [][]string
	for _, v := range vols {
		rows = append(rows, []string{v.Name, v.Target, v.BlockDevice, v.Link,
			fmt.Sprintf("%d/%d", activePaths(v), len(v.Paths)), strconv.FormatBool(v.LoginAtBoot)})
	}
	return printTable(c, []string{"volume", "target", "block device", "link", "active paths", "login at boot"}, rows)
}

func activePaths(v daemon.VolumeInfo) int {
	n := 0
	for _, p := range v.Paths {
		if p.State == mpio.StateActive || p.State == mpio.StateStandby {
			n++
		}
	}
	return n
}

// daemonStatus asks a running daemon; status and list never start one,
// because a daemon that was not running has no volumes.
func daemonStatus(c *cli.Context, name string) ([]daemon.VolumeInfo, error) {
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	return daemon.NewClient(c.String("runtime-dir")).Status(ctx, name)
}

func mpioDisconnectCommand() *cli.Command {
	return &cli.Command{
		Name:         "disconnect",
		Usage:        "remove a volume's devices and log its sessions out",
		ArgsUsage:    "NAME",
		Flags:        daemonDirFlags(),
		OnUsageError: badFlag,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("disconnect needs exactly one volume name")
			}
			ctx, cancel := context.WithTimeout(c.Context, time.Minute)
			defer cancel()
			return daemon.NewClient(c.String("runtime-dir")).Disconnect(ctx, c.Args().First())
		},
	}
}

// badFlag makes a subcommand's flag errors exit with the usage code, as
// the app's own OnUsageError does for global flags.
func badFlag(c *cli.Context, err error, isSubcommand bool) error {
	return usageError{err.Error()}
}
