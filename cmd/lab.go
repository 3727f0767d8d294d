package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/array/mgmt"
	"github.com/hitkit/hitkit/array/responder"
	"github.com/hitkit/hitkit/array/setup"
	"github.com/urfave/cli/v2"
)

func labCommand() *cli.Command {
	return &cli.Command{
		Name:  "lab",
		Usage: "run a simulated array group on loopback",
		Subcommands: []*cli.Command{
			labUpCommand(),
			labStatusCommand(),
			labFaultCommand(),
			labDownCommand(),
		},
	}
}

func labDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "dir", Usage: "the group's state directory (required)"}
}

// labDir is --dir made absolute, since the background group runs from /.
// It may be given to `lab fault` or to its subcommand, so it is looked up
// along the chain of commands.
func labDir(c *cli.Context) (string, error) {
	var dir string
	for _, x := range c.Lineage() {
		if dir = x.String("dir"); dir != "" {
			break
		}
	}
	if dir == "" {
		return "", usagef("--dir is required: the group's state directory")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", usagef("--dir: %v", err)
	}
	return dir, nil
}

// labStartTimeout bounds how long `lab up` waits for the group to serve.
const labStartTimeout = 30 * time.Second

func labUpCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "create a group in DIR, or start it again from DIR, and return once it serves",
		Flags: []cli.Flag{
			labDirFlag(),
			&cli.StringFlag{Name: "name", Value: array.DefaultGroupName, Usage: "group name, part of every volume's IQN"},
			&cli.IntFlag{Name: "members", Value: array.DefaultMembers, Usage: "initialised members; 0 makes a site with no group yet, for hitkit setup-array to create"},
			&cli.IntFlag{Name: "ports-per-member", Value: array.DefaultPortsPerMember, Usage: "Ethernet ports of each member (1 to 9)"},
			&cli.StringSliceFlag{Name: "volume", Usage: "a volume as NAME:SIZE[:thick], e.g. vol1:1GiB (repeatable; default vol1:1GiB)"},
			&cli.IntFlag{Name: "uninitialized", Value: array.DefaultUninitialized, Usage: "members waiting for the setup wizard"},
			&cli.StringFlag{Name: "base-ip", Value: array.DefaultBaseIP.String(), Usage: "address plan base: group IP BASE+1, member m port p BASE+10*m+p"},
			&cli.StringFlag{Name: "page-size", Value: "1m", Usage: "unit in which volumes are spread over members"},
			&cli.DurationFlag{Name: "forward-latency", Value: array.DefaultForwardLatency, Usage: "latency added to I/O that a member forwards"},
			&cli.BoolFlag{Name: "foreground", Usage: "stay attached instead of running in the background"},
			&cli.BoolFlag{Name: "no-power-on-attention", Usage: "skip the UNIT ATTENTION a new I_T nexus sees first (libiscsi's iscsi-perf cannot retry it after a reconnect)"},
			mdnsInterfaceFlag(),
			jsonFlag(),
		},
		Action: runLabUp,
	}
}

// groupCreationFlags only matter when DIR holds no group yet.
var groupCreationFlags = []string{"name", "members", "ports-per-member", "volume", "uninitialized", "base-ip", "page-size", "forward-latency"}

func runLabUp(c *cli.Context) error {
	dir, err := labDir(c)
	if err != nil {
		return err
	}
	if err := createGroupIfMissing(c, dir); err != nil {
		return err
	}
	if c.Bool("foreground") {
		return runGroupForeground(c, dir)
	}
	client := array.NewClient(dir)
	if client.Ping() == nil {
		fmt.Fprintf(c.App.ErrWriter, "hitkit: a group is already running in %s\n", dir)
	} else if err := startGroupBackground(dir, c.Bool("no-power-on-attention")); err != nil {
		return err
	}
	st, err := client.Status()
	if err != nil {
		return err
	}
	return printLabUp(c, st)
}

