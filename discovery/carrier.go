package discovery

import (
	"context"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// resubscribeAfter spaces attempts to subscribe again when the kernel
// closes the netlink subscription (for example after an ENOBUFS overrun).
const resubscribeAfter = time.Second

// WatchCarrier calls changed whenever a NIC gains or loses its carrier:
// down when it loses LOWER_UP, when its operational state leaves up, when
// it is set down, or when it is deleted; up when it comes back. It returns
// once it is subscribed to the kernel's link updates, and keeps watching
// in the background until ctx ends. changed is called from one goroutine,
// one change at a time, and only for changes after WatchCarrier returned.
func WatchCarrier(ctx context.Context, changed func(nic string, up bool)) error {
	w := &carrierWatch{changed: changed, up: map[int]linkState{}}
	ch, stop, err := w.subscribe()
	if err != nil {
		return err
	}
	go w.run(ctx, ch, stop)
	return nil
}

type linkState struct {
	name string
	up   bool
}

type carrierWatch struct {
	changed func(string, bool)
	up      map[int]linkState // by link index: names can change
}

// subscribe starts a netlink subscription and then reads every link's
// state, so that no change between the two is lost: an update that the
// listing already saw changes nothing.
func (w *carrierWatch) subscribe() (<-chan netlink.LinkUpdate, chan struct{}, error) {
	ch := make(chan netlink.LinkUpdate, 64)
	stop := make(chan struct{})
	if err := netlink.LinkSubscribe(ch, stop); err != nil {
		return nil, nil, fmt.Errorf("watch NIC carriers: %w", err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		close(stop)
		return nil, nil, fmt.Errorf("watch NIC carriers: %w", err)
	}
	seen := map[int]bool{}
	for _, l := range links {
		w.update(l.Attrs().Index, l.Attrs().Name, carrierUp(l))
		seen[l.Attrs().Index] = true
	}
	// Links that vanished while the subscription was down.
	for idx := range w.up {
		if !seen[idx] {
			w.update(idx, "", false)
			delete(w.up, idx)
		}
	}
	return ch, stop, nil
}

func (w *carrierWatch) run(ctx context.Context, ch <-chan netlink.LinkUpdate, stop chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			close(stop)
			return
		case u, ok := <-ch:
			if ok {
				w.handle(u)
				continue
			}
			close(stop)
			if ch, stop = w.resubscribe(ctx); ch == nil {
				return
			}
		}
	}
}

// resubscribe retries until it is subscribed again or ctx ends.
func (w *carrierWatch) resubscribe(ctx context.Context) (<-chan netlink.LinkUpdate, chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(resubscribeAfter):
		}
		if ch, stop, err := w.subscribe(); err == nil {
			return ch, stop
		}
	}
}

func (w *carrierWatch) handle(u netlink.LinkUpdate) {
	a := u.Attrs()
	if u.Header.Type == unix.RTM_DELLINK {
		w.update(a.Index, a.Name, false)
		delete(w.up, a.Index)
		return
	}
	w.update(a.Index, a.Name, carrierUp(u.Link))
}

// update records a link's state and reports a change. A link seen for the
// first time is recorded silently: it has no change to report.
func (w *carrierWatch) update(index int, name string, up bool) {
	old, known := w.up[index]
	if name == "" {
		name = old.name
	}
	w.up[index] = linkState{name: name, up: up}
	if known && old.up != up {
		w.changed(name, up)
	}
}
