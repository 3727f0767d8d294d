package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/initiator"
	"github.com/urfave/cli/v2"
)

func discoverCommand() *cli.Command {
	flags := sessionFlags()
	for _, f := range flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "portal" {
			// Checked in the action: --uninitialized needs no portal.
			sf.Required = false
		}
	}
	flags = append(flags,
		&cli.BoolFlag{Name: "uninitialized", Usage: "find uninitialised arrays (unicast UDP probe) instead of listing targets"},
		&cli.StringSliceFlag{Name: "probe", Usage: "with --uninitialized: HOST, CIDR or FIRST-LAST range to probe (repeatable)"},
		&cli.StringSliceFlag{Name: "subnet", Usage: "with --uninitialized: subnet CIDR to probe (repeatable; default: the local IPv4 subnets, capped to /24)"},
		&cli.DurationFlag{Name: "timeout", Value: 8 * time.Second, Usage: "with --uninitialized: how long to wait for answers"},
		&cli.IntFlag{Name: "probe-port", Value: discovery.ProbePort, Usage: "with --uninitialized: UDP port of the probe", Hidden: true},
		jsonFlag(),
	)
	return &cli.Command{
		Name:  "discover",
		Usage: "list the targets behind a portal (SendTargets), or find uninitialised arrays",
		Flags: flags,
		Action: func(c *cli.Context) error {
			if c.Bool("uninitialized") {
				return discoverUninitialized(c)
			}
			if !c.IsSet("portal") {
				return errors.New(`Required flag "portal" not set`)
			}
			cfg, err := sessionConfig(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			defer cancel()
			targets, err := initiator.Discover(ctx, cfg)
			if err != nil {
				return err
			}
			out := make([]discoveredTarget, 0, len(targets))
			for _, t := range targets {
				dt := discoveredTarget{Target: t.Name, Portals: []discoveredPortal{}}
				for _, p := range t.Portals {
					dt.Portals = append(dt.Portals, discoveredPortal{Address: p.Address, TPGT: p.TPGT})
				}
				out = append(out, dt)
			}
			if c.Bool("json") {
				return printJSON(c, out)
			}
			rows := [][]string{}
			for _, t := range out {
				for _, p := range t.Portals {
					rows = append(rows, []string{t.Target, p.Address, strconv.Itoa(p.TPGT)})
				}
				if len(t.Portals) == 0 {
					rows = append(rows, []string{t.Target, "-", "-"})
				}
			}
			return printTable(c, []string{"target", "portal", "tpgt"}, rows)
		},
	}
}

type discoveredTarget struct {
	Target  string             `json:"target"`
	Portals []discoveredPortal `json:"portals"`
}

type discoveredPortal struct {
	Address string `json:"address"`
	TPGT    int    `json:"tpgt"`
}

// labProbeRanges are the only addresses `discover --uninitialized` sends
// probes to: the lab answers on loopback (and in test namespaces on
// 198.18.0.0/15), and nothing else should be probed.
var labProbeRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("198.18.0.0/15"),
}

func inLabRange(a netip.Addr) bool {
	for _, p := range labProbeRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

type uninitializedArray struct {
	Serial   string `json:"serial"`
	Model    string `json:"model"`
	Firmware string `json:"firmware"`
	Address  string `json:"address"`
	State    string `json:"state"`
}

func discoverUninitialized(c *cli.Context) error {
	timeout := c.Duration("timeout")
	if timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	var specs []string
	specs = append(specs, c.StringSlice("probe")...)
	for _, s := range c.StringSlice("subnet") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return usagef("--subnet %q: %v", s, err)
		}
		specs = append(specs, p.Masked().String())
	}
	explicit := len(specs) > 0
	if !explicit {
		nics, err := discovery.Interfaces()
		if err != nil {
			return err
		}
		for _, n := range nics {
			if !n.Up {
				continue
			}
			for _, p := range n.Addrs {
				if !p.Addr().Is4() {
					continue
				}
				if p.Bits() < 24 {
					p = netip.PrefixFrom(p.Addr(), 24)
				}
				specs = append(specs, p.Masked().String())
			}
		}
	}
	seen := map[netip.Addr]bool{}
	var targets []netip.Addr
	for _, s := range specs {
		addrs, err := discovery.ParseProbeRange(s)
		if err != nil {
			return usagef("%v", err)
		}
		for _, a := range addrs {
			if !inLabRange(a) {
				if explicit {
					return usagef("refusing to probe %s (in %s): the lab only answers on loopback (127.0.0.0/8, or 198.18.0.0/15 in test namespaces)", a, s)
				}
				continue // a local subnet outside the lab ranges: skipped
			}
			if !seen[a] {
				seen[a] = true
				targets = append(targets, a)
			}
		}
	}
	if len(targets) == 0 {
		return usagef("nothing to probe: give --probe HOST|RANGE or --subnet CIDR in 127.0.0.0/8 (the lab only answers on loopback)")
	}
	if port := c.Int("probe-port"); port <= 0 || port > 65535 {
		return usagef("--probe-port %d out of range", port)
	}
	arrays, err := discovery.ProbeUninitialized(c.Context, targets, c.Int("probe-port"), timeout)
	if err != nil {
		return err
	}
	out := make([]uninitializedArray, 0, len(arrays))
	for _, a := range arrays {
		out = append(out, uninitializedArray{Serial: a.Serial, Model: a.Model, Firmware: a.Firmware, Address: a.Address, State: a.State})
	}
	if c.Bool("json") {
		return printJSON(c, out)
	}
	if len(out) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "no uninitialised arrays answered (%d addresses probed)\n", len(targets))
	}
	rows := [][]string{}
	for _, a := range out {
		rows = append(rows, []string{a.Serial, a.Model, a.Firmware, a.Address, a.State})
	}
	return printTable(c, []string{"serial", "model", "firmware", "address", "state"}, rows)
}
