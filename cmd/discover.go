package cmd

import (
	"context"
	"strconv"
	"time"

	"github.com/hitkit/hitkit/initiator"
	"github.com/urfave/cli/v2"
)

func discoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "discover",
		Usage: "list the targets behind a portal (SendTargets)",
		Flags: append(sessionFlags(), jsonFlag()),
		Action: func(c *cli.Context) error {
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
