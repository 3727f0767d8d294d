package remotesetup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/hitkit/hitkit/setupapi"
)

// Answers are the wizard's answers as the non-interactive front end gets
// them: from flags, or from an answers file with the same names. Password
// fields are paths of files holding the passwords, never the passwords.
type Answers struct {
	Serial                 string   `yaml:"serial"`
	MemberName             string   `yaml:"member-name"`
	IP                     string   `yaml:"ip"`
	Gateway                string   `yaml:"gateway"`
	Group                  string   `yaml:"group"`
	GroupIP                string   `yaml:"group-ip"`
	Create                 bool     `yaml:"create"`
	Join                   bool     `yaml:"join"`
	MembershipPasswordFile string   `yaml:"membership-password-file"`
	AdminPasswordFile      string   `yaml:"admin-password-file"`
	RAID                   string   `yaml:"raid"`
	HostVolume             string   `yaml:"host-volume"`
	HostVolumeSize         string   `yaml:"host-volume-size"`
	CHAPSecretOut          string   `yaml:"chap-secret-out"`
	InitiatorName          string   `yaml:"initiator-name"`
	Probe                  []string `yaml:"probe"`
	Subnet                 []string `yaml:"subnet"`

	file   string          // the answers file, when there is one
	lines  map[string]int  // the line of each key in it
	byFlag map[string]bool // answers that flags gave, overriding the file
}

// FieldError is a wrong or missing answer. Field is the flag's name (and
// the answers file's key); File and Line say where the answer was
// written, when it came from a file.
type FieldError struct {
	Field string
	Msg   string
	File  string
	Line  int
}

func (e *FieldError) Error() string {
	if e.File != "" && e.Line > 0 {
		return fmt.Sprintf("%s line %d: %s: %s", e.File, e.Line, e.Field, e.Msg)
	}
	if e.File != "" {
		return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
	}
	return fmt.Sprintf("--%s: %s", e.Field, e.Msg)
}

// LoadAnswers reads an answers file. An unknown key (a typo) or a value
// of the wrong type is an error naming its line.
func LoadAnswers(path string) (*Answers, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("answers file: %w", err)
	}
	return ParseAnswers(path, b)
}

// ParseAnswers reads an answers file's contents; name is used in errors.
func ParseAnswers(name string, b []byte) (*Answers, error) {
	a := &Answers{file: name, lines: map[string]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(a); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the answers file is empty", name)
		}
		return nil, yamlError(name, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err == nil && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			a.lines[m.Content[i].Value] = m.Content[i].Line
		}
	}
	return a, nil
}

// yamlError makes the decoder's error one line per problem, each naming
// the file and the line, and says what an unknown key is.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := unknownKeyRE.FindStringSubmatch(e); m != nil {
			e = fmt.Sprintf("line %s: unknown key %q (a typo? the keys are the flags' names, such as member-name and group-ip)", m[1], m[2])
		}
		msgs = append(msgs, name+" "+e)
	}
	return errors.New(strings.Join(msgs, "; "))
}

var unknownKeyRE = regexp.MustCompile(`^line (\d+): field (\S+) not found in type`)

// SetByFlag records that a flag gave field, overriding the file: errors
// about it then name the flag, not a line of the file.
func (a *Answers) SetByFlag(field string) {
	if a.byFlag == nil {
		a.byFlag = map[string]bool{}
	}
	a.byFlag[field] = true
}

// fieldErr builds the error for field, pointing into the file when the
// answer came from there.
func (a *Answers) fieldErr(field, format string, args ...any) *FieldError {
	e := &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
	if a.file != "" && !a.byFlag[field] {
		e.File, e.Line = a.file, a.lines[field]
	}
	return e
}

// Mode is ModeCreate or ModeJoin as the answers say, or "" if unset.
func (a *Answers) Mode() string {
	switch {
	case a.Create && !a.Join:
		return setupapi.ModeCreate
	case a.Join && !a.Create:
		return setupapi.ModeJoin
	}
	return ""
}

// WantsHostAccess says whether the answers ask for a volume for this host.
func (a *Answers) WantsHostAccess() bool {
	return a.HostVolume != "" || a.HostVolumeSize != "" || a.CHAPSecretOut != ""
}

// Plan is a checked set of answers with the passwords read: what the
// setup sends, once the member's network confirms it (CheckNetwork).
type Plan struct {
	Serial  string
	Request setupapi.Request
	IP      netip.Prefix
	Gateway netip.Addr
	GroupIP netip.Addr
	// AdminPassword is the group admin password: set by a create, and
	// needed to reach the management API for the host access setup.
	AdminPassword []byte
	// Access is the host access setup asked for, if any.
	Access *HostAccess
}