// createGroupIfMissing creates the group from the flags, so that bad
// flags fail here, before anything runs in the background.
func createGroupIfMissing(c *cli.Context, dir string) error {
	if array.Exists(dir) {
		for _, f := range groupCreationFlags {
			if c.IsSet(f) {
				fmt.Fprintf(c.App.ErrWriter, "hitkit: %s already holds a group; --%s applies only when creating one and is ignored\n", dir, f)
			}
		}
		return nil
	}
	spec, err := groupSpec(c)
	if err != nil {
		return err
	}
	if _, err := array.Create(dir, spec); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

func groupSpec(c *cli.Context) (array.Spec, error) {
	base, err := netip.ParseAddr(c.String("base-ip"))
	if err != nil {
		return array.Spec{}, usagef("--base-ip: %v", err)
	}
	pageSize, err := parseSize(c.String("page-size"))
	if err != nil {
		return array.Spec{}, usagef("--page-size: %v", err)
	}
	spec := array.Spec{
		Name: c.String("name"), BaseIP: base, Members: c.Int("members"), PortsPerMember: c.Int("ports-per-member"),
		Uninitialized: c.Int("uninitialized"), PageSize: pageSize, ForwardLatency: c.Duration("forward-latency"),
	}
	if spec.Members < 0 || spec.PortsPerMember < 1 || spec.Uninitialized < 0 || spec.ForwardLatency < 0 {
		return spec, usagef("--ports-per-member must be at least 1, --members, --uninitialized and --forward-latency at least 0")
	}
	if spec.Members == 0 {
		// A site with no group yet: the setup wizard forms it.
		if spec.Uninitialized == 0 || c.IsSet("volume") {
			return spec, usagef("--members 0 makes a site with no group yet: give --uninitialized 1 or more members for the setup wizard, and no --volume")
		}
		spec.Members = -1 // Spec's zero means the default
	}
	if spec.Uninitialized == 0 {
		spec.Uninitialized = -1 // Spec's zero means the default
	}
	for _, v := range c.StringSlice("volume") {
		vs, err := parseVolumeFlag(v)
		if err != nil {
			return spec, err
		}
		spec.Volumes = append(spec.Volumes, vs)
	}
	return spec, nil
}

// parseVolumeFlag reads NAME:SIZE[:thick].
func parseVolumeFlag(v string) (array.VolumeSpec, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "thick") {
		return array.VolumeSpec{}, usagef("--volume %q: write NAME:SIZE or NAME:SIZE:thick, e.g. vol1:1GiB", v)
	}
	size, err := parseSize(strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(parts[1]), "b"), "i"))
	if err != nil {
		return array.VolumeSpec{}, usagef("--volume %q: %v", v, err)
	}
	return array.VolumeSpec{Name: parts[0], Size: size, Thick: len(parts) == 3}, nil
}

// startGroupBackground runs `hitkit lab up --foreground` detached in its
// own session, with its output appended to DIR/lab.log, and waits until
// its control socket answers.
func startGroupBackground(dir string, noPowerOnAttention bool) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(dir, "lab.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := []string{"lab", "up", "--dir", dir, "--foreground"}
	if noPowerOnAttention {
		args = append(args, "--no-power-on-attention")
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the group: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return waitServing(dir, logPath, exited)
}

// waitServing polls the control socket until the group answers, it
// exits, or labStartTimeout passes.
func waitServing(dir, logPath string, exited <-chan error) error {
	client := array.NewClient(dir)
	deadline := time.Now().Add(labStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("the group exited while starting (%v); the end of %s says:\n%s", err, logPath, logTail(logPath, 1500))
		case <-time.After(50 * time.Millisecond):
		}
		if client.Ping() == nil {
			return nil
		}
	}
	return fmt.Errorf("the group did not answer within %v; see %s", labStartTimeout, logPath)
}

func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// runGroupForeground serves the group until SIGINT, SIGTERM or `lab down`.
func runGroupForeground(c *cli.Context, dir string) error {
	opts := labServices(c)
	g, err := array.Open(dir, opts)
	if err != nil {
		return err
	}
	pidFile := filepath.Join(dir, "lab.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		g.Close()
		return err
	}
	defer os.Remove(pidFile)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	if err := printLabUp(c, g.Status()); err != nil {
		g.Close()
		return err
	}
	select {
	case sig := <-signals:
		g.Logger().WithField("signal", sig.String()).Info("stopping on a signal")
		return g.Close()
	case <-g.Done():
		return g.Close() // the stop's error, if any
	}
}

