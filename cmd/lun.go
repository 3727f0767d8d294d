package cmd

import (
	"context"
	"time"

	"github.com/hitkit/hitkit/initiator"
	"github.com/urfave/cli/v2"
)

// openLogicalUnit logs in to --target at --portal and opens --lun.
func openLogicalUnit(c *cli.Context) (*initiator.LogicalUnit, func(), error) {
	cfg, err := sessionConfig(c)
	if err != nil {
		return nil, nil, err
	}
	cfg.TargetName = c.String("target")
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	lu, err := initiator.OpenLogicalUnit(ctx, s, c.Int("lun"))
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return lu, func() { s.Close() }, nil
}
