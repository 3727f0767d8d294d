package mpio

import "sync/atomic"

// selector picks the path for the next command under a policy. It reads
// only atomics, so that picking a path costs no lock on the I/O path.
type selector struct {
	policy Policy
	next   atomic.Uint32 // where round-robin, and LQD's tie-break, start

	// pages, when set, steers READ and WRITE to the member holding their
	// blocks (see pickFor); blockSize is set once the unit's is known.
	pages     *PageMap
	blockSize atomic.Int64
}

// pick returns the path for the next command, or nil when none is usable.
// Paths that are draining for a logout are used only when nothing else is:
// their session holds new commands until it has logged in again, which is
// slower than another path but never an error.
func (s *selector) pick(paths []*path) *path {
	if p := s.pickAmong(paths, false); p != nil {
		return p
	}
	return s.pickAmong(paths, true)
}

func (s *selector) pickAmong(paths []*path, allowDraining bool) *path {
	switch s.policy {
	case PolicyFailover:
		return firstUsable(paths, allowDraining)
	case PolicyRoundRobin:
		return s.roundRobin(paths, allowDraining)
	default:
		return s.leastQueueDepth(paths, allowDraining)
	}
}

// firstUsable is the failover policy: configuration order is preference
// order, so all I/O stays on one path while it is healthy.
func firstUsable(paths []*path, allowDraining bool) *path {
	for _, p := range paths {
		if p.usable(allowDraining) {
			return p
		}
	}
	return nil
}

func (s *selector) roundRobin(paths []*path, allowDraining bool) *path {
	n := uint32(len(paths))
	if n == 0 {
		return nil
	}
	start := s.next.Add(1)
	for i := range n {
		if p := paths[(start+i)%n]; p.usable(allowDraining) {
			return p
		}
	}
	return nil
}

// leastQueueDepth picks the usable path with the fewest outstanding
// commands. Ties go to the path after the last one picked, so that an idle
// device still spreads its commands over every path.
func (s *selector) leastQueueDepth(paths []*path, allowDraining bool) *path {
	n := uint32(len(paths))
	if n == 0 {
		return nil
	}
	start := s.next.Add(1)
	var best *path
	var bestDepth int64
	for i := range n {
		p := paths[(start+i)%n]
		if !p.usable(allowDraining) {
			continue
		}
		if d := p.outstanding.Load(); best == nil || d < bestDepth {
			best, bestDepth = p, d
			if d == 0 {
				break // nothing beats an idle path
			}
		}
	}
	return best
}
