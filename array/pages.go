package array

import "fmt"

// DefaultPageSize is the unit in which a volume's bytes are spread over
// members. Real PS Series groups use 15 MiB pages; 1 MiB keeps the lab's
// volumes small while still making every sizeable I/O cross pages and
// members, which is what a slice-aware host has to get right.
const DefaultPageSize = 1 << 20

// PageMap tells which member holds each page of a volume. Pages go to
// the volume's members round-robin: page i (bytes [i*PageSize,
// (i+1)*PageSize)) belongs to Members[i % len(Members)]. The member list
// is set when the volume is created and changes only when a member joins
// the group, which rebalances the volume (see Volume.Rebalance). The
// management API publishes this for slice-aware hosts.
type PageMap struct {
	PageSize int64 `json:"page_size"`
	Size     int64 `json:"size"`    // the volume's size in bytes
	Members  []int `json:"members"` // member numbers, in round-robin order
}

// Pages is the number of pages, counting a partial last page.
func (m PageMap) Pages() int64 {
	return (m.Size + m.PageSize - 1) / m.PageSize
}

// Owner is the member holding page i.
func (m PageMap) Owner(page int64) int {
	return m.Members[page%int64(len(m.Members))]
}

// OwnerAt is the member holding the byte at off.
func (m PageMap) OwnerAt(off int64) int {
	return m.Owner(off / m.PageSize)
}

// PagesPerMember counts the pages each member holds.
func (m PageMap) PagesPerMember() map[int]int64 {
	out := make(map[int]int64, len(m.Members))
	n, k := m.Pages(), int64(len(m.Members))
	for i, member := range m.Members {
		count := n / k
		if int64(i) < n%k {
			count++
		}
		out[member] += count
	}
	return out
}

// Extent is a byte range of a volume that lies within one page.
type Extent struct {
	Page   int64
	Member int
	Off    int64 // volume offset, which is also the offset in the member's file
	Len    int64
}

// Split cuts [off, off+length) at page boundaries and calls fn for each
// piece in order, stopping at the first error.
func (m PageMap) Split(off, length int64, fn func(Extent) error) error {
	for length > 0 {
		page := off / m.PageSize
		n := min(length, (page+1)*m.PageSize-off)
		if err := fn(Extent{Page: page, Member: m.Owner(page), Off: off, Len: n}); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

// Foreign counts the pages in [off, off+length) that member does not
// hold: the ones it would have to forward.
func (m PageMap) Foreign(member int, off, length int64) int64 {
	if length <= 0 {
		return 0
	}
	first, last := off/m.PageSize, (off+length-1)/m.PageSize
	return last - first + 1 - m.owned(member, first, last)
}

// owned counts the pages in [first, last] that member holds. Round-robin
// repeats every len(Members) pages, so whole rounds are counted at once
// and only the remainder is walked.
func (m PageMap) owned(member int, first, last int64) int64 {
	k := int64(len(m.Members))
	perRound := int64(0)
	for _, x := range m.Members {
		if x == member {
			perRound++
		}
	}
	span := last - first + 1
	count := span / k * perRound
	for p := first + span/k*k; p <= last; p++ {
		if m.Owner(p) == member {
			count++
		}
	}
	return count
}

func (m PageMap) validate() error {
	if m.PageSize <= 0 || m.PageSize%512 != 0 {
		return fmt.Errorf("page size %d is not a positive multiple of 512", m.PageSize)
	}
	if len(m.Members) == 0 {
		return fmt.Errorf("a volume needs at least one member to hold its pages")
	}
	return nil
}