// labServices are the services of a lab site: the setup endpoints and
// the discovery responder of its uninitialised members, announcing them,
// and the management API once the site holds a group.
func labServices(c *cli.Context) array.Options {
	setupSvc := setup.New()
	resp := withMDNS(c, responder.New())
	resp.SetupInfo = func(m int) (string, string) {
		url, fp, _ := setupSvc.Endpoint(m)
		return url, fp
	}
	return array.Options{
		NoPowerOnAttention: c.Bool("no-power-on-attention"),
		Services:           []array.Service{setupSvc, resp},
		GroupServices:      []array.Service{mgmt.New()},
	}
}

// labUpOutput is what `lab up --json` prints.
type labUpOutput struct {
	Group             string `json:"group"`
	Dir               string `json:"dir"`
	PID               int    `json:"pid"`
	GroupIP           string `json:"group_ip"`
	AdminPasswordFile string `json:"admin_password_file"`
	ManagementAPI     string `json:"management_api"`
	CertFingerprint   string `json:"cert_fingerprint_sha256"`
	// MembershipPasswordFile lets another member join (setup-array --join).
	MembershipPasswordFile string        `json:"membership_password_file,omitempty"`
	Volumes                []labUpVolume `json:"volumes"`
	Members                []labUpMember `json:"members"`
}

type labUpVolume struct {
	Name           string `json:"name"`
	Size           int64  `json:"size"`
	IQN            string `json:"iqn"`
	CHAPUser       string `json:"chap_user,omitempty"`
	CHAPSecretFile string `json:"chap_secret_file"`
}

type labUpMember struct {
	Number int      `json:"number"`
	Name   string   `json:"name,omitempty"`
	State  string   `json:"state"`
	Ports  []string `json:"ports"`
	// SetupEndpoint and SetupFingerprint are an uninitialised member's
	// setup endpoint and its certificate's SHA-256, for setup-array.
	SetupEndpoint    string `json:"setup_endpoint,omitempty"`
	SetupFingerprint string `json:"setup_fingerprint,omitempty"`
}

func printLabUp(c *cli.Context, st array.Status) error {
	out := labUpOutput{Group: st.Name, Dir: st.Dir, PID: st.PID, Volumes: []labUpVolume{}, Members: []labUpMember{}}
	if st.Name != "" {
		out.GroupIP, out.AdminPasswordFile, out.MembershipPasswordFile = st.GroupAddr, st.AdminPasswordFile, st.MembershipPasswordFile
		out.ManagementAPI = "https://" + st.ManagementAddr
		out.CertFingerprint, _ = mgmt.FingerprintFile(st.Dir)
	}
	for _, v := range st.Volumes {
		out.Volumes = append(out.Volumes, labUpVolume{Name: v.Name, Size: v.Size, IQN: v.IQN, CHAPUser: v.CHAPUser, CHAPSecretFile: v.CHAPSecretFile})
	}
	for _, m := range st.Members {
		lm := labUpMember{Number: m.Number, Name: m.Name, State: string(m.State), Ports: []string{}, SetupEndpoint: m.SetupEndpoint, SetupFingerprint: m.SetupFingerprint}
		for _, p := range m.Ports {
			lm.Ports = append(lm.Ports, p.Addr)
		}
		out.Members = append(out.Members, lm)
	}
	if c.Bool("json") {
		return printJSON(c, out)
	}
	w := c.App.Writer
	if out.Group == "" {
		fmt.Fprintf(w, "the lab site is serving (pid %d, state in %s) and holds no group yet: create one with hitkit setup-array\n", out.PID, out.Dir)
		printSetupEndpoints(w, st)
		return nil
	}
	fmt.Fprintf(w, "group %s is serving (pid %d, state in %s)\n", out.Group, out.PID, out.Dir)
	fmt.Fprintf(w, "group IP:        %s\n", out.GroupIP)
	fmt.Fprintf(w, "admin password:  %s\n", out.AdminPasswordFile)
	fmt.Fprintf(w, "membership password: %s\n", out.MembershipPasswordFile)
	fmt.Fprintf(w, "management API:  %s (certificate SHA-256 %s)\n", out.ManagementAPI, out.CertFingerprint)
	printSetupEndpoints(w, st)
	rows := [][]string{}
	for _, v := range out.Volumes {
		rows = append(rows, []string{v.Name, formatBytes(v.Size), v.IQN, v.CHAPUser, v.CHAPSecretFile})
	}
	return printTable(c, []string{"volume", "size", "iqn", "chap user", "chap secret file"}, rows)
}

