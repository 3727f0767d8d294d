package peer

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var perfAverage = regexp.MustCompile(`iops average ([0-9.]+) \(([0-9.]+) MB/s\)`)

// IscsiPerf runs libiscsi's iscsi-perf and returns its final average.
func IscsiPerf(t testing.TB, url string, qd, blocks int, random bool, d time.Duration) (iops, mbps float64, err error) {
	Require(t, "iscsi-perf")
	args := []string{"-m", strconv.Itoa(qd), "-b", strconv.Itoa(blocks), "-t", strconv.Itoa(int(d.Seconds()))}
	if random {
		args = append(args, "-r")
	}
	out, _ := exec.Command("iscsi-perf", append(args, url)...).CombinedOutput()
	m := perfAverage.FindAllStringSubmatch(string(out), -1)
	if len(m) == 0 {
		return 0, 0, fmt.Errorf("iscsi-perf printed no average: %s", tail(string(out), 500))
	}
	last := m[len(m)-1]
	iops, _ = strconv.ParseFloat(last[1], 64)
	mbps, _ = strconv.ParseFloat(last[2], 64)
	return iops, mbps, nil
}

// IscsiInq runs iscsi-inq against url and returns its output.
func IscsiInq(t testing.TB, url string) (string, error) {
	Require(t, "iscsi-inq")
	out, err := exec.Command("iscsi-inq", url).CombinedOutput()
	return string(out), err
}

// CUResult is the summary of an iscsi-test-cu run.
type CUResult struct {
	Run, Passed, Failed int
	FailedTests         []string
	Output              string
}

var cuTests = regexp.MustCompile(`(?m)^\s*tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`)

// IscsiTestCU runs libiscsi's conformance suite against urls.
func IscsiTestCU(t testing.TB, tests string, urls ...string) (CUResult, error) {
	Require(t, "iscsi-test-cu")
	args := append([]string{"-d", "-n", "-t", tests}, urls...)
	out, _ := exec.Command("iscsi-test-cu", args...).CombinedOutput()
	r := CUResult{Output: string(out)}
	m := cuTests.FindStringSubmatch(r.Output)
	if m == nil {
		return r, fmt.Errorf("iscsi-test-cu printed no summary: %s", tail(r.Output, 1000))
	}
	r.Run, _ = strconv.Atoi(m[2])
	r.Passed, _ = strconv.Atoi(m[3])
	r.Failed, _ = strconv.Atoi(m[4])
	for _, line := range strings.Split(r.Output, "\n") {
		if strings.Contains(line, "FAILED") && strings.Contains(line, "Test:") {
			r.FailedTests = append(r.FailedTests, strings.TrimSpace(line))
		}
	}
	return r, nil
}
