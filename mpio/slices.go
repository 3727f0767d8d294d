package mpio

import (
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/scsi"
)

// PageMap says which group member holds each page of the volume, as a
// group's management API publishes it (groupapi.PageMap). With it, a
// Device sends each READ and WRITE to a path logged in at a port of the
// member that holds the command's first block, so that the group need not
// forward it between members.
type PageMap struct {
	PageSize int64            // bytes per page
	Members  []int            // member numbers: page i belongs to Members[i % len(Members)]
	Ports    map[int][]string // member number -> its iSCSI portals, host:port
}

// memberAt is the member holding the byte at off, or 0 when the map says
// nothing about it.
func (m *PageMap) memberAt(off int64) int {
	if m == nil || m.PageSize <= 0 || len(m.Members) == 0 || off < 0 {
		return 0
	}
	return m.Members[(off/m.PageSize)%int64(len(m.Members))]
}

// memberOf is the member that owns portal, or 0 when none does.
func (m *PageMap) memberOf(portal string) int {
	if m == nil {
		return 0
	}
	for member, ports := range m.Ports {
		for _, p := range ports {
			if p == portal {
				return member
			}
		}
	}
	return 0
}

// commandLBA is the logical block address of a READ or WRITE CDB (10-,
// 12- and 16-byte forms); other commands have none to route by.
func commandLBA(cdb []byte) (lba uint64, ok bool) {
	if len(cdb) == 0 {
		return 0, false
	}
	switch cdb[0] {
	case scsi.OpRead10, scsi.OpWrite10, scsi.OpRead12, scsi.OpWrite12, scsi.OpRead16, scsi.OpWrite16:
		lba, _, ok = scsi.CDBExtent(cdb)
		return lba, ok
	}
	return 0, false
}

// ownerOf is the member holding the first block of cmd, or 0 when cmd is
// not a READ or WRITE, or the device has no page map.
func (s *selector) ownerOf(cmd initiator.Command) int {
	bs := s.blockSize.Load()
	if s.pages == nil || bs <= 0 {
		return 0
	}
	lba, ok := commandLBA(cmd.CDB.Bytes())
	if !ok || lba > uint64(1<<62)/uint64(bs) {
		return 0
	}
	return s.pages.memberAt(int64(lba) * bs)
}

// pickFor returns the path for cmd: among the usable paths logged in at
// the member that holds cmd's blocks, by the policy, when there are any;
// otherwise by the policy over all paths.
func (s *selector) pickFor(paths []*path, cmd initiator.Command) *path {
	if owner := s.ownerOf(cmd); owner != 0 {
		var buf [16]*path
		local := buf[:0]
		for _, p := range paths {
			if int(p.member.Load()) == owner {
				local = append(local, p)
			}
		}
		if len(local) > 0 {
			if p := s.pickAmong(local, false); p != nil {
				return p
			}
		}
	}
	return s.pick(paths)
}
