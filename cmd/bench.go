package cmd

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hitkit/hitkit/bench"
	"github.com/urfave/cli/v2"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure IOPS, throughput and latency of a logical unit",
		Flags: append(sessionFlags(),
			&cli.StringFlag{Name: "target", Usage: "target IQN", Required: true},
			&cli.IntFlag{Name: "lun", Usage: "logical unit number"},
			&cli.StringFlag{Name: "pattern", Value: "randread", Usage: "seqread, randread, seqwrite, randwrite or verify"},
			&cli.StringFlag{Name: "bs", Value: "4k", Usage: "I/O size (k, m suffixes)"},
			&cli.IntFlag{Name: "qd", Value: 32, Usage: "I/Os in flight"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "run time of the timed patterns"},
			&cli.StringFlag{Name: "span", Usage: "limit I/O to the first SIZE bytes (default: the whole unit)"},
			&cli.BoolFlag{Name: "allow-write", Usage: "allow the write and verify patterns, which destroy data"},
			jsonFlag()),
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	pattern, err := bench.ParsePattern(c.String("pattern"))
	if err != nil {
		return usageError{err.Error()}
	}
	if pattern.Writes() && !c.Bool("allow-write") {
		return usagef("the %s pattern overwrites the logical unit; add --allow-write if that is what you want", pattern)
	}
	bs, err := parseSize(c.String("bs"))
	if err != nil {
		return usagef("--bs: %v", err)
	}
	var span int64
	if s := c.String("span"); s != "" {
		if span, err = parseSize(s); err != nil {
			return usagef("--span: %v", err)
		}
	}
	lu, closeLU, err := openLogicalUnit(c)
	if err != nil {
		return err
	}
	defer closeLU()
	spec := bench.Spec{Pattern: pattern, BlockSize: int(bs), QueueDepth: c.Int("qd"), Duration: c.Duration("duration"), Span: span}
	rep, err := bench.Run(c.Context, lu, spec)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, rep)
	}
	return printTable(c, []string{"pattern", "bs", "qd", "iops", "MB/s", "p50", "p99", "max"}, [][]string{{
		string(pattern), c.String("bs"), strconv.Itoa(spec.QueueDepth),
		fmt.Sprintf("%.0f", rep.IOPS), fmt.Sprintf("%.1f", rep.MBps),
		usText(rep.LatP50us), usText(rep.LatP99us), usText(rep.LatMaxus),
	}})
}

func usText(us float64) string {
	if us >= 10000 {
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return fmt.Sprintf("%.0f µs", us)
}

// parseSize reads sizes like 4096, 4k, 128K, 1m, 2G (binary units).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "g"):
		mult = 1 << 30
	case strings.HasSuffix(s, "t"):
		mult = 1 << 40
	}
	n, err := strconv.ParseInt(strings.TrimRight(s, "kmgt"), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size like 4k, 128k or 1m", s)
	}
	return n * mult, nil
}
