package mgmt

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/internal/jsonhttp"
)

// maxDescription bounds a snapshot's description.
const maxDescription = 1024

// snapshotRoutes adds the snapshot endpoints, and records what the
// snapshots do by themselves (the reserve filling up) as events.
func (s *Server) snapshotRoutes(auth func(string, http.HandlerFunc)) {
	auth("GET /api/v1/volumes/{name}/snapshots", s.getSnapshots)
	auth("POST /api/v1/volumes/{name}/snapshots", s.createSnapshot)
	auth("GET /api/v1/volumes/{name}/snapshots/{snap}", s.getSnapshot)
	auth("PATCH /api/v1/volumes/{name}/snapshots/{snap}", s.setSnapshot)
	auth("DELETE /api/v1/volumes/{name}/snapshots/{snap}", s.deleteSnapshot)
	auth("GET /api/v1/volumes/{name}/snapshot-policy", s.getSnapshotPolicy)
	auth("PUT /api/v1/volumes/{name}/snapshot-policy", s.setSnapshotPolicy)
	auth("GET /api/v1/volumes/{name}/changes", s.getChanges)
	auth("POST /api/v1/volumes/{name}/restore", s.restoreVolume)
	if s.g != nil {
		s.g.OnSnapshotEvent(s.snapshotEvent)
	}
}

// snapshotEvent records an event that no request caused.
func (s *Server) snapshotEvent(ev array.SnapshotEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.events = append(s.events, groupapi.Event{Seq: s.seq, Time: time.Now().UTC(), Kind: ev.Kind, Volume: ev.Volume, Detail: ev.Detail})
	if n := len(s.events) - s.MaxEvents; n > 0 {
		s.events = append([]groupapi.Event(nil), s.events[n:]...)
	}
}

func toAPISnapshot(si array.SnapshotInfo) groupapi.Snapshot {
	return groupapi.Snapshot{
		Name: si.Name, Volume: si.Volume, Created: si.Created, Size: si.Size, Reserve: si.Reserve,
		Online: si.Online, IQN: si.IQN, ReadOnly: !si.ReadWrite, Description: si.Description,
	}
}

// snapshotFailed answers an error from the group with the status that
// fits it.
func snapshotFailed(w http.ResponseWriter, err error) {
	code := http.StatusUnprocessableEntity
	switch {
	case errors.Is(err, array.ErrReadWriteOffline), errors.Is(err, array.ErrSnapshotOrder):
		code = http.StatusBadRequest
	case errors.Is(err, array.ErrSnapshotNotFound):
		code = http.StatusNotFound
	case errors.Is(err, array.ErrSnapshotExists), errors.Is(err, array.ErrVolumeBusy), errors.Is(err, array.ErrNoReserve):
		code = http.StatusConflict
	case errors.Is(err, array.ErrReserveFull):
		code = http.StatusInsufficientStorage
	}
	writeError(w, code, err.Error())
}

// snapshot answers 400 for a bad snapshot name and 404 for a missing
// snapshot, after s.volume's checks of the volume.
func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) (groupapi.Volume, array.SnapshotInfo, bool) {
	v, ok := s.volume(w, r)
	if !ok {
		return v, array.SnapshotInfo{}, false
	}
	name := r.PathValue("snap")
	if err := array.ValidSnapshotName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return v, array.SnapshotInfo{}, false
	}
	si, err := s.g.Snapshot(v.Name, name)
	if err != nil {
		snapshotFailed(w, err)
		return v, array.SnapshotInfo{}, false
	}
	return v, si, true
}

func (s *Server) getSnapshots(w http.ResponseWriter, r *http.Request) {
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	list, err := s.g.Snapshots(v.Name)
	if err != nil {
		snapshotFailed(w, err)
		return
	}
	out := []groupapi.Snapshot{}
	for _, si := range list {
		out = append(out, toAPISnapshot(si))
	}
	jsonhttp.Write(w, http.StatusOK, out)
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	if _, si, ok := s.snapshot(w, r); ok {
		jsonhttp.Write(w, http.StatusOK, toAPISnapshot(si))
	}
}

func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) {
	s.change.Lock()
	defer s.change.Unlock()
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	var req groupapi.CreateSnapshot
	if !decode(w, r, &req) {
		return
	}
	if req.Name != "" {
		if err := array.ValidSnapshotName(req.Name); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if len(req.Description) > maxDescription {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("description is %d bytes; keep it to %d", len(req.Description), maxDescription))
		return
	}
	si, err := s.g.CreateSnapshot(v.Name, req.Name, req.Description)
	if err != nil {
		snapshotFailed(w, err)
		return
	}
	s.event("snapshot-created", v.Name, fmt.Sprintf("created snapshot %s (%d bytes)", si.Name, si.Size), r)
	jsonhttp.Write(w, http.StatusCreated, toAPISnapshot(si))
}

