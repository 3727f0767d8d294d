package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/hosttune"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

func tuneCommand() *cli.Command {
	return &cli.Command{
		Name:  "tune",
		Usage: "check the host's network settings against iSCSI best practice; --fix applies the sysctl ones",
		Description: "The iSCSI NICs are the --nic ones, else those carrying the paths of volumes connected through\n" +
			"hitkitd, else those with an address on a --subnet. Exit code: 0 when no warning remains, 1 when\n" +
			"some do (or on an error), 2 on a usage mistake.",
		OnUsageError: badFlag,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "nic", Usage: "an iSCSI NIC (repeatable)"},
			&cli.StringSliceFlag{Name: "subnet", Usage: "find the iSCSI NICs by an address on this CIDR (repeatable)"},
			&cli.StringFlag{Name: "portal", Usage: "the group IP: check the route's MTU and probe it with don't-fragment echoes"},
			&cli.BoolFlag{Name: "fix", Usage: "apply the per-NIC sysctl fixes and persist them"},
			&cli.BoolFlag{Name: "fix-buffers", Usage: "with --fix: also raise the socket buffer maxima, which apply to the whole host"},
			&cli.StringFlag{Name: "sysctl-dir", Value: hosttune.DefaultSysctlDir, Usage: "where --fix persists the settings (file " + hosttune.SysctlFile + ")"},
			&cli.StringFlag{Name: "runtime-dir", Value: daemon.DefaultRuntimeDir, Usage: "hitkitd runtime directory, to find the NICs of connected volumes"},
			jsonFlag(),
		},
		Action: tune,
	}
}

// tuneReport is what `hitkit tune --json` prints.
type tuneReport struct {
	NICs      []string           `json:"nics"`
	NICSource string             `json:"nic_source"` // --nic, hitkitd, --subnet or none
	Findings  []hosttune.Finding `json:"findings"`
	Changes   []hosttune.Change  `json:"changes,omitempty"`
	Persisted string             `json:"persisted,omitempty"`
	Warnings  int                `json:"warnings"`
	Readings  hosttune.Readings  `json:"readings"`
}

func tune(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("tune takes no arguments, only flags")
	}
	if c.Bool("fix-buffers") && !c.Bool("fix") {
		return usagef("--fix-buffers goes with --fix")
	}
	subnets, err := parseSubnets(c.StringSlice("subnet"))
	if err != nil {
		return err
	}
	var portal netip.Addr
	if s := c.String("portal"); s != "" {
		if portal, err = netip.ParseAddr(s); err != nil || !portal.Is4() {
			return usagef("--portal %q: give the group IP as an IPv4 address", s)
		}
	}
	nics, err := discovery.Interfaces()
	if err != nil {
		return err
	}
	rep := tuneReport{}
	if rep.NICs, rep.NICSource, err = iscsiNICs(c, nics, subnets); err != nil {
		return err
	}
	sys := hosttune.Sysctls{Root: "/proc/sys"}
	if err := tuneCheck(sys, nics, portal, &rep); err != nil {
		return err
	}
	if c.Bool("fix") {
		if err := tuneFix(c, sys, nics, portal, &rep); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		err = printJSON(c, rep)
	} else {
		err = printTune(c, rep)
	}
	if err != nil {
		return err
	}
	if rep.Warnings > 0 {
		return cli.Exit("", exitError)
	}
	return nil
}

