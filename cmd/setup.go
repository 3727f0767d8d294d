package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/remotesetup"
	"github.com/hitkit/hitkit/setupapi"
)

// answerFlags are the flags that carry the wizard's answers; any of them
// (or --answers) makes setup-array non-interactive. --serial and
// --initiator-name are not among them: the wizard takes them as choices
// made in advance.
var answerFlags = []string{
	"member-name", "ip", "gateway", "group", "group-ip", "create", "join",
	"membership-password-file", "admin-password-file", "raid",
	"host-volume", "host-volume-size", "chap-secret-out",
}

func setupArrayCommand() *cli.Command {
	return &cli.Command{
		Name:  "setup-array",
		Usage: "initialise an uninitialised array: member name and network, create or join a group, passwords, RAID",
		UsageText: "hitkit setup-array [--probe HOST|RANGE]...            (interactive, on a terminal)\n" +
			"   hitkit setup-array --serial S --member-name N --ip A/PREFIX --gateway G --group NAME --group-ip IP\n" +
			"       (--create|--join) --membership-password-file F --admin-password-file F --raid raid10 --yes\n" +
			"   hitkit setup-array --answers FILE.yaml --yes",
		OnUsageError: badFlag,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "answers", Usage: "YAML file with the answers (keys as the flags' names; password keys are file paths)"},
			&cli.StringFlag{Name: "serial", Usage: "serial of the array to set up"},
			&cli.StringFlag{Name: "member-name", Usage: "the member's name (a-z, 0-9, '.', '-')"},
			&cli.StringFlag{Name: "ip", Usage: "the member's address as ADDRESS/PREFIX; the prefix is the netmask"},
			&cli.StringFlag{Name: "gateway", Usage: "default gateway, in the member's subnet"},
			&cli.StringFlag{Name: "group", Usage: "group name"},
			&cli.StringFlag{Name: "group-ip", Usage: "group IP address, in the member's subnet"},
			&cli.BoolFlag{Name: "create", Usage: "create a new group at --group-ip"},
			&cli.BoolFlag{Name: "join", Usage: "join the group at --group-ip"},
			&cli.StringFlag{Name: "membership-password-file", Usage: "file holding the group's membership password"},
			&cli.StringFlag{Name: "admin-password-file", Usage: "file holding the group's admin password (set by --create; needed by --host-volume)"},
			&cli.StringFlag{Name: "raid", Usage: "RAID policy: " + strings.Join(setupapi.RAIDPolicies, ", ") + " (default raid10)"},
			&cli.BoolFlag{Name: "yes", Usage: "apply without asking for confirmation"},
			&cli.StringFlag{Name: "host-volume", Usage: "afterwards, create this volume for this host"},
			&cli.StringFlag{Name: "host-volume-size", Usage: "size of --host-volume, such as 10GiB"},
			&cli.StringFlag{Name: "chap-secret-out", Usage: "new file (mode 0600) for --host-volume's generated CHAP secret"},
			&cli.StringFlag{Name: "initiator-name", Usage: "this host's IQN for the volume's access record (default: derived from the hostname)"},
			&cli.StringSliceFlag{Name: "probe", Usage: "HOST, CIDR or FIRST-LAST range to probe for arrays (repeatable)"},
			&cli.StringSliceFlag{Name: "subnet", Usage: "ask mDNS on the interfaces in this CIDR (repeatable; default: every local subnet)"},
			&cli.BoolFlag{Name: "no-mdns", Usage: "do not ask mDNS, only --probe"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "how long to wait for discovery answers"},
			jsonFlag(),
		},
		Action: runSetupArray,
	}
}

// setupOutput is what a finished setup prints with --json.
type setupOutput struct {
	Serial                string                    `json:"serial"`
	MemberName            string                    `json:"member_name"`
	Member                int                       `json:"member"`
	Mode                  string                    `json:"mode"`
	GroupName             string                    `json:"group_name"`
	GroupIP               string                    `json:"group_ip"`
	ManagementAddr        string                    `json:"management_addr"`
	ManagementFingerprint string                    `json:"management_fingerprint"`
	Capacity              int64                     `json:"capacity"`
	HostAccess            *remotesetup.AccessResult `json:"host_access,omitempty"`
	ConnectCommand        string                    `json:"connect_command,omitempty"`
}

