// Package testlog keeps a lab group's log out of a test's way and shows it
// when the test fails. It imports nothing of hitkit, so that the tests of
// package array use it as well as internal/labtest.
package testlog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
)

// tailBytes is how much of a failed test's log is printed.
const tailBytes = 6000

// FailureLog keeps a log, at debug level, in a file of t's, and prints its
// end if t fails. Cleanups run last first, so a group closed by a cleanup
// registered after this one has its stopping lines in what is printed.
func FailureLog(t testing.TB) logrus.FieldLogger {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lab.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(f)
	l.SetLevel(logrus.DebugLevel)
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(path)
			t.Logf("group log:\n%s", Tail(string(b), tailBytes))
		}
	})
	return l
}

// Tail is the last n bytes of s, marked with "..." when cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