// printSetupEndpoints says where each uninitialised member waits for the
// setup wizard.
func printSetupEndpoints(w io.Writer, st array.Status) {
	for _, m := range st.Members {
		if m.State == array.MemberUninitialized && m.SetupEndpoint != "" {
			fmt.Fprintf(w, "member %d (serial %s) waits for setup at %s (certificate SHA-256 %s)\n", m.Number, m.Serial, m.SetupEndpoint, m.SetupFingerprint)
		}
	}
}

func labStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the members, ports, volumes, sessions and faults of a running group",
		Flags: []cli.Flag{labDirFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			dir, err := labDir(c)
			if err != nil {
				return err
			}
			st, err := array.NewClient(dir).Status()
			if err != nil {
				return notRunningHint(err, dir)
			}
			if c.Bool("json") {
				return printJSON(c, st)
			}
			return printLabStatus(c, st)
		},
	}
}

func notRunningHint(err error, dir string) error {
	if errors.Is(err, array.ErrNotRunning) {
		return fmt.Errorf("no lab group is running in %s; start it with hitkit lab up --dir %s", dir, dir)
	}
	return err
}

func printLabStatus(c *cli.Context, st array.Status) error {
	w := c.App.Writer
	if st.Name == "" {
		fmt.Fprintf(w, "lab site with no group yet, pid %d: create one with hitkit setup-array\n", st.PID)
	} else {
		fmt.Fprintf(w, "group %s, group IP %s (%s, %d sessions), pid %d, forwarding latency %v\n",
			st.Name, st.GroupAddr, st.GroupPort.State, st.GroupPort.Sessions, st.PID, time.Duration(st.ForwardLatency))
		fmt.Fprintf(w, "admin password in %s, membership password in %s\n", st.AdminPasswordFile, st.MembershipPasswordFile)
	}
	printSetupEndpoints(w, st)
	fmt.Fprintln(w)
	rows := [][]string{}
	for _, m := range st.Members {
		name := m.Name
		if name == "" {
			name = "-"
		}
		if len(m.Ports) == 0 {
			rows = append(rows, []string{strconv.Itoa(m.Number), name, m.Serial, string(m.State), "-", "-", "-", strconv.FormatUint(m.Forwarded, 10)})
		}
		for _, p := range m.Ports {
			state := p.State
			if p.Latency != 0 {
				state += " +" + time.Duration(p.Latency).String()
			}
			rows = append(rows, []string{strconv.Itoa(m.Number), name, m.Serial, string(m.State), p.Addr, state,
				strconv.Itoa(p.Sessions), strconv.FormatUint(m.Forwarded, 10)})
		}
	}
	if err := printTable(c, []string{"member", "name", "serial", "state", "port", "port state", "sessions", "forwarded"}, rows); err != nil {
		return err
	}
	rows = [][]string{}
	for _, v := range st.Volumes {
		rows = append(rows, []string{v.Name, formatBytes(v.Size), formatBytes(v.Allocated), v.IQN, formatPages(v.PagesPerMember),
			strconv.FormatUint(v.Forwarded, 10), strconv.Itoa(v.Sessions), strconv.Itoa(v.Snapshots), formatBytes(v.SnapshotReserveUsed)})
	}
	fmt.Fprintln(w)
	if err := printTable(c, []string{"volume", "size", "allocated", "iqn", "pages per member", "forwarded", "sessions", "snapshots", "reserve used"}, rows); err != nil {
		return err
	}
	if len(st.Sessions) > 0 {
		rows = [][]string{}
		for _, s := range st.Sessions {
			rows = append(rows, []string{strconv.Itoa(int(s.TSIH)), s.Type, s.Volume, s.Initiator, s.Portal, s.Remote, strconv.FormatUint(s.Commands, 10)})
		}
		fmt.Fprintln(w)
		if err := printTable(c, []string{"tsih", "type", "volume", "initiator", "portal", "remote", "commands"}, rows); err != nil {
			return err
		}
	}
	if len(st.Faults) > 0 {
		rows = [][]string{}
		for _, f := range st.Faults {
			until := "-"
			if !f.Until.IsZero() {
				until = time.Until(f.Until).Round(100 * time.Millisecond).String()
			}
			rows = append(rows, []string{string(f.Kind), f.Where, f.Detail, until})
		}
		fmt.Fprintln(w)
		return printTable(c, []string{"fault", "where", "detail", "remaining"}, rows)
	}
	return nil
}