func parseSubnets(args []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range args {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return nil, usagef("--subnet %q: give an IPv4 CIDR such as 198.18.0.0/24", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// iscsiNICs picks the NICs to check: --nic, else the NICs of hitkitd's
// connected paths, else the NICs on --subnet.
func iscsiNICs(c *cli.Context, nics []discovery.NIC, subnets []netip.Prefix) ([]string, string, error) {
	if given := c.StringSlice("nic"); len(given) > 0 {
		var out []string
		for _, name := range given {
			if !slices.ContainsFunc(nics, func(n discovery.NIC) bool { return n.Name == name }) {
				return nil, "", usagef("--nic %q: no such NIC (ip link lists them)", name)
			}
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
		return out, "--nic", nil
	}
	if names := daemonPathNICs(c, nics); len(names) > 0 {
		return names, "hitkitd", nil
	}
	if names := hosttune.NICsOnSubnets(nics, subnets); len(names) > 0 {
		return names, "--subnet", nil
	}
	return nil, "none", nil
}

// daemonPathNICs names the NICs that carry the paths of the volumes
// hitkitd has connected; none when it is not running.
func daemonPathNICs(c *cli.Context, nics []discovery.NIC) []string {
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
	defer cancel()
	vols, err := daemon.NewClient(c.String("runtime-dir")).Status(ctx, "")
	if err != nil {
		if !errors.Is(err, daemon.ErrNotRunning) {
			logrus.WithError(err).Warn("asking hitkitd for the connected volumes")
		}
		return nil
	}
	var addrs []netip.Addr
	var named []string
	for _, v := range vols {
		for _, p := range v.Paths {
			if p.NIC != "" {
				named = append(named, p.NIC)
			}
			for _, s := range []string{p.Local, p.Source} {
				if ap, err := netip.ParseAddrPort(s); err == nil {
					addrs = append(addrs, ap.Addr())
				} else if a, err := netip.ParseAddr(s); err == nil {
					addrs = append(addrs, a)
				}
			}
		}
	}
	out := hosttune.NICsWithAddrs(nics, addrs)
	for _, n := range nics {
		if slices.Contains(named, n.Name) && !slices.Contains(out, n.Name) {
			out = append(out, n.Name)
		}
	}
	return out
}

func tuneCheck(sys hosttune.Sysctls, nics []discovery.NIC, portal netip.Addr, rep *tuneReport) error {
	r, err := hosttune.Read(sys, nics, rep.NICs)
	if err != nil {
		return err
	}
	var extra []hosttune.Finding
	if portal.IsValid() {
		if r.Path, err = hosttune.ReadPath(portal, true, time.Second); err != nil {
			extra = append(extra, hosttune.Finding{Check: "path_mtu", Level: hosttune.Warning, What: err.Error(),
				Why: "the host has no way to the array", Fix: "ip route get " + portal.String() + " shows what is missing"})
		}
	}
	if len(rep.NICs) == 0 {
		extra = append(extra, hosttune.Finding{Check: "nics", Level: hosttune.Warning,
			What: "no iSCSI NICs found: none given with --nic, no volume connected through hitkitd, and no NIC on a --subnet",
			Why:  "the per-NIC checks need to know which NICs carry iSCSI; only the host-wide ones ran",
			Fix:  "hitkit tune --nic IF --nic IF, or hitkit tune --subnet CIDR"})
	}
	rep.Readings = r
	rep.Findings = append(extra, hosttune.Check(r)...)
	rep.Warnings = hosttune.Warnings(rep.Findings)
	return nil
}

// tuneFix applies the sysctl fixes, persists them, and checks again, so
// that the report shows what remains.
func tuneFix(c *cli.Context, sys hosttune.Sysctls, nics []discovery.NIC, portal netip.Addr, rep *tuneReport) error {
	changes, err := sys.Apply(rep.Findings, c.Bool("fix-buffers"))
	rep.Changes = changes
	if len(changes) > 0 {
		path, perr := hosttune.Persist(c.String("sysctl-dir"), changes)
		if perr != nil {
			return fmt.Errorf("applied %d settings but could not persist them: %w", len(changes), perr)
		}
		rep.Persisted = path
	}
	if err != nil {
		return err
	}
	for _, ch := range changes {
		logrus.WithFields(logrus.Fields{"key": ch.Key, "old": ch.Old, "new": ch.New}).Info("sysctl set")
	}
	return tuneCheck(sys, nics, portal, rep)
}

func printTune(c *cli.Context, rep tuneReport) error {
	w := c.App.Writer
	if len(rep.NICs) > 0 {
		fmt.Fprintf(w, "iSCSI NICs (from %s): %s\n", rep.NICSource, strings.Join(rep.NICs, ", "))
	}
	if len(rep.Changes) > 0 {
		rows := make([][]string, 0, len(rep.Changes))
		for _, ch := range rep.Changes {
			rows = append(rows, []string{ch.Key, ch.Old, ch.New})
		}
		fmt.Fprintln(w, "Changed:")
		if err := printTable(c, []string{"SYSCTL", "OLD", "NEW"}, rows); err != nil {
			return err
		}
		fmt.Fprintf(w, "Persisted in %s.\n", rep.Persisted)
	}
	if len(rep.Findings) > 0 {
		rows := make([][]string, 0, len(rep.Findings))
		for _, f := range rep.Findings {
			rows = append(rows, []string{string(f.Level), f.Check, f.NIC, f.What, f.Fix})
		}
		if err := printTable(c, []string{"LEVEL", "CHECK", "NIC", "FINDING", "FIX"}, rows); err != nil {
			return err
		}
		printWhy(c, rep.Findings)
	}
	if rep.Warnings == 0 {
		fmt.Fprintln(w, "No warnings: the host follows iSCSI best practice as far as it can be read.")
	} else {
		fmt.Fprintf(w, "%d warning(s).", rep.Warnings)
		if !c.Bool("fix") && slices.ContainsFunc(rep.Findings, func(f hosttune.Finding) bool { return f.Sysctl != nil }) {
			fmt.Fprint(w, " hitkit tune --fix applies the sysctl ones.")
		}
		fmt.Fprintln(w)
	}
	return nil
}

// printWhy explains each kind of warning once, below the table.
func printWhy(c *cli.Context, fs []hosttune.Finding) {
	seen := map[string]bool{}
	for _, f := range fs {
		if f.Level != hosttune.Warning || seen[f.Why] {
			continue
		}
		seen[f.Why] = true
		fmt.Fprintf(c.App.Writer, "Why %s: %s.\n", f.Check, f.Why)
	}
}
