package mgmt

import (
	"sync"
	"time"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/groupapi"
)

// sampleInterval is how often the sampler reads the session counters.
const sampleInterval = time.Second

// counters are cumulative I/O counters of a port, a volume or a session.
type counters struct {
	commands, bytesIn, bytesOut, nanos uint64
}

func (c *counters) add(d counters) {
	c.commands += d.commands
	c.bytesIn += d.bytesIn
	c.bytesOut += d.bytesOut
	c.nanos += d.nanos
}

// sub is c - o, field by field, or zero where a counter went backwards.
func (c counters) sub(o counters) counters {
	d := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return counters{d(c.commands, o.commands), d(c.bytesIn, o.bytesIn), d(c.bytesOut, o.bytesOut), d(c.nanos, o.nanos)}
}

func (c counters) rates(dt time.Duration) groupapi.Rates {
	s := dt.Seconds()
	if s <= 0 {
		return groupapi.Rates{}
	}
	r := groupapi.Rates{
		IOPS:      float64(c.commands) / s,
		ReadMBps:  float64(c.bytesOut) / s / 1e6,
		WriteMBps: float64(c.bytesIn) / s / 1e6,
	}
	if c.commands > 0 {
		r.AvgLatencyUs = float64(c.nanos) / float64(c.commands) / 1e3
	}
	return r
}

func sessionCounters(s target.SessionInfo) counters {
	return counters{s.Commands, s.BytesIn, s.BytesOut, s.CommandNanos}
}

// seen is a session as of the last sample. TSIHs are reused, so the
// login time and ISID tell a new session from the one seen before.
type seen struct {
	since time.Time
	isid  string
	c     counters
}

// sampler turns the sessions' cumulative counters into per-port and
// per-volume totals that survive logouts, and rates over the last sample.
// Its maps hold only sessions, ports and volumes that exist now, so they
// stay bounded.
type sampler struct {
	sessions func() []target.SessionInfo

	mu       sync.Mutex
	last     map[uint16]seen
	ports    map[string]*counters // by portal address
	volumes  map[string]*counters // by target IQN
	portRate map[string]groupapi.Rates
	volRate  map[string]groupapi.Rates
	at       time.Time

	stop chan struct{}
	done chan struct{}
}

func newSampler(sessions func() []target.SessionInfo) *sampler {
	return &sampler{
		sessions: sessions,
		last:     map[uint16]seen{}, ports: map[string]*counters{}, volumes: map[string]*counters{},
		portRate: map[string]groupapi.Rates{}, volRate: map[string]groupapi.Rates{},
	}
}

// start samples every interval until close.
func (p *sampler) start(interval time.Duration) {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.sample(time.Now())
	go func() {
		defer close(p.done)
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-p.stop:
				return
			case now := <-tk.C:
				p.sample(now)
			}
		}
	}()
}

func (p *sampler) close() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.stop = nil
}

// sample adds what each session did since the last sample to its port's
// and volume's totals, and sets the rates. What a session did between
// the last sample and its logout is not counted.
func (p *sampler) sample(now time.Time) {
	list := p.sessions()
	p.mu.Lock()
	defer p.mu.Unlock()
	before := func(m map[string]*counters) map[string]counters {
		out := make(map[string]counters, len(m))
		for k, c := range m {
			out[k] = *c
		}
		return out
	}
	prevPorts, prevVols := before(p.ports), before(p.volumes)
	last := make(map[uint16]seen, len(list))
	for _, s := range list {
		if s.Type != "Normal" {
			continue
		}
		cur := sessionCounters(s)
		d := cur
		if o, ok := p.last[s.TSIH]; ok && o.since.Equal(s.Since) && o.isid == s.ISID {
			d = cur.sub(o.c)
		}
		last[s.TSIH] = seen{since: s.Since, isid: s.ISID, c: cur}
		for _, k := range []struct {
			m   map[string]*counters
			key string
		}{{p.ports, s.Portal.Addr}, {p.volumes, s.TargetName}} {
			c := k.m[k.key]
			if c == nil {
				c = &counters{}
				k.m[k.key] = c
			}
			c.add(d)
		}
	}
	p.last = last
	dt := now.Sub(p.at)
	first := p.at.IsZero()
	p.at = now
	rates := func(m map[string]*counters, prev map[string]counters) map[string]groupapi.Rates {
		out := make(map[string]groupapi.Rates, len(m))
		for k, c := range m {
			if !first {
				out[k] = c.sub(prev[k]).rates(dt)
			}
			// Forget what no session uses any more, once it has been
			// reported idle: a port or volume that went away, say.
			if _, had := prev[k]; had && *c == prev[k] {
				delete(m, k)
			}
		}
		return out
	}
	p.portRate, p.volRate = rates(p.ports, prevPorts), rates(p.volumes, prevVols)
}

// rates are the last sample's, by portal address and by target IQN; a
// port or volume without I/O is absent, which reads as zero. The maps
// are replaced, never changed, so callers may read them unlocked.
func (p *sampler) rates() (ports, volumes map[string]groupapi.Rates) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.portRate, p.volRate
}
