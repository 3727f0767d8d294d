package array

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
)

// rebalance spreads every volume's pages over all online members, one
// volume at a time, and records each new member list in group.json.
// progress hears the share of moving pages done, 0 to 100. A cancelled
// ctx stops it between pages; the volume in progress keeps its old
// layout, and the ones done keep their new one.
func (g *Group) rebalance(ctx context.Context, progress func(int)) error {
	g.mu.Lock()
	members := g.cfg.onlineMembers()
	vols := slices.Clone(g.volumes)
	online := []*Member{}
	for _, n := range members {
		online = append(online, g.members[n-1])
	}
	g.mu.Unlock()
	var total, done int64
	for _, v := range vols {
		total += movingPages(v.store.PageMap(), members)
	}
	progress(0)
	var errs []error
	for _, v := range vols {
		for _, m := range online {
			v.addUnit(m, &g.forwardLatency)
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if slices.Equal(v.store.PageMap().Members, members) {
			continue
		}
		g.mu.Lock()
		served := slices.Contains(g.volumes, v)
		name, thick := v.cfg.Name, !v.cfg.Thin
		g.mu.Unlock()
		if !served {
			continue // deleted since the list was taken
		}
		commit := func() error {
			return g.updateConfig(func(c *Config) error {
				_, i, ok := c.volume(name)
				if !ok {
					return fmt.Errorf("no volume %q in group.json", name)
				}
				c.Volumes[i].Members = members
				v.cfg.Members = members // both under the group's mutex
				return nil
			})
		}
		base := done
		moved := func(n int64) {
			done = base + n
			if total > 0 {
				progress(int(done * 100 / total))
			}
		}
		if err := v.store.Rebalance(ctx, g.dir, members, thick, commit, moved); err != nil {
			if ctx.Err() != nil {
				return errors.Join(append(errs, fmt.Errorf("volume %s: %w", name, err))...)
			}
			errs = append(errs, fmt.Errorf("volume %s: %w", name, err))
			continue
		}
		g.log.WithFields(map[string]any{"volume": name, "members": fmt.Sprint(members)}).Info("volume rebalanced")
	}
	progress(100)
	return errors.Join(errs...)
}

// resumeRebalance finishes the work of a join that a stopped lab left
// half done: the volumes whose pages are not yet spread over the online
// members move to them in the background, one at a time, as in a join.
// The group serves meanwhile; a volume's I/O waits only while it moves.
// Close stops it (see stopResume); the next start carries on.
func (g *Group) resumeRebalance() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bgCtx.Err() != nil || !g.cfg.Formed() {
		return // stopping already, or no group to rebalance
	}
	members := g.cfg.onlineMembers()
	var behind []string
	for _, v := range g.volumes {
		// v.cfg, not the store's page map: a join may be rebalancing,
		// holding the volume's lock while it waits for the group's.
		if !slices.Equal(v.cfg.Members, members) {
			behind = append(behind, v.cfg.Name)
		}
	}
	if len(behind) == 0 {
		return
	}
	log := g.log.WithFields(logrus.Fields{"volumes": strings.Join(behind, ","), "members": fmt.Sprint(members)})
	done := make(chan struct{})
	g.resumeDone = done
	go func() {
		defer close(done)
		// One rebalance at a time: a join that a host starts now waits
		// for this one, then finds these volumes done.
		g.setupMu.Lock()
		defer g.setupMu.Unlock()
		log.Info("resuming an interrupted rebalance")
		err := g.rebalance(g.bgCtx, logProgress(log))
		switch {
		case err == nil:
			log.Info("rebalance finished")
		case g.bgCtx.Err() != nil:
			log.Info("rebalance paused: the group is stopping; it resumes at the next start")
		default:
			log.WithError(err).Error("rebalance failed; the volumes keep their data and serve from their current members, and the next start tries again")
		}
	}()
}

// logProgress logs a rebalance's progress every tenth of the way.
func logProgress(log logrus.FieldLogger) func(int) {
	last := -1
	return func(pct int) {
		if step := pct / 10; step != last {
			last = step
			log.WithField("percent", pct).Info("rebalancing")
		}
	}
}

// stopResume cancels the background rebalance; waitResume waits for it
// to end. Close closes the services in between: the rebalance may be
// waiting for a join to finish, and closing the setup service cancels
// the join.
func (g *Group) stopResume() { g.bgCancel() }

func (g *Group) waitResume() {
	g.mu.Lock()
	done := g.resumeDone
	g.mu.Unlock()
	if done != nil {
		<-done
	}
}