func runSetupArray(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("setup-array takes no arguments; give the answers as flags or --answers FILE")
	}
	if c.Duration("timeout") <= 0 {
		return usagef("--timeout must be positive")
	}
	if c.IsSet("answers") || anySet(c, answerFlags) {
		return setupNonInteractive(c)
	}
	if !stdinIsTerminal() {
		return usagef("stdin is not a terminal: give the answers as flags (--serial, --member-name, --ip, ...) or --answers FILE.yaml, with --yes")
	}
	return setupInteractive(c)
}

func anySet(c *cli.Context, names []string) bool {
	for _, n := range names {
		if c.IsSet(n) {
			return true
		}
	}
	return false
}

func stdinIsTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// setupNonInteractive takes the answers from flags or a file, checks them
// all before sending anything, and applies them with --yes (or after a
// confirmation on a terminal).
func setupNonInteractive(c *cli.Context) error {
	t, plan, err := checkedAnswers(c)
	if err != nil {
		return err
	}
	defer t.Client.Close()
	if err := confirmSetup(c, t, plan); err != nil {
		return err
	}
	res, err := applySetup(c, t, plan)
	if err != nil {
		return err
	}
	out := setupResult(t, plan, res)
	if plan.Access != nil {
		if plan.Access.InitiatorName == "" {
			plan.Access.InitiatorName = initiator.DefaultInitiatorName()
		}
		if err := addHostAccess(&out, res, plan, *plan.Access); err != nil {
			// What the setup did still needs saying: the group is there.
			if perr := printSetupResult(c, out); perr != nil {
				return perr
			}
			return err
		}
	}
	return printSetupResult(c, out)
}

// checkedAnswers checks the answers on their own (a wrong one is a usage
// error), finds the array, and checks them against its network and what
// answers at the group IP.
func checkedAnswers(c *cli.Context) (remotesetup.Target, remotesetup.Plan, error) {
	a, err := answersFromFlags(c)
	if err != nil {
		return remotesetup.Target{}, remotesetup.Plan{}, err
	}
	plan, err := a.Check()
	if err != nil {
		return remotesetup.Target{}, plan, answerError(err)
	}
	arrays, err := findArrays(c, a.Probe, a.Subnet)
	if err != nil {
		return remotesetup.Target{}, plan, err
	}
	arr, err := remotesetup.FindSerial(arrays, plan.Serial)
	if err != nil {
		return remotesetup.Target{}, plan, err
	}
	t, err := remotesetup.Connect(arr)
	if err != nil {
		return t, plan, err
	}
	if err := a.CheckNetwork(plan, t.Info); err != nil {
		t.Client.Close()
		return t, plan, answerError(err)
	}
	if err := remotesetup.CheckGroupIP(c.Context, plan.GroupIP, plan.Request.Mode); err != nil {
		t.Client.Close()
		return t, plan, fmt.Errorf("--group-ip: %w", err)
	}
	return t, plan, nil
}

// confirmSetup lets a setup go ahead: with --yes, or when the user says
// yes to the summary on a terminal.
func confirmSetup(c *cli.Context, t remotesetup.Target, plan remotesetup.Plan) error {
	if c.Bool("yes") {
		return nil
	}
	if !stdinIsTerminal() {
		return usagef("refusing to apply without --yes: the answers are valid and array %s answers; add --yes to set it up", plan.Serial)
	}
	remotesetup.PrintSummary(c.App.Writer, t, plan)
	ok, err := terminalPrompter(c.App.Writer).Confirm("apply this setup to the array", false)
	if err == nil && !ok {
		err = remotesetup.ErrNotConfirmed
	}
	return err
}

