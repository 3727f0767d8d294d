package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/discovery"
)

// Options configures a run.
type Options struct {
	Daemon *daemon.Client
	// StateDir is hitkitd's state directory: the --login-at-boot volumes
	// it must serve, and the group admin passwords saved with them.
	StateDir string
	// Previous is the last run's memory, for errors since then.
	Previous Memory
	// GroupPassword returns the admin password of a volume's group, for
	// the array checks; nil or an error leaves the group unasked.
	GroupPassword func(ctx context.Context, v daemon.VolumeInfo) ([]byte, error)
	// Interfaces lists the host's NICs; discovery.Interfaces by default.
	Interfaces func() ([]discovery.NIC, error)
	Limits     Limits
}

// Limits are the thresholds of the checks.
type Limits struct {
	// ReserveWarning and ReserveCritical are percentages of a volume's
	// snapshot reserve in use. CRITICAL applies when a full reserve makes
	// writes fail (policy "refuse"); with "delete-oldest" it stays WARNING.
	ReserveWarning, ReserveCritical float64
	// A path is a latency outlier when its average is LatencyFactor times
	// the median of the volume's other paths and LatencyFloor more.
	// Only paths whose average stands on LatencySamples commands are
	// compared: on an idle volume one slow command would decide.
	LatencyFactor  float64
	LatencyFloor   time.Duration
	LatencySamples uint64
	// FlapCount: a path that failed and came back this often since the
	// last run is flapping.
	FlapCount uint64
}

// DefaultLimits are the thresholds `hitkit health` uses.
var DefaultLimits = Limits{
	ReserveWarning: 80, ReserveCritical: 95,
	LatencyFactor: 4, LatencyFloor: 2 * time.Millisecond, LatencySamples: 100,
	FlapCount: 3,
}

// Check runs every check, within ctx's deadline: a check still waiting
// when it passes is reported UNKNOWN, so a run never hangs a cron job.
func Check(ctx context.Context, opts Options) (r Report) {
	if opts.Interfaces == nil {
		opts.Interfaces = discovery.Interfaces
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits
	}
	r = Report{Time: time.Now().UTC(), Volumes: []VolumeReport{}, NICs: []NICReport{}, Groups: []GroupReport{}}
	defer r.finish() // on r itself, the named result

	saved, err := daemon.SavedVolumes(opts.StateDir)
	if err != nil {
		r.add(Unknown, CheckDaemon, "saved volumes", fmt.Sprintf("cannot read the --login-at-boot volumes: %v", err))
	}
	pid, err := opts.Daemon.Ping(ctx)
	if err != nil {
		daemonDown(&r, err, saved, opts.Previous)
		return r
	}
	r.Daemon = DaemonReport{Running: true, PID: pid}
	vols, err := opts.Daemon.Status(ctx, "")
	if err != nil {
		r.add(Unknown, CheckDaemon, "hitkitd", fmt.Sprintf("hitkitd (pid %d) answered a ping but not the status request: %v", pid, err))
		return r
	}
	checkSaved(&r, pid, vols, saved)
	for _, v := range vols {
		r.Volumes = append(r.Volumes, checkVolume(&r, v, opts.Previous.Volumes[v.Name], opts.Previous.DaemonPID == pid, opts.Limits))
	}
	checkNICs(&r, opts.Interfaces)
	arrays := checkArrays(ctx, &r, vols, opts)
	for i, v := range vols {
		checkMembers(&r, v, &r.Volumes[i], arrays)
		checkLatency(&r, &r.Volumes[i], opts.Limits)
	}
	return r
}

// daemonDown judges a host whose hitkitd does not answer: CRITICAL when
// it should serve volumes (saved for login at boot, or seen by the last
// run), UNKNOWN when nothing is configured and there is nothing to check.
func daemonDown(r *Report, err error, saved []daemon.ConnectRequest, prev Memory) {
	var names []string
	for _, s := range saved {
		names = append(names, s.Name)
	}
	for name := range prev.Volumes {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	why := err.Error()
	if errors.Is(err, daemon.ErrNotRunning) {
		why = "no answer on its control socket"
	}
	if len(names) == 0 {
		r.add(Unknown, CheckDaemon, "hitkitd", "hitkitd is not running ("+why+") and no volume is configured: nothing to check")
		return
	}
	r.add(Critical, CheckDaemon, "hitkitd", fmt.Sprintf("hitkitd is not running (%s): volume %s not served; start it (systemctl start hitkitd, or hitkit daemon)",
		why, strings.Join(names, ", ")))
}

// checkSaved reports hitkitd itself, and the --login-at-boot volumes it
// has not connected (it keeps retrying them; its log says why they fail).
func checkSaved(r *Report, pid int, vols []daemon.VolumeInfo, saved []daemon.ConnectRequest) {
	msg := fmt.Sprintf("hitkitd is running (pid %d), serving %d volume(s)", pid, len(vols))
	r.add(OK, CheckDaemon, "hitkitd", msg)
	for _, s := range saved {
		if !slices.ContainsFunc(vols, func(v daemon.VolumeInfo) bool { return v.Name == s.Name }) {
			r.add(Critical, CheckVolume, s.Name, fmt.Sprintf("configured for login at boot but not connected (portal %s); hitkitd keeps retrying, its log says why it fails", s.Portal))
		}
	}
}
