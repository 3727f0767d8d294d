package cmd

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"
)

func inquiryCommand() *cli.Command {
	return &cli.Command{
		Name:  "inquiry",
		Usage: "show a logical unit's identity and capacity",
		Flags: append(sessionFlags(),
			&cli.StringFlag{Name: "target", Usage: "target IQN", Required: true},
			&cli.IntFlag{Name: "lun", Usage: "logical unit number"},
			jsonFlag()),
		Action: func(c *cli.Context) error {
			lu, closeLU, err := openLogicalUnit(c)
			if err != nil {
				return err
			}
			defer closeLU()
			id, err := lu.Identify(c.Context)
			if err != nil {
				return err
			}
			out := inquiryOutput{
				Vendor: id.Vendor, Product: id.Product, Revision: id.Revision,
				Serial: id.Serial, WWID: id.WWID, SizeBytes: lu.Size(), BlockSize: lu.BlockSize(),
			}
			if c.Bool("json") {
				return printJSON(c, out)
			}
			return printTable(c, []string{"field", "value"}, [][]string{
				{"vendor", out.Vendor},
				{"product", out.Product},
				{"revision", out.Revision},
				{"serial", out.Serial},
				{"wwid", out.WWID},
				{"capacity", fmt.Sprintf("%s (%d bytes)", humanBytes(out.SizeBytes), out.SizeBytes)},
				{"block size", strconv.Itoa(out.BlockSize)},
			})
		},
	}
}

type inquiryOutput struct {
	Vendor    string `json:"vendor"`
	Product   string `json:"product"`
	Revision  string `json:"revision"`
	Serial    string `json:"serial"`
	WWID      string `json:"wwid"`
	SizeBytes int64  `json:"size_bytes"`
	BlockSize int    `json:"block_size"`
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
