package cmd

import (
	"strings"

	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/urfave/cli/v2"
)

// sessionFlags are the flags of every command that logs in to a portal.
func sessionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "portal", Usage: "portal or group IP, HOST[:PORT]", Required: true},
		&cli.StringFlag{Name: "chap-user", Usage: "CHAP user name the target authenticates"},
		&cli.StringFlag{Name: "chap-secret-file", Usage: "file holding the CHAP secret (or set HITKIT_CHAP_SECRET)"},
		&cli.StringFlag{Name: "mutual-user", Usage: "user name the target answers with, for mutual CHAP"},
		&cli.StringFlag{Name: "mutual-secret-file", Usage: "file holding the target's mutual CHAP secret (or set HITKIT_MUTUAL_SECRET)"},
		&cli.StringFlag{Name: "chap-algorithms", Value: "sha3-256,sha256,sha1,md5", Usage: "CHAP algorithms to offer, in order (tgt and IET targets need md5)"},
		&cli.StringFlag{Name: "initiator-name", Usage: "this host's IQN (default: derived from the hostname)"},
		&cli.StringFlag{Name: "source", Usage: "local IP address to connect from"},
		&cli.StringFlag{Name: "nic", Usage: "network interface to bind to"},
		&cli.BoolFlag{Name: "header-digest", Usage: "require CRC32C header digests"},
		&cli.BoolFlag{Name: "data-digest", Usage: "require CRC32C data digests"},
	}
}

// sessionConfig builds an initiator configuration from sessionFlags.
func sessionConfig(c *cli.Context) (initiator.Config, error) {
	cfg := initiator.Config{
		Portal:        c.String("portal"),
		InitiatorName: c.String("initiator-name"),
		SourceAddr:    c.String("source"),
		Device:        c.String("nic"),
		HeaderDigest:  c.Bool("header-digest"),
		DataDigest:    c.Bool("data-digest"),
		CHAPUser:      c.String("chap-user"),
		MutualUser:    c.String("mutual-user"),
	}
	if strings.TrimSpace(cfg.Portal) == "" {
		return cfg, usagef("--portal is empty")
	}
	if cfg.CHAPUser == "" && c.String("chap-secret-file") != "" {
		return cfg, usagef("--chap-secret-file needs --chap-user")
	}
	if cfg.MutualUser != "" && cfg.CHAPUser == "" {
		return cfg, usagef("mutual CHAP (--mutual-user) needs one-way CHAP (--chap-user) too")
	}
	var err error
	if cfg.CHAPAlgorithms, err = iscsi.ParseChapAlgorithms(c.String("chap-algorithms")); err != nil {
		return cfg, usagef("--chap-algorithms: %v", err)
	}
	if cfg.CHAPUser != "" {
		if cfg.CHAPSecret, err = readSecret(c.String("chap-secret-file"), "HITKIT_CHAP_SECRET", "CHAP secret: "); err != nil {
			return cfg, err
		}
	}
	if cfg.MutualUser != "" {
		if cfg.MutualSecret, err = readSecret(c.String("mutual-secret-file"), "HITKIT_MUTUAL_SECRET", "mutual CHAP secret: "); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}
