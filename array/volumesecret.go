package array

import "fmt"

// CHAP secrets a host chooses (VolumeSpec.CHAPSecret) must be 12 to 255
// printable ASCII characters: RFC 7143 wants at least 12 bytes, and the
// secret file holds one line, which readers trim, so no space may start
// or end it.
const (
	minCHAPSecret = 12
	maxCHAPSecret = 255
)

// CheckCHAPSecret says what is wrong with a CHAP secret a host chose,
// without repeating the secret.
func CheckCHAPSecret(secret string) error {
	if len(secret) < minCHAPSecret || len(secret) > maxCHAPSecret {
		return fmt.Errorf("CHAP secret: use %d to %d characters (got %d)", minCHAPSecret, maxCHAPSecret, len(secret))
	}
	for _, ch := range []byte(secret) {
		if ch < 0x20 || ch > 0x7e {
			return fmt.Errorf("CHAP secret: use printable ASCII characters only")
		}
	}
	if secret[0] == ' ' || secret[len(secret)-1] == ' ' {
		return fmt.Errorf("CHAP secret: it may not start or end with a space")
	}
	return nil
}

// writeCHAPSecret writes a volume's CHAP secret file: the host's secret
// when it chose one, else a random one unless the file exists.
func (g *Group) writeCHAPSecret(volume, secret string) error {
	if secret == "" {
		_, err := ensureSecret(CHAPSecretFile(g.dir, volume))
		return err
	}
	if err := CheckCHAPSecret(secret); err != nil {
		return fmt.Errorf("volume %s: %w", volume, err)
	}
	return writeSecret(CHAPSecretFile(g.dir, volume), secret)
}