// Check checks each answer on its own and reads the password files. The
// first wrong answer is returned as a *FieldError.
func (a *Answers) Check() (Plan, error) {
	var p Plan
	p.Serial = strings.TrimSpace(a.Serial)
	if p.Serial == "" {
		return p, a.fieldErr("serial", "missing: the serial of the array to set up, as `hitkit discover --uninitialized` lists it")
	}
	if err := CheckName(a.MemberName); err != nil {
		return p, a.fieldErr("member-name", "%v", err)
	}
	if a.IP == "" {
		return p, a.fieldErr("ip", "missing: the member's address as ADDRESS/PREFIX")
	}
	ip, err := ParseMemberIP(a.IP, netip.Prefix{})
	if err != nil {
		return p, a.fieldErr("ip", "%v", err)
	}
	if a.Gateway == "" {
		return p, a.fieldErr("gateway", "missing: the default gateway of the member's subnet")
	}
	gw, err := ParseGateway(a.Gateway, ip)
	if err != nil {
		return p, a.fieldErr("gateway", "%v", err)
	}
	if err := CheckName(a.Group); err != nil {
		return p, a.fieldErr("group", "%v", err)
	}
	if a.GroupIP == "" {
		return p, a.fieldErr("group-ip", "missing: the group's address")
	}
	gip, err := ParseGroupIP(a.GroupIP, ip, gw)
	if err != nil {
		return p, a.fieldErr("group-ip", "%v", err)
	}
	mode := a.Mode()
	if mode == "" {
		field := "create"
		if _, ok := a.lines["join"]; ok {
			field = "join"
		}
		return p, a.fieldErr(field, "say either create (a new group) or join (an existing group), not both or neither")
	}
	membership, err := a.password("membership-password-file", a.MembershipPasswordFile, true)
	if err != nil {
		return p, err
	}
	admin, err := a.password("admin-password-file", a.AdminPasswordFile, mode == setupapi.ModeCreate || a.WantsHostAccess())
	if err != nil {
		return p, err
	}
	if a.RAID == "" {
		a.RAID = setupapi.RAIDPolicies[0]
	}
	if err := CheckRAID(a.RAID); err != nil {
		return p, a.fieldErr("raid", "%v", err)
	}
	p.IP, p.Gateway, p.GroupIP, p.AdminPassword = ip, gw, gip, admin
	p.Request = setupapi.Request{
		MemberName: a.MemberName, IP: ip.String(), Gateway: gw.String(),
		GroupName: a.Group, GroupIP: gip.String(), Mode: mode,
		MembershipPassword: string(membership), RAID: a.RAID,
	}
	if mode == setupapi.ModeCreate {
		p.Request.AdminPassword = string(admin)
	}
	if a.WantsHostAccess() {
		if p.Access, err = a.hostAccess(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// password reads a password file; when needed is false, an unset file is
// no error.
func (a *Answers) password(field, path string, needed bool) ([]byte, error) {
	if path == "" {
		if needed {
			return nil, a.fieldErr(field, "missing: a file holding the password (it never goes on the command line)")
		}
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, a.fieldErr(field, "cannot read the password file: %v", errors.Unwrap(err))
	}
	pw := bytes.TrimRight(b, "\r\n")
	if err := CheckPassword(pw); err != nil {
		return nil, a.fieldErr(field, "the password in %s %v", path, err)
	}
	return pw, nil
}

func (a *Answers) hostAccess() (*HostAccess, error) {
	if err := CheckName(a.HostVolume); err != nil {
		return nil, a.fieldErr("host-volume", "%v", err)
	}
	if a.HostVolumeSize == "" {
		return nil, a.fieldErr("host-volume-size", "missing: the size of the volume, such as 10GiB")
	}
	size, err := ParseSize(a.HostVolumeSize)
	if err != nil {
		return nil, a.fieldErr("host-volume-size", "%v", err)
	}
	if a.CHAPSecretOut == "" {
		return nil, a.fieldErr("chap-secret-out", "missing: the file to write the volume's new CHAP secret to")
	}
	if err := checkNewFile(a.CHAPSecretOut); err != nil {
		return nil, a.fieldErr("chap-secret-out", "%v", err)
	}
	if err := CheckInitiatorName(a.InitiatorName); a.InitiatorName != "" && err != nil {
		return nil, a.fieldErr("initiator-name", "%v", err)
	}
	return &HostAccess{Volume: a.HostVolume, Size: size, SecretFile: a.CHAPSecretOut, InitiatorName: a.InitiatorName}, nil
}

// CheckNetwork checks the plan against the member's network as its Info
// reports it: the address must be on it, and the gateway and the group IP
// in the address's subnet.
func (a *Answers) CheckNetwork(p Plan, info setupapi.Info) error {
	network, err := ParseNetwork(info.Network)
	if err != nil {
		return err
	}
	if _, err := ParseMemberIP(p.IP.String(), network); err != nil {
		return a.fieldErr("ip", "%v", err)
	}
	return nil
}

// CheckInitiatorName says what is wrong with an initiator IQN.
func CheckInitiatorName(s string) error {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "iqn.") && !strings.HasPrefix(s, "eui.") && !strings.HasPrefix(s, "naa.") {
		return fmt.Errorf("%q is not an iSCSI name (iqn.YYYY-MM.domain:name)", s)
	}
	if len(s) > 223 || strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("%q is not an iSCSI name: at most 223 characters, no spaces", s)
	}
	return nil
}
