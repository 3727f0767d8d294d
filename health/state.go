// Package health checks a host's iSCSI volumes for `hitkit health`: the
// paths and sessions of every volume hitkitd serves, their latencies, the
// NICs that carry them, hitkitd itself and, through the group's management
// API, the array, its snapshot reserve and the snapshots left online. It
// renders the result for people, scripts, Nagios and Prometheus, keeps
// what a later run compares against (error counters, the last state), and
// sends an e-mail when the overall state changes.
package health

import (
	"encoding/json"
	"fmt"
)

// State is a finding's or a report's verdict, numbered as Nagios plugins
// exit.
type State int

const (
	OK       State = 0
	Warning  State = 1
	Critical State = 2
	Unknown  State = 3
)

var stateNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// ExitCode is the Nagios plugin exit code of the state.
func (s State) ExitCode() int { return int(s) }

// severity orders states for "the worst wins": a state that could not be
// checked (UNKNOWN) outranks OK but not a problem that was seen.
func (s State) severity() int {
	switch s {
	case OK:
		return 0
	case Unknown:
		return 1
	case Warning:
		return 2
	}
	return 3
}

// Worse returns the more severe of a and b.
func Worse(a, b State) State {
	if b.severity() > a.severity() {
		return b
	}
	return a
}

func (s State) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

func (s *State) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	for i, n := range stateNames {
		if n == name {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown health state %q", name)
}
