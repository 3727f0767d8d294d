package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hitkit/hitkit/array"
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
		&cli.BoolFlag{Name: "uninitialized", Usage: "find uninitialised arrays (mDNS/DNS-SD and unicast UDP probe) instead of listing targets"},
		&cli.StringSliceFlag{Name: "probe", Usage: "with --uninitialized: HOST, CIDR or FIRST-LAST range to probe by unicast, in 127.0.0.0/8 or 198.18.0.0/15 (repeatable; default: " + defaultProbeRange() + ", the lab's default range, when no --subnet is given)"},
		&cli.StringSliceFlag{Name: "subnet", Usage: "with --uninitialized: ask mDNS only on the interfaces in this IPv4 CIDR; one in 127.0.0.0/8 is probed instead (repeatable; default: every local subnet)"},
		&cli.BoolFlag{Name: "no-mdns", Usage: "with --uninitialized: do not ask mDNS, only probe"},
		&cli.DurationFlag{Name: "timeout", Value: 8 * time.Second, Usage: "with --uninitialized: how long to wait for answers"},
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

type uninitializedArray struct {
	Serial        string   `json:"serial"`
	Model         string   `json:"model"`
	Firmware      string   `json:"firmware"`
	Address       string   `json:"address"`
	State         string   `json:"state"`
	Via           []string `json:"via"`
	SetupEndpoint string   `json:"setup_endpoint,omitempty"`
	Fingerprint   string   `json:"fingerprint,omitempty"`
}

// loopback is where the lab answers probes; it has no multicast, so a
// --subnet there is probed by unicast instead of asked over mDNS.
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// defaultProbeRange is what a run without --probe and --subnet probes:
// the lab's default address plan (lab up without --base-ip).
func defaultProbeRange() string { return netip.PrefixFrom(array.DefaultBaseIP, 24).Masked().String() }

func discoverUninitialized(c *cli.Context) error {
	q, specs, err := uninitQuery(c)
	if err != nil {
		return err
	}
	var links []discovery.MDNSLink
	if !q.NoMDNS {
		if links, err = discovery.MDNSLinks(q.Subnets); err != nil {
			return err
		}
		warnUnmatchedSubnets(c, q.Subnets, links)
	}
	if len(links) == 0 && len(q.Probe) == 0 {
		return usagef("nothing to ask: no multicast-capable interface is on the selected subnets, and nothing to probe (give --probe HOST|RANGE in 127.0.0.0/8, or a --subnet of an interface)")
	}
	arrays, err := discovery.FindUninitialized(c.Context, q)
	if err != nil {
		return err
	}
	out := make([]uninitializedArray, 0, len(arrays))
	for _, a := range arrays {
		out = append(out, uninitializedArray{Serial: a.Serial, Model: a.Model, Firmware: a.Firmware, Address: a.Address,
			State: a.State, Via: a.Via, SetupEndpoint: a.SetupEndpoint, Fingerprint: a.Fingerprint})
	}
	if c.Bool("json") {
		return printJSON(c, out)
	}
	if len(out) == 0 {
		in := ""
		if len(specs) > 0 {
			in = " in " + strings.Join(specs, " ")
		}
		fmt.Fprintf(c.App.ErrWriter, "no uninitialised arrays answered (mDNS asked on %d interfaces; %d addresses probed%s)\n", len(links), len(q.Probe), in)
	}
	rows := [][]string{}
	for _, a := range out {
		rows = append(rows, []string{a.Serial, a.Model, a.Firmware, a.Address, a.State, strings.Join(a.Via, ",")})
	}
	return printTable(c, []string{"serial", "model", "firmware", "address", "state", "found by"}, rows)
}

// uninitQuery reads the flags: --probe ranges are probed; a --subnet in
// 127.0.0.0/8 is probed too (loopback has no multicast), any other
// selects the interfaces mDNS asks on. Without either, mDNS asks on every
// local subnet and the lab's default range is probed. It also returns the
// probe specs, for the message when nothing answers.
func uninitQuery(c *cli.Context) (discovery.UninitQuery, []string, error) {
	q := discovery.UninitQuery{Timeout: c.Duration("timeout"), NoMDNS: c.Bool("no-mdns")}
	if q.Timeout <= 0 {
		return q, nil, usagef("--timeout must be positive")
	}
	specs := c.StringSlice("probe")
	for _, s := range c.StringSlice("subnet") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil || !p.Addr().Is4() {
			return q, nil, usagef("--subnet %q is not an IPv4 CIDR such as 198.18.1.0/24", s)
		}
		p = p.Masked()
		if loopback.Contains(p.Addr()) && p.Bits() >= loopback.Bits() {
			specs = append(specs, p.String())
			continue
		}
		q.Subnets = append(q.Subnets, p)
	}
	if len(specs) == 0 && len(q.Subnets) == 0 {
		specs = []string{defaultProbeRange()}
	}
	seen := map[netip.Addr]bool{}
	for _, s := range specs {
		addrs, err := discovery.ParseProbeRange(s)
		if err != nil {
			return q, nil, usagef("%v", err)
		}
		for _, a := range addrs {
			if !discovery.Probeable(a) {
				return q, nil, usagef("refusing to probe %s (in %s): the lab only answers probes on loopback (127.0.0.0/8, or 198.18.0.0/15 in test namespaces)", a, s)
			}
			if !seen[a] {
				seen[a] = true
				q.Probe = append(q.Probe, a)
			}
		}
	}
	return q, specs, nil
}

// warnUnmatchedSubnets says which --subnet has no interface to ask on.
func warnUnmatchedSubnets(c *cli.Context, subnets []netip.Prefix, links []discovery.MDNSLink) {
	for _, s := range subnets {
		matched := false
		for _, l := range links {
			matched = matched || s.Overlaps(l.Subnet)
		}
		if !matched {
			fmt.Fprintf(c.App.ErrWriter, "hitkit: no up, multicast-capable interface has an address in --subnet %s; mDNS does not ask there\n", s)
		}
	}
}
