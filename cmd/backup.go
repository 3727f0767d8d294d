package cmd

import (
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/hitkit/hitkit/vss"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "copy a consistent snapshot of a volume, or only what changed since an earlier one, into an image",
		Description: "The image (NAME.hkimg) and its manifest (NAME.manifest.json) go into --to DIR, named after " +
			"the snapshot, or to --to FILE. With --since SNAPSHOT only the blocks changed since that snapshot " +
			"are read; its image must be in the same directory. The snapshot is online only while it is read, " +
			"and stays on the array as the base of the next incremental. --keep-snapshots N then deletes the " +
			"oldest snapshots that backup took beyond N (never the one just taken, an online one, or any other).",
		ArgsUsage: "VOLUME",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "directory or image file to write", Required: true},
			&cli.StringFlag{Name: "since", Usage: "copy only the changes since this snapshot (an incremental image)"},
			&cli.IntFlag{Name: "keep-snapshots", Usage: "after the backup, keep this many snapshots made by backup on the array, deleting the oldest (0: all)"},
			&cli.StringFlag{Name: "mountpoint", Usage: "the filesystem to freeze (default: where the volume's device is mounted)"},
			&cli.DurationFlag{Name: "freeze-timeout", Value: vss.DefaultFreezeTimeout, Usage: "thaw and fail if the array takes longer"},
			jsonFlag(),
		}, groupFlags()...),
		OnUsageError: badFlag,
		Action:       runBackup,
	}
}

func runBackup(c *cli.Context) error {
	if err := needArgs(c, "VOLUME"); err != nil {
		return err
	}
	if c.Int("keep-snapshots") < 0 {
		return usagef("--keep-snapshots must not be negative")
	}
	a, api, err := resolveVolume(c, c.Args().First())
	if err != nil {
		return err
	}
	defer api.Close()
	// SIGINT and SIGTERM end the copy; the snapshot is still set offline.
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	bar := newProgress(c, "backup "+a.Volume)
	res, err := vss.Backup(ctx, a, api, vss.BackupOptions{
		To: c.String("to"), Since: c.String("since"), Mountpoint: c.String("mountpoint"),
		FreezeTimeout: c.Duration("freeze-timeout"), KeepSnapshots: c.Int("keep-snapshots"),
		Guard: thawGuard, Progress: bar.start,
	})
	bar.done()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, res)
	}
	return printTable(c, []string{"volume", "snapshot", "kind", "since", "read", "image", "image size", "pruned"},
		[][]string{{res.Volume, res.Snapshot, res.Kind, orDash(res.Parent), mib(res.BytesRead), res.Image, mib(res.ImageBytes),
			orDash(strings.Join(res.Pruned, " "))}})
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "write a chain of backup images back to a volume that no host has connected",
		Description: "Give the images oldest first (--from FULL --from INCR ...), or only the newest: its " +
			"parents are found from the manifests, in its directory. Every image is checked in full before " +
			"anything is written, and the volume is read back and compared at the end.",
		ArgsUsage: "VOLUME",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "from", Usage: "image file (repeatable, oldest first)", Required: true},
			jsonFlag(),
		}, groupFlags()...),
		OnUsageError: badFlag,
		Action:       runRestore,
	}
}

func runRestore(c *cli.Context) error {
	if err := needArgs(c, "VOLUME"); err != nil {
		return err
	}
	chain, err := vss.Chain(c.StringSlice("from"))
	if err != nil {
		return err
	}
	a, api, err := resolveVolume(c, c.Args().First())
	if err != nil {
		return err
	}
	defer api.Close()
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	bar := newProgress(c, "restore "+a.Volume)
	res, err := vss.RestoreVolume(ctx, a, api, chain, bar.start)
	bar.done()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, res)
	}
	return printTable(c, []string{"volume", "images", "written", "verified"},
		[][]string{{a.Volume, strconv.Itoa(len(res.Images)), mib(res.BytesWritten), mib(res.Verified)}})
}

// progress shows a byte counter on a terminal, and nothing otherwise.
type progress struct {
	c    *cli.Context
	desc string
	bar  *progressbar.ProgressBar
}

func newProgress(c *cli.Context, desc string) *progress { return &progress{c: c, desc: desc} }

// start is the Progress hook: it gets the total, and returns the counter.
func (p *progress) start(total int64) func(int64) {
	f, ok := p.c.App.ErrWriter.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	p.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(p.desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
	return func(n int64) { p.bar.Add64(n) }
}

// done clears the bar, before the result is printed.
func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar.Close()
	}
}
