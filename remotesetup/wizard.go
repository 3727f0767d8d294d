package remotesetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/setupapi"
)

// ErrNotConfirmed says that the user declined the summary.
var ErrNotConfirmed = errors.New("not confirmed; nothing was applied")

// Target is the member being set up: what discovery found, and the setup
// endpoint client pinned to the fingerprint discovery announced.
type Target struct {
	Array  discovery.Array
	Info   setupapi.Info
	Client *setupapi.Client
}

// Connect dials the array's setup endpoint, pinned to the fingerprint of
// its discovery answer, and fetches its Info. An array that is not
// uninitialised is refused.
func Connect(a discovery.Array) (Target, error) {
	if a.SetupEndpoint == "" || a.Fingerprint == "" {
		return Target{}, fmt.Errorf("array %s announced no setup endpoint or certificate fingerprint; it cannot be set up remotely", a.Serial)
	}
	c, err := setupapi.Dial(a.SetupEndpoint, a.Fingerprint)
	if err != nil {
		return Target{}, fmt.Errorf("array %s: %w", a.Serial, err)
	}
	info, err := c.Info()
	if err != nil {
		c.Close()
		return Target{}, fmt.Errorf("array %s: %w", a.Serial, describe(err, setupapi.Request{}))
	}
	if info.Serial != "" && info.Serial != a.Serial {
		c.Close()
		return Target{}, fmt.Errorf("the setup endpoint %s answers as serial %s, not %s; run discovery again", a.SetupEndpoint, info.Serial, a.Serial)
	}
	if info.State != "" && info.State != "uninitialized" {
		c.Close()
		return Target{}, fmt.Errorf("array %s is %s, not uninitialised: there is nothing to set up", a.Serial, info.State)
	}
	return Target{Array: a, Info: info, Client: c}, nil
}

// FindSerial picks the array with the serial from those found.
func FindSerial(arrays []discovery.Array, serial string) (discovery.Array, error) {
	for _, a := range arrays {
		if a.Serial == serial {
			return a, nil
		}
	}
	var seen []string
	for _, a := range arrays {
		seen = append(seen, a.Serial)
	}
	if len(seen) == 0 {
		return discovery.Array{}, fmt.Errorf("no uninitialised array answered, so serial %s was not found; check --probe/--subnet and that the array is powered on", serial)
	}
	return discovery.Array{}, fmt.Errorf("serial %s did not answer; found %s", serial, strings.Join(seen, ", "))
}

// Wizard is the interactive front end.
type Wizard struct {
	P *Prompter
	// Arrays are the uninitialised arrays found; Serial, when set, picks one.
	Arrays []discovery.Array
	Serial string
	// GroupIPCheck checks a group IP against what answers there
	// (CheckGroupIP when nil).
	GroupIPCheck func(ctx context.Context, a netip.Addr, mode string) error
}

// Run lists the arrays, asks the questions, shows a summary and asks for
// confirmation. It returns the chosen member and the plan to apply.
func (w *Wizard) Run(ctx context.Context) (Target, Plan, error) {
	a, err := w.pickArray()
	if err != nil {
		return Target{}, Plan{}, err
	}
	t, err := Connect(a)
	if err != nil {
		return Target{}, Plan{}, err
	}
	plan, err := w.ask(ctx, t)
	if err != nil {
		t.Client.Close()
		return Target{}, Plan{}, err
	}
	fmt.Fprintln(w.P.Out)
	PrintSummary(w.P.Out, t, plan)
	ok, err := w.P.Confirm("apply this setup to the array", false)
	if err == nil && !ok {
		err = ErrNotConfirmed
	}
	if err != nil {
		t.Client.Close()
		return Target{}, Plan{}, err
	}
	return t, plan, nil
}

