package cmd

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/term"
)

// readSecret gets a secret without it ever touching argv: from a file,
// from an environment variable, or from a no-echo prompt on a terminal.
func readSecret(file, envVar, prompt string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading secret: %w", err)
		}
		secret := bytes.TrimRight(b, "\r\n")
		if len(secret) == 0 {
			return nil, fmt.Errorf("secret file %s is empty", file)
		}
		return secret, nil
	}
	if v := os.Getenv(envVar); v != "" {
		return []byte(v), nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, usagef("no secret given: use a secret file, or set %s", envVar)
	}
	fmt.Fprint(os.Stderr, prompt)
	secret, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	if len(secret) == 0 {
		return nil, usagef("empty secret")
	}
	return secret, nil
}

// secretGiven says whether a secret was given as a file or in its
// environment variable: optional secrets are read only then, and never
// prompted for.
func secretGiven(file, envVar string) bool {
	return file != "" || os.Getenv(envVar) != ""
}