// movingPages counts the pages whose owner changes when pm's pages go to
// members instead.
func movingPages(pm PageMap, members []int) int64 {
	next := pm
	next.Members = members
	var n int64
	for p := range pm.Pages() {
		if pm.Owner(p) != next.Owner(p) {
			n++
		}
	}
	return n
}

// Rebalance spreads the volume's pages round-robin over members instead.
// It is crash-safe and keeps the data: the pages that change owner are
// copied to their new owner's file and those files synced; then commit
// records the new member list durably (the group saves group.json); only
// then are the old copies punched out. A crash before commit leaves the
// old layout whole (the copies are strays that the old page map never
// reads, and a later rebalance overwrites); a crash after it leaves the
// new layout, with old copies that cost space but are never read. I/O to
// the volume waits while this runs. moved hears how many pages have been
// copied so far. A cancelled ctx stops the copy between pages and leaves
// the old layout, as a crash before commit does.
//
// Snapshots keep the page map they were taken with, and their own
// storage, so only the live volume's member files move here.
func (v *Volume) Rebalance(ctx context.Context, dir string, members []int, thick bool, commit func() error, moved func(pages int64)) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.files) == 0 {
		return fmt.Errorf("volume %s is closed", v.name)
	}
	old := v.pages
	next := PageMap{PageSize: old.PageSize, Size: old.Size, Members: slices.Clone(members)}
	if err := next.validate(); err != nil {
		return err
	}
	added := map[int]*memberFile{}
	file := func(m int) *memberFile {
		if f, ok := v.files[m]; ok {
			return f
		}
		return added[m]
	}
	closeAdded := func() {
		for _, f := range added {
			f.Close()
		}
	}
	for _, m := range members {
		if file(m) != nil {
			continue
		}
		f, err := openMemberFile(volumeFile(dir, m, v.name), old.Size)
		if err != nil {
			closeAdded()
			return err
		}
		added[m] = f
		// An interrupted rebalance may have left this file longer than
		// the volume, if it shrank since: cut the strays past the end,
		// or growing the volume later would bring them back.
		if f.Size() > old.Size {
			if err := f.Resize(old.Size); err != nil {
				closeAdded()
				return err
			}
		}
	}
	buf := make([]byte, old.PageSize)
	var n int64
	for p := range old.Pages() {
		from, to := old.Owner(p), next.Owner(p)
		if from == to {
			continue
		}
		if err := ctx.Err(); err != nil {
			closeAdded()
			return err
		}
		off := p * old.PageSize
		if err := copyPage(file(from), file(to), off, min(old.PageSize, old.Size-off), buf, thick); err != nil {
			closeAdded()
			return fmt.Errorf("copying page %d from member %d to %d: %w", p, from, to, err)
		}
		n++
		moved(n)
	}
	for _, m := range members {
		if err := file(m).Sync(); err != nil {
			closeAdded()
			return err
		}
	}
	if err := commit(); err != nil {
		closeAdded()
		return err
	}
	v.pages = next
	for m, f := range added {
		v.files[m] = f
	}
	v.punchMoved(old, next)
	return nil
}

// punchMoved frees the old copies of the pages that moved. The new
// layout is already durable, so a failure here costs only space.
func (v *Volume) punchMoved(old, next PageMap) {
	touched := map[int]bool{}
	for p := range old.Pages() {
		from := old.Owner(p)
		if from == next.Owner(p) {
			continue
		}
		off := p * old.PageSize
		if f, ok := v.files[from]; ok && f.Unmap(off, min(old.PageSize, old.Size-off)) == nil {
			touched[from] = true
		}
	}
	for m := range touched {
		v.files[m].Sync()
	}
}

// copyPage copies one page between member files. A page of zeroes
// becomes a hole (allocated again for a thick volume), which also clears
// a stray copy an interrupted rebalance may have left there.
func copyPage(src, dst *memberFile, off, length int64, buf []byte, thick bool) error {
	buf = buf[:length]
	got, err := src.ReadAt(buf, off)
	if errors.Is(err, io.EOF) {
		clear(buf[got:])
		err = nil
	}
	if err != nil {
		return err
	}
	defer dst.markDirty()
	if slices.ContainsFunc(buf, func(b byte) bool { return b != 0 }) {
		_, err := dst.WriteAt(buf, off)
		return err
	}
	if err := dst.Unmap(off, length); err != nil {
		return err
	}
	if thick {
		return dst.allocate(off, length)
	}
	return nil
}
