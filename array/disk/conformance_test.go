package disk_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hitkit/hitkit/array/disk"
	"github.com/hitkit/hitkit/array/target"
)

// sbcSuites are the libiscsi SCSI suites this disk passes with zero
// failures, run against the target engine on loopback.
var sbcSuites = []string{
	"SCSI.TestUnitReady", "SCSI.Inquiry", "SCSI.Mandatory",
	"SCSI.ReadCapacity10", "SCSI.ReadCapacity16",
	"SCSI.Read6", "SCSI.Read10", "SCSI.Read12", "SCSI.Read16",
	"SCSI.Write10", "SCSI.Write12", "SCSI.Write16",
	"SCSI.WriteVerify10", "SCSI.WriteVerify12", "SCSI.WriteVerify16",
	"SCSI.Verify10", "SCSI.Verify12", "SCSI.Verify16",
	"SCSI.WriteSame10", "SCSI.WriteSame16", "SCSI.Unmap", "SCSI.GetLBAStatus",
	"SCSI.CompareAndWrite", "SCSI.Prefetch10", "SCSI.Prefetch16",
	"SCSI.ModeSense6", "SCSI.ReportSupportedOpcodes", "SCSI.StartStopUnit",
	"SCSI.PrinReadKeys", "SCSI.PrinServiceactionRange", "SCSI.PrinReportCapabilities",
	"SCSI.ProutRegister", "SCSI.ProutReserve", "SCSI.ProutClear", "SCSI.ProutPreempt",
}

var cuSummary = regexp.MustCompile(`tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`)

const conformanceIQN = "iqn.2024-01.org.hitkit:disk-conformance"

// TestConformance runs iscsi-test-cu (libiscsi) against a thin disk
// behind the target engine. HITKIT_CU_TESTS picks other suites
// (comma-separated, e.g. "SCSI.Read10,SCSI.Unmap" or "ALL").
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: conformance run in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: iscsi-test-cu runs as root (CI does)")
	}
	tool, err := exec.LookPath("iscsi-test-cu")
	if err != nil {
		t.Skip("skipping: iscsi-test-cu is not installed (Debian package libiscsi-bin)")
	}
	suites := sbcSuites
	if v := os.Getenv("HITKIT_CU_TESTS"); v != "" {
		suites = strings.Split(v, ",")
	}
	url := startTarget(t)
	for _, suite := range suites {
		t.Run(suite, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			// Two URLs to the same LU: the reservation suites need a second nexus.
			out, err := exec.CommandContext(ctx, tool, "-d", "-n", "-t", suite, url, url).CombinedOutput()
			m := cuSummary.FindSubmatch(out)
			if m == nil {
				t.Fatalf("iscsi-test-cu %s: no summary (%v):\n%s", suite, err, out)
			}
			run, _ := strconv.Atoi(string(m[2]))
			failed, _ := strconv.Atoi(string(m[4]))
			t.Logf("%s: %d run, %d failed", suite, run, failed)
			if failed > 0 {
				t.Errorf("iscsi-test-cu %s: %d of %d failed:\n%s", suite, failed, run, failures(out))
			}
		})
	}
}

// startTarget serves a 64 MiB thin disk as LUN 0 on a loopback portal.
func startTarget(t *testing.T) string {
	t.Helper()
	b, err := disk.CreateFile(filepath.Join(t.TempDir(), "lun0.img"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d, err := disk.New(b, disk.Identity{Vendor: "HITKIT", Product: "LABDISK", Revision: "0001", Serial: "CONF-0001"},
		disk.Options{ThinProvisioning: true, WriteCache: true})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := target.NewServer(target.Config{Logger: log})
	t.Cleanup(func() { srv.Close() })
	p, err := srv.AddPortal("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	tg := target.NewTarget(conformanceIQN)
	tg.SetLUN(0, d)
	if err := srv.AddTarget(tg); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("iscsi://%s/%s/0", p.Addr, conformanceIQN)
}

// failures keeps the lines of iscsi-test-cu's output that explain failures.
func failures(out []byte) string {
	var b strings.Builder
	for _, line := range bytes.Split(out, []byte("\n")) {
		if bytes.Contains(line, []byte("FAIL")) || bytes.Contains(line, []byte("Test:")) {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