// answersFromFlags loads --answers, if given, and lets each flag that is
// set override the file.
func answersFromFlags(c *cli.Context) (*remotesetup.Answers, error) {
	a := &remotesetup.Answers{}
	if path := c.String("answers"); path != "" {
		var err error
		if a, err = remotesetup.LoadAnswers(path); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	strs := map[string]*string{
		"serial": &a.Serial, "member-name": &a.MemberName, "ip": &a.IP, "gateway": &a.Gateway,
		"group": &a.Group, "group-ip": &a.GroupIP, "raid": &a.RAID,
		"membership-password-file": &a.MembershipPasswordFile, "admin-password-file": &a.AdminPasswordFile,
		"host-volume": &a.HostVolume, "host-volume-size": &a.HostVolumeSize,
		"chap-secret-out": &a.CHAPSecretOut, "initiator-name": &a.InitiatorName,
	}
	for name, p := range strs {
		if c.IsSet(name) {
			*p = c.String(name)
			a.SetByFlag(name)
		}
	}
	for name, p := range map[string]*bool{"create": &a.Create, "join": &a.Join} {
		if c.IsSet(name) {
			*p = c.Bool(name)
			a.SetByFlag(name)
		}
	}
	if c.IsSet("probe") {
		a.Probe = c.StringSlice("probe")
	}
	if c.IsSet("subnet") {
		a.Subnet = c.StringSlice("subnet")
	}
	return a, nil
}

// answerError makes a wrong answer a usage error (exit 2).
func answerError(err error) error {
	var fe *remotesetup.FieldError
	if errors.As(err, &fe) {
		return usageError{fe.Error()}
	}
	return err
}

// findArrays asks mDNS and probes the given ranges for uninitialised arrays.
func findArrays(c *cli.Context, probes, subnets []string) ([]discovery.Array, error) {
	q := discovery.UninitQuery{Timeout: c.Duration("timeout"), NoMDNS: c.Bool("no-mdns")}
	for _, s := range subnets {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, usagef("--subnet %q: %v", s, err)
		}
		q.Subnets = append(q.Subnets, p.Masked())
	}
	seen := map[netip.Addr]bool{}
	for _, s := range probes {
		addrs, err := discovery.ParseProbeRange(s)
		if err != nil {
			return nil, usagef("--probe: %v", err)
		}
		for _, a := range addrs {
			if !discovery.Probeable(a) {
				return nil, usagef("--probe: refusing to probe %s (in %s): probes go only to 127.0.0.0/8 and 198.18.0.0/15", a, s)
			}
			if !seen[a] {
				seen[a] = true
				q.Probe = append(q.Probe, a)
			}
		}
	}
	if q.NoMDNS && len(q.Probe) == 0 {
		return nil, usagef("--no-mdns needs --probe: there is nowhere else to look")
	}
	ctx, cancel := context.WithTimeout(c.Context, q.Timeout+5*time.Second)
	defer cancel()
	return discovery.FindUninitialized(ctx, q)
}

// applySetup runs the setup, with a progress bar on a terminal and
// quietly otherwise.
func applySetup(c *cli.Context, t remotesetup.Target, plan remotesetup.Plan) (setupapi.Result, error) {
	show := func(setupapi.Progress) {}
	var bar *progressbar.ProgressBar
	if f, ok := c.App.ErrWriter.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(100,
			progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription("setting up "+plan.Serial),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionClearOnFinish(),
		)
		show = func(p setupapi.Progress) {
			if p.Step != "" {
				bar.Describe(p.Step)
			}
			bar.Set(p.Percent)
		}
	}
	res, err := remotesetup.Apply(c.Context, t.Client, plan.Request, show)
	switch {
	case bar != nil && err == nil:
		bar.Finish()
	case bar != nil:
		bar.Exit() // leaves the bar where the setup stopped
		fmt.Fprintln(c.App.ErrWriter)
	}
	return res, err
}

func setupResult(t remotesetup.Target, plan remotesetup.Plan, res setupapi.Result) setupOutput {
	return setupOutput{
		Serial: t.Array.Serial, MemberName: res.MemberName, Member: res.Member, Mode: plan.Request.Mode,
		GroupName: res.GroupName, GroupIP: res.GroupIP, ManagementAddr: res.ManagementAddr,
		ManagementFingerprint: res.ManagementFingerprint, Capacity: res.Capacity,
	}
}

func addHostAccess(out *setupOutput, res setupapi.Result, plan remotesetup.Plan, h remotesetup.HostAccess) error {
	acc, err := remotesetup.SetUpHostAccess(res, plan.AdminPassword, h)
	if err != nil {
		return fmt.Errorf("the array is set up, but the host access is not: %w", err)
	}
	out.HostAccess = &acc
	out.ConnectCommand = connectCommand(acc)
	return nil
}

