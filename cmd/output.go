package cmd

import (
	"encoding/json"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/urfave/cli/v2"
)

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON for scripts instead of a table"}
}

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTable prints rows under a header, for people.
func printTable(c *cli.Context, header []string, rows [][]string) error {
	// Headers stay as written: auto-formatting turns "MB/s" into "MB / S".
	cfg := tablewriter.NewConfigBuilder().WithHeaderAutoFormat(tw.Off).Build()
	t := tablewriter.NewTable(c.App.Writer, tablewriter.WithConfig(cfg), tablewriter.WithHeader(header))
	if err := t.Bulk(rows); err != nil {
		return err
	}
	return t.Render()
}