func formatPages(m map[int]int64) string {
	var parts []string
	for n := 1; len(parts) < len(m); n++ {
		if p, ok := m[n]; ok {
			parts = append(parts, fmt.Sprintf("%d:%d", n, p))
		}
	}
	return strings.Join(parts, " ")
}

// formatBytes prints sizes in binary units, as --volume takes them.
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// faultFlags are the flags that each fault kind takes, besides --dir
// and --json.
var faultFlags = map[array.FaultKind][]string{
	array.FaultPortDown:       {"port", "member"},
	array.FaultPortUp:         {"port", "member"},
	array.FaultBlackhole:      {"port", "member"},
	array.FaultUnblackhole:    {"port", "member"},
	array.FaultLatency:        {"port", "member", "latency"},
	array.FaultFailover:       {"member", "duration"},
	array.FaultLogoutRequest:  {"session", "volume", "port", "member", "within"},
	array.FaultForwardLatency: {"latency"},
	array.FaultClear:          {},
}

var faultUsage = map[array.FaultKind]string{
	array.FaultPortDown:       "close a port's listener and reset its connections",
	array.FaultPortUp:         "bring a port back",
	array.FaultBlackhole:      "keep a port's TCP up but answer nothing (a dead switch)",
	array.FaultUnblackhole:    "let a blackholed port answer again",
	array.FaultLatency:        "add latency to every response through a port (0 removes it)",
	array.FaultFailover:       "control-module failover: drop all of a member's ports for --duration",
	array.FaultLogoutRequest:  "ask sessions to log out within --within (AsyncEvent 1)",
	array.FaultForwardLatency: "set the latency of I/O forwarded between members",
	array.FaultClear:          "undo every port and member fault",
}

func faultFlag(name string) cli.Flag {
	switch name {
	case "port":
		return &cli.StringFlag{Name: "port", Usage: "a port, host[:port], e.g. 127.0.10.11:3260 (the group IP counts)"}
	case "member":
		return &cli.IntFlag{Name: "member", Usage: "a member number: all its ports"}
	case "volume":
		return &cli.StringFlag{Name: "volume", Usage: "a volume: all its sessions"}
	case "session":
		return &cli.IntFlag{Name: "session", Usage: "a session's TSIH, as lab status shows it"}
	case "latency":
		return &cli.DurationFlag{Name: "latency", Usage: "latency, e.g. 5ms (0 removes it)", Required: true}
	case "duration":
		return &cli.DurationFlag{Name: "duration", Value: array.DefaultFailoverDuration, Usage: "how long the ports stay down"}
	case "within":
		return &cli.DurationFlag{Name: "within", Value: array.DefaultLogoutWithin, Usage: "logout deadline"}
	}
	panic("no fault flag " + name)
}

