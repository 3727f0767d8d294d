package vss

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestThawGuardHelper is the guard process of TestThawGuard, a re-run of
// this test binary.
func TestThawGuardHelper(t *testing.T) {
	mnt := os.Getenv("HITKIT_TEST_THAW_GUARD")
	if mnt == "" {
		t.Skip("only run by TestThawGuard")
	}
	if err := RunThawGuard(mnt, os.Stdin, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

func startTestGuard(t *testing.T, mnt string) *ThawGuard {
	t.Helper()
	t.Setenv("HITKIT_TEST_THAW_GUARD", mnt)
	g, err := StartThawGuard([]string{os.Args[0], "-test.run=^TestThawGuardHelper$", "-test.count=1"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestThawGuard: when the process that froze a filesystem dies (its end
// of the pipe closes without a word, as the kernel does at SIGKILL), the
// guard thaws it; when it says it thawed, the guard leaves it alone.
func TestThawGuard(t *testing.T) {
	mnt := ext4Mount(t)

	g := startTestGuard(t, mnt)
	if err := freeze(mnt); err != nil {
		t.Fatal(err)
	}
	g.pipe.Close() // the freezer "dies"
	writable(t, mnt)
	g.cmd.Wait()

	g = startTestGuard(t, mnt)
	if err := freeze(mnt); err != nil {
		t.Fatal(err)
	}
	g.Release() // without thawing: the guard must not thaw either
	wrote := make(chan error, 1)
	go func() { wrote <- os.WriteFile(filepath.Join(mnt, "blocked"), []byte("x"), 0o644) }()
	select {
	case err := <-wrote:
		thaw(mnt)
		t.Fatalf("a released guard thawed the filesystem (write: %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := thaw(mnt); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
