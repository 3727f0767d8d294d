package vss

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// SIGKILL cannot be caught, and a process killed between FIFREEZE and
// FITHAW would leave the filesystem frozen, with every writer on it
// blocked, until someone runs fsfreeze -u. A thaw guard is a small child
// process that holds the read end of a pipe from its parent: if the pipe
// closes without the parent saying "thawed", the parent died, and the
// guard thaws the filesystem itself.

// ThawGuard is the parent's side of a running guard.
type ThawGuard struct {
	cmd  *exec.Cmd
	pipe io.WriteCloser
}

const guardReady = "ready\n"

// guardStartTimeout bounds how long a guard takes to arm itself.
const guardStartTimeout = 10 * time.Second

// StartThawGuard runs argv (a command that calls RunThawGuard, such as
// `hitkit snapshot thaw-guard MOUNTPOINT`) and returns once it is armed.
func StartThawGuard(argv []string) (*ThawGuard, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the thaw guard: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != guardReady {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(guardStartTimeout):
		err = errors.New("no answer")
	}
	if err != nil {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the thaw guard did not arm: %v", err)
	}
	return &ThawGuard{cmd: cmd, pipe: in}, nil
}

// Release tells the guard that the filesystem was thawed, and waits for
// it to exit.
func (g *ThawGuard) Release() {
	g.pipe.Write([]byte{'t'})
	g.pipe.Close()
	done := make(chan struct{})
	go func() { g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		g.cmd.Process.Kill()
		<-done
	}
}

// RunThawGuard is the guard: it says it is ready on out, then waits on
// in. A byte means the parent thawed; end of file without one means the
// parent died, and the guard thaws mountpoint. It ignores the terminal's
// SIGINT, which its parent handles.
func RunThawGuard(mountpoint string, in io.Reader, out io.Writer) error {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if _, err := io.WriteString(out, guardReady); err != nil {
		return err
	}
	var b [1]byte
	if n, _ := in.Read(b[:]); n == 1 {
		return nil
	}
	err := thaw(mountpoint)
	if errors.Is(err, syscall.EINVAL) {
		return nil // not frozen: the parent died before freezing, or after thawing
	}
	if err == nil {
		fmt.Fprintf(os.Stderr, "hitkit: the process that froze %s died; thawed it\n", mountpoint)
	}
	return err
}
