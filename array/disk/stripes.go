package disk

import "sync"

// stripeLocks make COMPARE AND WRITE atomic without a lock that every
// I/O shares. The byte space is cut into 1 MiB stripes hashed onto 64
// locks; I/O takes the locks of its stripes shared, COMPARE AND WRITE
// takes them exclusive. Locks are always taken in ascending index order,
// so no two commands can deadlock.
type stripeLocks [numStripes]paddedRWMutex

const (
	stripeShift = 20
	numStripes  = 64
)

// paddedRWMutex keeps each lock on its own cache line.
type paddedRWMutex struct {
	sync.RWMutex
	_ [40]byte
}

// stripeSet is a bit per lock.
type stripeSet uint64

func stripesOf(off, length int64) stripeSet {
	if length <= 0 {
		return 0
	}
	first, last := off>>stripeShift, (off+length-1)>>stripeShift
	if last-first+1 >= numStripes {
		return ^stripeSet(0)
	}
	var s stripeSet
	for i := first; i <= last; i++ {
		s |= 1 << (i % numStripes)
	}
	return s
}

func (l *stripeLocks) rlock(s stripeSet) {
	for i := range numStripes {
		if s&(1<<i) != 0 {
			l[i].RLock()
		}
	}
}

func (l *stripeLocks) runlock(s stripeSet) {
	for i := range numStripes {
		if s&(1<<i) != 0 {
			l[i].RUnlock()
		}
	}
}

func (l *stripeLocks) lock(s stripeSet) {
	for i := range numStripes {
		if s&(1<<i) != 0 {
			l[i].Lock()
		}
	}
}

func (l *stripeLocks) unlock(s stripeSet) {
	for i := range numStripes {
		if s&(1<<i) != 0 {
			l[i].Unlock()
		}
	}
}
