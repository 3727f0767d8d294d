package array

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hitkit/hitkit/internal/atomicfile"
)

// Secrets live in files of their own under DIR/secrets, mode 0600, one
// secret per file followed by a newline, so that hitkit's
// --chap-secret-file and other tools can read them as they are. They are
// never in group.json, in the logs, or in status output.

// secretAlphabet is letters and digits only, so that a secret survives
// URLs (iscsi://user%secret@host/...), shells and config files as it is.
const secretAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// secretLength gives 12 to 16 bytes of CHAP secret that RFC 7143 and
// most initiators want, with room to spare, and about 117 bits of entropy.
const secretLength = 20

// newSecret returns a random secret from crypto/rand.
func newSecret() (string, error) {
	b := make([]byte, secretLength)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a secret: %w", err)
	}
	for i := range b {
		// 256 % 57 leaves a slight bias, which costs a fraction of a bit.
		b[i] = secretAlphabet[int(b[i])%len(secretAlphabet)]
	}
	return string(b), nil
}

func secretsDir(dir string) string { return filepath.Join(dir, "secrets") }

// AdminPasswordFile is where a group's admin password is.
func AdminPasswordFile(dir string) string {
	return filepath.Join(secretsDir(dir), "admin.password")
}

// CHAPSecretFile is where a volume's CHAP secret is.
func CHAPSecretFile(dir, volume string) string {
	return filepath.Join(secretsDir(dir), volume+".chap")
}

// MutualCHAPFile holds the secret the group answers with when an
// initiator asks it to authenticate in turn (mutual CHAP); the user name
// is the group's name. Volume secrets end in .chap, so no volume name
// can clash with it.
func MutualCHAPFile(dir string) string {
	return filepath.Join(secretsDir(dir), "mutual.secret")
}

// ensureSecret reads the secret in path, creating it first when missing.
func ensureSecret(path string) (string, error) {
	if s, err := readSecret(path); err == nil {
		return s, nil
	} else if !os.IsNotExist(err) {
		return "", err
	}
	s, err := newSecret()
	if err != nil {
		return "", err
	}
	return s, writeSecret(path, s)
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := string(bytes.TrimRight(b, "\r\n"))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

// writeSecret writes a secret file atomically with mode 0600.
func writeSecret(path, secret string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(secret+"\n"), 0o600)
}
