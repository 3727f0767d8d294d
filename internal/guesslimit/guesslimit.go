// Package guesslimit limits password guesses per remote address: after
// Max wrong passwords within Window, an address is refused until the
// oldest of them is Window old. The lab's setup endpoint and management
// API answer such a refusal with 429 and Retry-After.
package guesslimit

import (
	"net"
	"sync"
	"time"
)

// Defaults of a zero Limiter: 5 wrong passwords a minute.
const (
	DefaultMax    = 5
	DefaultWindow = time.Minute
)

// maxAddresses bounds the memory a flood of addresses can take; past it,
// the oldest record is dropped.
const maxAddresses = 4096

// Limiter counts wrong passwords per remote address. The zero value uses
// the defaults and is ready to use.
type Limiter struct {
	Max    int
	Window time.Duration
	// Now is the clock, for tests; time.Now by default.
	Now func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time
}

// Key is the address part of a request's RemoteAddr (host:port): guesses
// from one host count together whatever their source port.
func Key(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// Blocked says whether addr must wait, and for how long, before it may
// try a password again.
func (l *Limiter) Blocked(addr string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	times := l.recent(addr, now)
	if len(times) < l.max() {
		return 0, false
	}
	return times[len(times)-l.max()].Add(l.window()).Sub(now), true
}

// Fail records a wrong password from addr.
func (l *Limiter) Fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == nil {
		l.failures = map[string][]time.Time{}
	}
	now := l.now()
	times := l.recent(addr, now)
	if len(times) == 0 && len(l.failures) >= maxAddresses {
		l.dropOldest()
	}
	l.failures[addr] = append(times, now)
}

// recent drops addr's failures older than the window and returns the rest.
func (l *Limiter) recent(addr string, now time.Time) []time.Time {
	times := l.failures[addr]
	i := 0
	for i < len(times) && now.Sub(times[i]) >= l.window() {
		i++
	}
	times = times[i:]
	if len(times) == 0 {
		delete(l.failures, addr)
		return nil
	}
	l.failures[addr] = times
	return times
}

func (l *Limiter) dropOldest() {
	var oldest string
	var at time.Time
	for addr, times := range l.failures {
		if last := times[len(times)-1]; oldest == "" || last.Before(at) {
			oldest, at = addr, last
		}
	}
	delete(l.failures, oldest)
}

func (l *Limiter) max() int {
	if l.Max > 0 {
		return l.Max
	}
	return DefaultMax
}

func (l *Limiter) window() time.Duration {
	if l.Window > 0 {
		return l.Window
	}
	return DefaultWindow
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// RetryAfter is a wait as whole seconds for a Retry-After header, at
// least 1.
func RetryAfter(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
