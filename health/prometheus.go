package health

import (
	"bytes"
	"strconv"

	"github.com/hitkit/hitkit/internal/atomicfile"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// WritePrometheus writes the report as a node_exporter textfile
// collector file, atomically: node_exporter never reads half a file.
func WritePrometheus(path string, r Report) error {
	var buf bytes.Buffer
	for _, mf := range metrics(r) {
		if len(mf.Metric) == 0 {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return err
		}
	}
	return atomicfile.Write(path, buf.Bytes(), 0o644)
}

type family struct{ *dto.MetricFamily }

func newFamily(name, help string, t dto.MetricType) family {
	return family{&dto.MetricFamily{Name: &name, Help: &help, Type: &t}}
}

// add appends a sample with labels given as name, value pairs.
func (f family) add(v float64, labels ...string) {
	m := &dto.Metric{}
	for i := 0; i+1 < len(labels); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: &labels[i], Value: &labels[i+1]})
	}
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		m.Counter = &dto.Counter{Value: &v}
	default:
		m.Gauge = &dto.Gauge{Value: &v}
	}
	f.Metric = append(f.Metric, m)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func metrics(r Report) []*dto.MetricFamily {
	gauge, counter := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	state := newFamily("hitkit_health_state", "Overall state of the last hitkit health run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", gauge)
	last := newFamily("hitkit_health_last_run_timestamp_seconds", "When the last hitkit health run finished, in Unix time.", gauge)
	findings := newFamily("hitkit_health_findings", "Findings of the last run by state.", gauge)
	daemonUp := newFamily("hitkit_daemon_up", "1 when hitkitd answers on its control socket.", gauge)
	paths := newFamily("hitkit_volume_paths", "Paths (sessions) planned for the volume.", gauge)
	pathsUp := newFamily("hitkit_volume_paths_up", "Paths of the volume that can carry I/O.", gauge)
	pathUp := newFamily("hitkit_path_up", "1 when the path can carry I/O.", gauge)
	pathErr := newFamily("hitkit_path_errors_total", "Failures of the path (lost sessions and failed logins) since hitkitd connected it.", counter)
	pathRe := newFamily("hitkit_path_reinstated_total", "Times the path failed and logged in again.", counter)
	latAvg := newFamily("hitkit_path_latency_avg_seconds", "Moving average of the path's command latency (0: no recent I/O).", gauge)
	latMax := newFamily("hitkit_path_latency_max_seconds", "Slowest command on the path in the last 10 seconds.", gauge)
	reserve := newFamily("hitkit_snapshot_reserve_used_ratio", "Part of the volume's snapshot reserve in use, 0 to 1.", gauge)
	snaps := newFamily("hitkit_snapshots", "Snapshots of the volume.", gauge)
	online := newFamily("hitkit_snapshots_online", "Snapshots of the volume that are online.", gauge)
	group := newFamily("hitkit_group_reachable", "1 when the group's management API answered.", gauge)
	portsDown := newFamily("hitkit_group_ports_down", "Member ports of the group that are not up.", gauge)
	nicUp := newFamily("hitkit_nic_up", "1 when the NIC carrying paths has its carrier.", gauge)
	nicMTU := newFamily("hitkit_nic_mtu_bytes", "MTU of the NIC carrying paths.", gauge)
	nicSpeed := newFamily("hitkit_nic_speed_bytes", "Link speed of the NIC carrying paths, bytes per second (absent when unknown).", gauge)

	state.add(float64(r.State))
	last.add(float64(r.Time.Unix()))
	counts := map[State]int{}
	for _, f := range r.Findings {
		counts[f.State]++
	}
	for _, s := range []State{OK, Warning, Critical, Unknown} {
		findings.add(float64(counts[s]), "state", s.String())
	}
	daemonUp.add(b2f(r.Daemon.Running))
	for _, v := range r.Volumes {
		paths.add(float64(v.PathsTotal), "volume", v.Name)
		pathsUp.add(float64(v.PathsUp), "volume", v.Name)
		for _, p := range v.Paths {
			l := []string{"volume", v.Name, "path", strconv.Itoa(p.ID), "source", p.Source, "nic", p.NIC}
			pathUp.add(b2f(p.Up), l...)
			pathErr.add(float64(p.Errors), l...)
			pathRe.add(float64(p.Reinstated), l...)
			latAvg.add(p.LatencyAvgUs/1e6, l...)
			latMax.add(p.LatencyMaxUs/1e6, l...)
		}
		if a := v.Array; a != nil {
			if a.ReserveUsedPct >= 0 {
				reserve.add(a.ReserveUsedPct/100, "volume", v.Name)
			}
			snaps.add(float64(a.Snapshots), "volume", v.Name)
			online.add(float64(a.SnapshotsOnline), "volume", v.Name)
		}
	}
	for _, g := range r.Groups {
		group.add(b2f(g.Reachable), "api", g.API, "group", g.Name)
		if g.Reachable {
			portsDown.add(float64(g.PortsDown), "group", g.Name)
		}
	}
	for _, n := range r.NICs {
		nicUp.add(b2f(n.Up), "nic", n.Name)
		nicMTU.add(float64(n.MTU), "nic", n.Name)
		if n.SpeedMbs > 0 {
			nicSpeed.add(float64(n.SpeedMbs)*125000, "nic", n.Name)
		}
	}
	var out []*dto.MetricFamily
	for _, f := range []family{state, last, findings, daemonUp, paths, pathsUp, pathUp, pathErr, pathRe, latAvg, latMax,
		reserve, snaps, online, group, portsDown, nicUp, nicMTU, nicSpeed} {
		out = append(out, f.MetricFamily)
	}
	return out
}
