package peer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/internal/testlog"
)

var perfAverage = regexp.MustCompile(`iops average ([0-9.]+) \(([0-9.]+) MB/s\)`)

// perfGrace is how long iscsi-perf may run past its own -t time before
// IscsiPerf kills it: login, the last in-flight commands and logout.
const perfGrace = 15 * time.Second

// IscsiPerf runs libiscsi's iscsi-perf for d and returns its final
// average. iscsi-perf is killed if it has not ended d plus a grace
// period after it started.
func IscsiPerf(t testing.TB, url string, qd, blocks int, random bool, d time.Duration) (iops, mbps float64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+perfGrace)
	defer cancel()
	return IscsiPerfContext(ctx, t, url, qd, blocks, random, d)
}

// IscsiPerfContext is IscsiPerf, killing iscsi-perf when ctx ends. A
// run that ctx cut short, or that iscsi-perf ended with a non-zero
// status, is an error even if it printed an average.
func IscsiPerfContext(ctx context.Context, t testing.TB, url string, qd, blocks int, random bool, d time.Duration) (iops, mbps float64, err error) {
	Require(t, "iscsi-perf")
	args := []string{"-m", strconv.Itoa(qd), "-b", strconv.Itoa(blocks), "-t", strconv.Itoa(int(d.Seconds()))}
	if random {
		args = append(args, "-r")
	}
	out, runErr := LibiscsiCommand(ctx, "iscsi-perf", append(args, url)...).CombinedOutput()
	if ctx.Err() != nil {
		return 0, 0, fmt.Errorf("iscsi-perf did not finish in time (%v): %s", ctx.Err(), testlog.Tail(string(out), 500))
	}
	m := perfAverage.FindAllStringSubmatch(string(out), -1)
	if len(m) == 0 {
		return 0, 0, fmt.Errorf("iscsi-perf printed no average (%v): %s", runErr, testlog.Tail(string(out), 500))
	}
	last := m[len(m)-1]
	iops, _ = strconv.ParseFloat(last[1], 64)
	mbps, _ = strconv.ParseFloat(last[2], 64)
	if runErr != nil {
		return iops, mbps, fmt.Errorf("iscsi-perf: %v: %s", runErr, testlog.Tail(string(out), 500))
	}
	return iops, mbps, nil
}

// IscsiInq runs iscsi-inq against url and returns its output.
func IscsiInq(t testing.TB, url string) (string, error) {
	Require(t, "iscsi-inq")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := LibiscsiCommand(ctx, "iscsi-inq", url).CombinedOutput()
	return string(out), err
}

// CUResult is the summary of an iscsi-test-cu run.
type CUResult struct {
	Run, Passed, Failed int
	FailedTests         []string
	Output              string
}

var cuTests = regexp.MustCompile(`(?m)^\s*tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`)

// cuTimeout bounds an IscsiTestCU run; the whole suite takes a few
// minutes against a local target.
const cuTimeout = 15 * time.Minute

// IscsiTestCU runs libiscsi's conformance suite against urls.
func IscsiTestCU(t testing.TB, tests string, urls ...string) (CUResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cuTimeout)
	defer cancel()
	return IscsiTestCUContext(ctx, t, tests, urls...)
}

// IscsiTestCUContext is IscsiTestCU, killing iscsi-test-cu when ctx
// ends.
func IscsiTestCUContext(ctx context.Context, t testing.TB, tests string, urls ...string) (CUResult, error) {
	Require(t, "iscsi-test-cu")
	args := append([]string{"-d", "-n", "-t", tests}, urls...)
	out, _ := LibiscsiCommand(ctx, "iscsi-test-cu", args...).CombinedOutput()
	r := CUResult{Output: string(out)}
	if ctx.Err() != nil {
		return r, fmt.Errorf("iscsi-test-cu %s did not finish in time (%v): %s", tests, ctx.Err(), testlog.Tail(r.Output, 1000))
	}
	m := cuTests.FindStringSubmatch(r.Output)
	if m == nil {
		return r, fmt.Errorf("iscsi-test-cu printed no summary: %s", testlog.Tail(r.Output, 1000))
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

// chapInURL is the user%secret@ part of a libiscsi URL.
var chapInURL = regexp.MustCompile(`^(iscsi://)([^%@/]+)%([^@/]+)@`)

// LibiscsiCommand is exec.CommandContext for a libiscsi tool, except that
// CHAP credentials written into a URL argument (iscsi://user%secret@...)
// are taken out of it and handed to libiscsi in LIBISCSI_CHAP_USERNAME
// and LIBISCSI_CHAP_PASSWORD, so that no secret is on a command line.
func LibiscsiCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	var env []string
	clean := make([]string, len(args))
	for i, a := range args {
		clean[i] = a
		if m := chapInURL.FindStringSubmatch(a); m != nil {
			clean[i] = m[1] + a[len(m[0]):]
			env = []string{"LIBISCSI_CHAP_USERNAME=" + m[2], "LIBISCSI_CHAP_PASSWORD=" + m[3]}
		}
	}
	cmd := exec.CommandContext(ctx, name, clean...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	return cmd
}