// connectCommand is the `hitkit mpio connect` line that logs in to the
// new volume with its access record and CHAP secret.
func connectCommand(a remotesetup.AccessResult) string {
	args := []string{"hitkit", "mpio", "connect", "--portal", a.Portal, "--target", a.IQN,
		"--chap-user", a.CHAPUser, "--chap-secret-file", a.SecretFile, "--initiator-name", a.InitiatorName}
	for i, s := range args {
		args[i] = shellQuote(s)
	}
	return strings.Join(args, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@=+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printSetupResult(c *cli.Context, out setupOutput) error {
	if c.Bool("json") {
		return printJSON(c, out)
	}
	verb := "created group"
	if out.Mode == setupapi.ModeJoin {
		verb = "joined group"
	}
	rows := [][]string{
		{"member", fmt.Sprintf("%s (member %d, serial %s)", out.MemberName, out.Member, out.Serial)},
		{verb, out.GroupName},
		{"group IP (iSCSI portal)", out.GroupIP},
		{"management API", out.ManagementAddr},
		{"management fingerprint", out.ManagementFingerprint},
		{"capacity after RAID", humanBytes(out.Capacity)},
	}
	if err := printTable(c, []string{"setup", "done"}, rows); err != nil {
		return err
	}
	return printHostAccess(c, out)
}

// printHostAccess shows the new volume and how to connect to it.
func printHostAccess(c *cli.Context, out setupOutput) error {
	a := out.HostAccess
	if a == nil {
		return nil
	}
	rows := [][]string{
		{"volume", fmt.Sprintf("%s (%s), %s", a.Volume, a.IQN, humanBytes(a.Size))},
		{"access record", fmt.Sprintf("initiator %s, CHAP user %s", a.InitiatorName, a.CHAPUser)},
		{"CHAP secret file", a.SecretFile},
	}
	if err := printTable(c, []string{"host access", "done"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "\nTo use the volume from this host:\n  %s\n", out.ConnectCommand)
	return nil
}

// terminalPrompter asks on the terminal: lines read unbuffered from stdin,
// passwords without echo.
func terminalPrompter(out io.Writer) *remotesetup.Prompter {
	fd := int(os.Stdin.Fd())
	return &remotesetup.Prompter{
		In: os.Stdin, Out: out,
		ReadPassword: func() ([]byte, error) { return term.ReadPassword(fd) },
	}
}

// restoreTerminalOnInterrupt puts the terminal back (echo on) when Ctrl-C
// arrives while a password prompt has echo off, then exits.
func restoreTerminalOnInterrupt(stderr io.Writer) (stop func()) {
	fd := int(os.Stdin.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return func() {}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			term.Restore(fd, state)
			fmt.Fprintln(stderr, "\nhitkit: interrupted; nothing more was applied")
			os.Exit(exitError)
		case <-done:
		}
	}()
	return func() { signal.Stop(sig); close(done) }
}

// setupInteractive is the wizard on a terminal.
func setupInteractive(c *cli.Context) error {
	stop := restoreTerminalOnInterrupt(c.App.ErrWriter)
	defer stop()
	out := c.App.Writer
	fmt.Fprintln(out, "Looking for uninitialised arrays...")
	arrays, err := findArrays(c, c.StringSlice("probe"), c.StringSlice("subnet"))
	if err != nil {
		return err
	}
	w := &remotesetup.Wizard{P: terminalPrompter(out), Arrays: arrays, Serial: c.String("serial")}
	t, plan, err := w.Run(c.Context)
	if err != nil {
		return err
	}
	defer t.Client.Close()
	res, err := applySetup(c, t, plan)
	if err != nil {
		return err
	}
	result := setupResult(t, plan, res)
	if !c.Bool("json") {
		if err := printSetupResult(c, result); err != nil {
			return err
		}
	}
	iqn := c.String("initiator-name")
	if iqn == "" {
		iqn = initiator.DefaultInitiatorName()
	}
	h, err := w.AskHostAccess(&plan, iqn)
	if err != nil {
		return err
	}
	if h != nil {
		if err := addHostAccess(&result, res, plan, *h); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return printJSON(c, result)
	}
	return printHostAccess(c, result)
}
