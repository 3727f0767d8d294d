package target_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/target"
)

// conformanceTests is the iscsi-test-cu subset the package's tests run:
// the iSCSI protocol suites, and the SCSI suites that exercise the data
// path through the engine (immediate data, R2Ts, Data-In, residuals).
var conformanceTests = []string{
	"SCSI.TestUnitReady",
	"SCSI.Inquiry",
	"SCSI.ReadCapacity10",
	"SCSI.ReadCapacity16",
	"SCSI.Read10",
	"SCSI.Read16",
	"SCSI.Write10",
	"SCSI.Write16",
	"iSCSI.iSCSIcmdsn",
	"iSCSI.iSCSIdatasn",
	"iSCSI.iSCSIResiduals",
	"iSCSI.iSCSITMF",
	"SCSI.MultipathIO",
}

var cuSummary = regexp.MustCompile(`tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`)

// TestConformance runs libiscsi's target conformance suite. Set
// HITKIT_CU_TESTS to run another selection, e.g. "ALL".
func TestConformance(t *testing.T) {
	needTool(t, "iscsi-test-cu")
	tests := conformanceTests
	if v := os.Getenv("HITKIT_CU_TESTS"); v != "" {
		tests = []string{v}
	}
	l := newLab(t, target.Config{Logger: quietLogger()}, nil)
	for _, name := range tests {
		t.Run(name, func(t *testing.T) {
			args := []string{"-d", "-n", "-t", name, l.url(0)}
			if name == "SCSI.MultipathIO" {
				args = append(args, l.url(0)) // a second session to the same LU
			}
			out, err := run(t, 3*time.Minute, "iscsi-test-cu", args...)
			m := cuSummary.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("iscsi-test-cu %s: no summary (%v):\n%s", name, err, out)
			}
			run, _ := strconv.Atoi(m[2])
			failed, _ := strconv.Atoi(m[4])
			t.Logf("%s: %s tests, %d run, %d failed", name, m[1], run, failed)
			if failed > 0 {
				t.Errorf("iscsi-test-cu %s: %d of %d tests failed:\n%s", name, failed, run, out)
			}
		})
	}
}