func (s *Server) setSnapshot(w http.ResponseWriter, r *http.Request) {
	s.change.Lock()
	defer s.change.Unlock()
	v, cur, ok := s.snapshot(w, r)
	if !ok {
		return
	}
	var req groupapi.SetSnapshot
	if !decode(w, r, &req) {
		return
	}
	if req.Online == nil && req.ReadWrite == nil {
		writeError(w, http.StatusBadRequest, `nothing to change: send "online" and/or "read_write"`)
		return
	}
	si, err := s.g.SetSnapshot(v.Name, cur.Name, req.Online, req.ReadWrite)
	if err != nil {
		snapshotFailed(w, err)
		return
	}
	mode := "read-only"
	if si.ReadWrite {
		mode = "read-write"
	}
	switch {
	case si.Online && !cur.Online:
		s.event("snapshot-online", v.Name, fmt.Sprintf("snapshot %s online %s as %s", si.Name, mode, si.IQN), r)
	case !si.Online && cur.Online:
		s.event("snapshot-offline", v.Name, fmt.Sprintf("snapshot %s offline; its sessions were logged out", si.Name), r)
	case si.ReadWrite != cur.ReadWrite:
		s.event("snapshot-online", v.Name, fmt.Sprintf("snapshot %s now %s", si.Name, mode), r)
	}
	jsonhttp.Write(w, http.StatusOK, toAPISnapshot(si))
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	s.change.Lock()
	defer s.change.Unlock()
	v, cur, ok := s.snapshot(w, r)
	if !ok {
		return
	}
	if err := s.g.DeleteSnapshot(v.Name, cur.Name); err != nil {
		snapshotFailed(w, err)
		return
	}
	s.event("snapshot-deleted", v.Name, fmt.Sprintf("deleted snapshot %s", cur.Name), r)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) policy(volume string) (groupapi.SnapshotPolicy, error) {
	p, err := s.g.SnapshotPolicy(volume)
	return groupapi.SnapshotPolicy{ReservePercent: p.ReservePercent, WhenFull: p.WhenFull, ReserveUsed: p.ReserveUsed}, err
}

func (s *Server) getSnapshotPolicy(w http.ResponseWriter, r *http.Request) {
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	p, err := s.policy(v.Name)
	if err != nil {
		snapshotFailed(w, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, p)
}

func (s *Server) setSnapshotPolicy(w http.ResponseWriter, r *http.Request) {
	s.change.Lock()
	defer s.change.Unlock()
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	var req groupapi.SnapshotPolicy
	if !decode(w, r, &req) {
		return
	}
	if req.ReservePercent < 0 || req.ReservePercent > array.MaxSnapshotReserve {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reserve_percent %d: give 0 to %d", req.ReservePercent, array.MaxSnapshotReserve))
		return
	}
	if req.WhenFull != groupapi.ReserveDeleteOldest && req.WhenFull != groupapi.ReserveRefuse {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("when_full %q: use %q or %q", req.WhenFull, groupapi.ReserveDeleteOldest, groupapi.ReserveRefuse))
		return
	}
	if err := s.g.SetSnapshotPolicy(v.Name, req.ReservePercent, req.WhenFull); err != nil {
		snapshotFailed(w, err)
		return
	}
	s.event("snapshot-policy-changed", v.Name, fmt.Sprintf("snapshot reserve %d%%, when full: %s", req.ReservePercent, req.WhenFull), r)
	p, err := s.policy(v.Name)
	if err != nil {
		snapshotFailed(w, err)
		return
	}
	jsonhttp.Write(w, http.StatusOK, p)
}

func (s *Server) getChanges(w http.ResponseWriter, r *http.Request) {
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	if from == "" {
		writeError(w, http.StatusBadRequest, "give the older snapshot as ?from=SNAP (and the newer as &to=SNAP, or none for the live volume)")
		return
	}
	for _, n := range []string{from, to} {
		if n == "" {
			continue
		}
		if err := array.ValidSnapshotName(n); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	ranges, size, err := s.g.ChangedBlocks(v.Name, from, to)
	if err != nil {
		snapshotFailed(w, err)
		return
	}
	out := groupapi.ChangedBlocks{Volume: v.Name, From: from, To: to, Size: size, Granularity: array.SnapshotChunk, Extents: []groupapi.Extent{}}
	for _, e := range ranges {
		out.Extents = append(out.Extents, groupapi.Extent{Offset: e.Offset, Length: e.Length})
	}
	jsonhttp.Write(w, http.StatusOK, out)
}

func (s *Server) restoreVolume(w http.ResponseWriter, r *http.Request) {
	s.change.Lock()
	defer s.change.Unlock()
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	var req groupapi.RestoreVolume
	if !decode(w, r, &req) {
		return
	}
	if req.Snapshot == "" {
		writeError(w, http.StatusBadRequest, `give the snapshot to restore from as "snapshot"`)
		return
	}
	if err := array.ValidSnapshotName(req.Snapshot); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.g.RestoreVolume(v.Name, req.Snapshot); err != nil {
		snapshotFailed(w, err)
		return
	}
	s.event("volume-restored", v.Name, fmt.Sprintf("restored from snapshot %s", req.Snapshot), r)
	nv, _ := s.volumeByName(v.Name)
	jsonhttp.Write(w, http.StatusOK, nv)
}

// parseForce reads ?force=: absent, true or false.
func parseForce(r *http.Request) (bool, error) {
	f := r.URL.Query().Get("force")
	if f == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(f)
	if err != nil {
		return false, fmt.Errorf("force=%q: use true or false", f)
	}
	return b, nil
}