func (w *Wizard) pickArray() (discovery.Array, error) {
	if len(w.Arrays) == 0 {
		return discovery.Array{}, errors.New("no uninitialised array answered; check --probe/--subnet and that the array is powered on and cabled")
	}
	if w.Serial != "" {
		return FindSerial(w.Arrays, w.Serial)
	}
	fmt.Fprintln(w.P.Out, "Uninitialised arrays found:")
	rows := make([][]string, 0, len(w.Arrays))
	for i, a := range w.Arrays {
		rows = append(rows, []string{strconv.Itoa(i + 1), a.Serial, a.Model, a.Firmware, a.Address, fingerprintShort(a.Fingerprint)})
	}
	printTable(w.P.Out, []string{"#", "serial", "model", "firmware", "address", "fingerprint"}, rows)
	pick := func(s string) (discovery.Array, bool) {
		if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= len(w.Arrays) {
			return w.Arrays[n-1], true
		}
		for _, a := range w.Arrays {
			if strings.EqualFold(a.Serial, s) {
				return a, true
			}
		}
		return discovery.Array{}, false
	}
	s, err := w.P.Ask("array to set up (number or serial)", "1", func(s string) error {
		if _, ok := pick(s); !ok {
			return fmt.Errorf("%q is neither a number from 1 to %d nor a serial listed", s, len(w.Arrays))
		}
		return nil
	})
	if err != nil {
		return discovery.Array{}, err
	}
	a, _ := pick(s)
	return a, nil
}

// ask asks each question in turn; each answer is checked as it is typed.
func (w *Wizard) ask(ctx context.Context, t Target) (Plan, error) {
	p := w.P
	network, err := ParseNetwork(t.Info.Network)
	if err != nil {
		return Plan{}, err
	}
	fmt.Fprintf(p.Out, "\nSetting up %s (%s, firmware %s, %d ports, %s raw) at %s on %s.\n",
		t.Array.Serial, t.Info.Model, t.Info.Firmware, t.Info.Ports, humanBytes(t.Info.RawCapacity), t.Info.Address, network)
	fmt.Fprintf(p.Out, "Certificate fingerprint (SHA-256) verified: %s\n\n", t.Array.Fingerprint)

	var plan Plan
	plan.Serial = t.Array.Serial
	r := &plan.Request
	if r.MemberName, err = p.Ask("member name", defaultMemberName(t.Array.Serial), CheckName); err != nil {
		return plan, err
	}
	defIP := ""
	if a, err := netip.ParseAddr(t.Info.Address); err == nil {
		defIP = netip.PrefixFrom(a, network.Bits()).String()
	}
	if _, err := p.Ask("member IP address/prefix (the prefix is the netmask)", defIP, func(s string) error {
		plan.IP, err = ParseMemberIP(s, network)
		return err
	}); err != nil {
		return plan, err
	}
	if _, err := p.Ask("default gateway", lastAddr(plan.IP).Prev().String(), func(s string) error {
		plan.Gateway, err = ParseGateway(s, plan.IP)
		return err
	}); err != nil {
		return plan, err
	}
	if r.GroupName, err = p.Ask("group name", "", CheckName); err != nil {
		return plan, err
	}
	if err := w.askModeAndGroupIP(ctx, &plan); err != nil {
		return plan, err
	}
	membership := "membership password of the new group"
	if r.Mode == setupapi.ModeJoin {
		membership = "the group's membership password"
	}
	pw, err := p.Secret(membership, CheckPassword)
	if err != nil {
		return plan, err
	}
	r.MembershipPassword = string(pw)
	if r.Mode == setupapi.ModeCreate {
		if plan.AdminPassword, err = p.Secret("admin password of the new group", CheckPassword); err != nil {
			return plan, err
		}
		r.AdminPassword = string(plan.AdminPassword)
	}
	if r.RAID, err = p.Ask("RAID policy ("+strings.Join(setupapi.RAIDPolicies, ", ")+")", setupapi.RAIDPolicies[0], CheckRAID); err != nil {
		return plan, err
	}
	r.IP, r.Gateway, r.GroupIP = plan.IP.String(), plan.Gateway.String(), plan.GroupIP.String()
	return plan, nil
}

// askModeAndGroupIP asks whether to create or join, and the group IP.
// When the group IP does not suit the mode (in use for a create, no
// group there for a join), both are asked again, so that a wrong choice
// of mode can be undone.
func (w *Wizard) askModeAndGroupIP(ctx context.Context, plan *Plan) error {
	check := w.GroupIPCheck
	if check == nil {
		check = CheckGroupIP
	}
	mode := setupapi.ModeCreate
	for {
		var err error
		if mode, err = w.P.Ask("create a new group or join an existing one (create/join)", mode, func(s string) error {
			if s != setupapi.ModeCreate && s != setupapi.ModeJoin {
				return fmt.Errorf("answer %s or %s", setupapi.ModeCreate, setupapi.ModeJoin)
			}
			return nil
		}); err != nil {
			return err
		}
		def := defaultGroupIP(plan.IP, plan.Gateway)
		if plan.GroupIP.IsValid() {
			def = plan.GroupIP.String()
		}
		if _, err := w.P.Ask("group IP address", def, func(s string) error {
			plan.GroupIP, err = ParseGroupIP(s, plan.IP, plan.Gateway)
			return err
		}); err != nil {
			return err
		}
		if err := check(ctx, plan.GroupIP, mode); err != nil {
			fmt.Fprintf(w.P.Out, "  %v\n", err)
			continue
		}
		plan.Request.Mode = mode
		return nil
	}
}