// labFaultCommand has one subcommand per fault kind, so that each takes
// its own flags: hitkit lab fault port-down --dir DIR --port ADDR.
func labFaultCommand() *cli.Command {
	cmd := &cli.Command{
		Name:      "fault",
		Usage:     "inject a fault into a running group, or clear them",
		ArgsUsage: "KIND",
		Flags:     []cli.Flag{labDirFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown fault %q; the kinds are %v", c.Args().First(), array.FaultKinds)
			}
			return usagef("lab fault needs a fault kind, one of %v", array.FaultKinds)
		},
	}
	for _, kind := range array.FaultKinds {
		flags := []cli.Flag{labDirFlag(), jsonFlag()}
		for _, name := range faultFlags[kind] {
			flags = append(flags, faultFlag(name))
		}
		cmd.Subcommands = append(cmd.Subcommands, &cli.Command{
			Name: string(kind), Usage: faultUsage[kind], Flags: flags,
			Action: func(c *cli.Context) error { return runLabFault(c, kind) },
		})
	}
	return cmd
}

func runLabFault(c *cli.Context, kind array.FaultKind) error {
	dir, err := labDir(c)
	if err != nil {
		return err
	}
	if c.NArg() > 0 {
		return usagef("unexpected argument %q: put flags before it, or drop it", c.Args().First())
	}
	session := c.Int("session")
	if session < 0 || session > 0xffff {
		return usagef("--session must be a TSIH from 1 to 65535")
	}
	req := array.FaultRequest{
		Kind: kind, Port: c.String("port"), Member: c.Int("member"), Volume: c.String("volume"),
		Session: uint16(session), Latency: array.Duration(c.Duration("latency")),
		Duration: array.Duration(c.Duration("duration")), Within: array.Duration(c.Duration("within")),
	}
	msg, err := array.NewClient(dir).Fault(req)
	if err != nil {
		return notRunningHint(err, dir)
	}
	if c.Bool("json") {
		return printJSON(c, map[string]any{"ok": true, "message": msg})
	}
	fmt.Fprintln(c.App.Writer, msg)
	return nil
}

// labDownTimeout bounds how long `lab down` waits for the group to exit.
const labDownTimeout = 30 * time.Second

func labDownCommand() *cli.Command {
	return &cli.Command{
		Name:  "down",
		Usage: "stop a running group cleanly; its data stays in DIR",
		Flags: []cli.Flag{labDirFlag()},
		Action: func(c *cli.Context) error {
			dir, err := labDir(c)
			if err != nil {
				return err
			}
			client := array.NewClient(dir)
			pid := readPIDFile(filepath.Join(dir, "lab.pid")) // before the group removes it
			if err := client.Down(); errors.Is(err, array.ErrNotRunning) {
				fmt.Fprintf(c.App.Writer, "no lab group is running in %s\n", dir)
				return nil
			} else if err != nil {
				return err
			}
			if err := client.WaitDown(labDownTimeout); err != nil {
				return err
			}
			if err := waitProcessGone(pid, labDownTimeout); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "group in %s stopped; its data stays there\n", dir)
			return nil
		},
	}
}

// readPIDFile returns the pid in a file, or 0.
func readPIDFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// waitProcessGone waits for a process to exit, so that `lab down`
// returns only when the group has synced and let go of DIR. Pid 0 (an
// in-process group, or no pid file) is gone already.
func waitProcessGone(pid int, d time.Duration) error {
	if pid == 0 {
		return nil
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !processAlive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the group's process %d is still running after %v", pid, d)
}

// processAlive says whether pid runs. A zombie does not: the group's
// parent may be an init that is slow to reap, or never does.
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	return !bytes.HasPrefix(bytes.TrimSpace(rest), []byte("Z"))
}

// mdnsEnv carries `lab up --mdns-interface` to the background group,
// which is `lab up --foreground` run again with this environment.
const mdnsEnv = "HITKIT_LAB_MDNS_INTERFACE"

// mdnsInterfaceFlag is `lab up --mdns-interface IF`.
func mdnsInterfaceFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "mdns-interface",
		EnvVars: []string{mdnsEnv},
		Usage:   "also announce the uninitialised members over mDNS on this interface (its IPv4 address); loopback has no multicast, so use a veth, e.g. in a test namespace. Default: no mDNS",
		Action:  func(_ *cli.Context, v string) error { return os.Setenv(mdnsEnv, v) },
	}
}

// withMDNS sets the lab responder's mDNS interface from --mdns-interface.
func withMDNS(c *cli.Context, r *responder.Responder) *responder.Responder {
	r.MDNSInterface = c.String("mdns-interface")
	return r
}
