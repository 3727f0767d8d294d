package health

import (
	"fmt"
	"io"
	"strings"
)

// WriteNagios writes the plugin output: one status line, "HITKIT STATE -
// summary | perfdata", then the other problems, one per line (Nagios shows
// them as long output). The exit code is r.State.ExitCode().
func WriteNagios(w io.Writer, r Report) error {
	problems := r.Problems()
	var summary string
	switch {
	case len(problems) == 0:
		up, total := 0, 0
		for _, v := range r.Volumes {
			up, total = up+v.PathsUp, total+v.PathsTotal
		}
		summary = fmt.Sprintf("%d volume(s), %d of %d paths up", len(r.Volumes), up, total)
	default:
		summary = problems[0].Subject + ": " + problems[0].Message
		if len(problems) > 1 {
			summary += fmt.Sprintf(" (and %d more)", len(problems)-1)
		}
	}
	if _, err := fmt.Fprintf(w, "HITKIT %s - %s | %s\n", r.State, plain(summary), perfdata(r)); err != nil {
		return err
	}
	for _, f := range problems[min(1, len(problems)):] {
		if _, err := fmt.Fprintf(w, "%s %s: %s\n", f.State, plain(f.Subject), plain(f.Message)); err != nil {
			return err
		}
	}
	return nil
}

// plain keeps text out of the perfdata: Nagios splits at the first '|'.
func plain(s string) string {
	return strings.NewReplacer("|", "/", "\n", " ").Replace(s)
}

// perfdata is label=value[UOM];warn;crit;min;max for each volume, in the
// plugin guidelines' format.
func perfdata(r Report) string {
	var parts []string
	for _, v := range r.Volumes {
		label := func(what string) string { return "'" + strings.ReplaceAll(v.Name, "'", "") + " " + what + "'" }
		parts = append(parts,
			fmt.Sprintf("%s=%d;%d:;1:;0;%d", label("paths up"), v.PathsUp, v.PathsTotal, v.PathsTotal),
			fmt.Sprintf("%s=%dc", label("errors"), sumErrors(v)),
		)
		if lat := maxLatency(v); lat > 0 {
			parts = append(parts, fmt.Sprintf("%s=%.3fms;;;0", label("latency max"), lat/1000))
		}
		if v.Array != nil && v.Array.ReserveUsedPct >= 0 {
			parts = append(parts, fmt.Sprintf("%s=%.1f%%;80;95;0;100", label("snapshot reserve"), v.Array.ReserveUsedPct))
		}
		if v.Array != nil {
			parts = append(parts, fmt.Sprintf("%s=%d;;;0", label("snapshots online"), v.Array.SnapshotsOnline))
		}
	}
	return strings.Join(parts, " ")
}

func sumErrors(v VolumeReport) uint64 {
	var n uint64
	for _, p := range v.Paths {
		n += p.Errors
	}
	return n
}

func maxLatency(v VolumeReport) float64 {
	var m float64
	for _, p := range v.Paths {
		m = max(m, p.LatencyMaxUs)
	}
	return m
}