// AskHostAccess offers to create a volume for this host. It returns nil
// when the user declines. For a join, it asks for the group's admin
// password, which the setup did not need.
func (w *Wizard) AskHostAccess(plan *Plan, initiatorName string) (*HostAccess, error) {
	p := w.P
	ok, err := p.Confirm("create a volume for this host now (access record for its IQN and a new CHAP secret)", true)
	if err != nil || !ok {
		return nil, err
	}
	var h HostAccess
	if h.Volume, err = p.Ask("volume name", "", CheckName); err != nil {
		return nil, err
	}
	if _, err := p.Ask("volume size", "10GiB", func(s string) error {
		h.Size, err = ParseSize(s)
		return err
	}); err != nil {
		return nil, err
	}
	if h.InitiatorName, err = p.Ask("this host's initiator name", initiatorName, CheckInitiatorName); err != nil {
		return nil, err
	}
	if h.SecretFile, err = p.Ask("file for the volume's CHAP secret (created with mode 0600)", h.Volume+".chap", checkNewFile); err != nil {
		return nil, err
	}
	if len(plan.AdminPassword) == 0 {
		if plan.AdminPassword, err = p.SecretOnce("the group's admin password"); err != nil {
			return nil, err
		}
	}
	return &h, nil
}

// PrintSummary shows what is about to be applied, without secrets.
func PrintSummary(out io.Writer, t Target, plan Plan) {
	r := plan.Request
	mode := "create a new group"
	if r.Mode == setupapi.ModeJoin {
		mode = "join the existing group"
	}
	rows := [][]string{
		{"array", fmt.Sprintf("%s (%s) at %s", plan.Serial, t.Info.Model, t.Array.Address)},
		{"member name", r.MemberName},
		{"member IP", r.IP},
		{"netmask", prefixMask(plan.IP)},
		{"gateway", r.Gateway},
		{"group", fmt.Sprintf("%s: %s", r.GroupName, mode)},
		{"group IP", r.GroupIP},
		{"membership password", "set (" + strconv.Itoa(len(r.MembershipPassword)) + " characters)"},
		{"RAID policy", r.RAID},
	}
	if r.Mode == setupapi.ModeCreate {
		// Below the membership password, above the RAID policy.
		rows = slices.Insert(rows, len(rows)-1, []string{"admin password", "set (" + strconv.Itoa(len(r.AdminPassword)) + " characters)"})
	}
	printTable(out, []string{"setting", "value"}, rows)
}

func printTable(out io.Writer, header []string, rows [][]string) {
	cfg := tablewriter.NewConfigBuilder().WithHeaderAutoFormat(tw.Off).Build()
	t := tablewriter.NewTable(out, tablewriter.WithConfig(cfg), tablewriter.WithHeader(header))
	t.Bulk(rows)
	t.Render()
}

func prefixMask(p netip.Prefix) string {
	if !p.IsValid() {
		return "-"
	}
	m := ^uint32(0) << (32 - p.Bits())
	return fmt.Sprintf("%d.%d.%d.%d (/%d)", byte(m>>24), byte(m>>16), byte(m>>8), byte(m), p.Bits())
}

func fingerprintShort(fp string) string {
	if len(fp) > 23 {
		return fp[:23] + "…"
	}
	return fp
}

// defaultMemberName offers the serial in lower case, when it is a name.
func defaultMemberName(serial string) string {
	s := strings.ToLower(serial)
	if CheckName(s) != nil {
		return ""
	}
	return s
}

// defaultGroupIP offers the subnet's first address, unless it is taken by
// the member or the gateway.
func defaultGroupIP(ip netip.Prefix, gateway netip.Addr) string {
	a := ip.Masked().Addr().Next()
	if a == ip.Addr() || a == gateway {
		return ""
	}
	return a.String()
}

func checkNewFile(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; give a new file, so that no secret is overwritten", path)
	}
	return nil
}

func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0") + " " + units[i]
}
