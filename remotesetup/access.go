package remotesetup

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/setupapi"
)

// HostAccess is the volume to create for this host once the group runs.
type HostAccess struct {
	Volume string
	Size   int64
	// InitiatorName is this host's IQN, which the access record names.
	InitiatorName string
	// SecretFile is where the new CHAP secret is written (mode 0600). It
	// must not exist yet.
	SecretFile string
}

// AccessResult is what the host needs to log in to its new volume.
type AccessResult struct {
	Volume        string `json:"volume"`
	IQN           string `json:"iqn"`
	Size          int64  `json:"size"`
	Portal        string `json:"portal"` // the group IP, host:port
	CHAPUser      string `json:"chap_user"`
	SecretFile    string `json:"chap_secret_file"`
	InitiatorName string `json:"initiator_name"`
	Members       []int  `json:"members"` // the members holding its pages
}

// chapSecretBytes is the entropy of a generated CHAP secret: 24 bytes
// are 32 characters of base64, within the 12 to 255 a group takes.
const chapSecretBytes = 24

// NewCHAPSecret makes a random CHAP secret on this host.
func NewCHAPSecret() (string, error) {
	b := make([]byte, chapSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// SetUpHostAccess creates h's volume through the group's management API,
// with an access record for this host's IQN and the volume's CHAP user,
// and a CHAP secret made here and written to h.SecretFile. The group's
// certificate is the one the setup reported. When the volume cannot be
// created, the secret file is removed again.
func SetUpHostAccess(res setupapi.Result, adminPassword []byte, h HostAccess) (AccessResult, error) {
	if h.InitiatorName == "" {
		return AccessResult{}, errors.New("host access: no initiator name")
	}
	api, err := groupapi.Dial(res.ManagementAddr, res.ManagementFingerprint, adminPassword)
	if err != nil {
		var se *groupapi.StatusError
		if errors.As(err, &se) && se.Status == http.StatusUnauthorized {
			return AccessResult{}, fmt.Errorf("the group's management API at %s refused the admin password; the group is set up, create the volume later with the right password", res.ManagementAddr)
		}
		return AccessResult{}, fmt.Errorf("reaching the group's management API at %s: %w", res.ManagementAddr, err)
	}
	defer api.Close()
	secret, err := NewCHAPSecret()
	if err != nil {
		return AccessResult{}, err
	}
	if err := writeSecretFile(h.SecretFile, secret); err != nil {
		return AccessResult{}, err
	}
	// The lab group names a volume's CHAP user after the volume.
	record := groupapi.AccessRecord{Initiator: h.InitiatorName, CHAPUser: h.Volume}
	v, err := api.CreateVolume(groupapi.CreateVolume{
		Name: h.Volume, Size: h.Size, Access: []groupapi.AccessRecord{record}, CHAPSecret: secret,
	})
	if err != nil {
		os.Remove(h.SecretFile)
		return AccessResult{}, fmt.Errorf("creating volume %s: %w", h.Volume, err)
	}
	portal := res.GroupIP
	if g, err := api.Group(); err == nil && g.GroupIP != "" {
		portal = g.GroupIP
	}
	abs, _ := filepath.Abs(h.SecretFile)
	return AccessResult{
		Volume: v.Name, IQN: v.IQN, Size: v.Size, Portal: portal, CHAPUser: v.CHAPUser,
		SecretFile: abs, InitiatorName: h.InitiatorName, Members: v.Members,
	}, nil
}

// writeSecretFile creates path with mode 0600 and the secret, refusing to
// overwrite a file that is there.
func writeSecretFile(path, secret string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; give a new file for the CHAP secret, so that no secret is overwritten", path)
		}
		return fmt.Errorf("writing the CHAP secret: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing the CHAP secret: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("writing the CHAP secret: %w", err)
	}
	return nil
}
