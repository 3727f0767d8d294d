package mgmt

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/internal/jsonhttp"
)

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	st := s.g.Status()
	out := groupapi.Group{
		Name: st.Name, GroupIP: st.GroupAddr, ManagementAddr: s.g.ManagementAddr(),
		PageSize: st.PageSize, Volumes: len(st.Volumes), Sessions: len(st.Sessions),
		Members: []groupapi.MemberSummary{},
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, groupapi.MemberSummary{Number: m.Number, Name: m.Name, State: string(m.State), Ports: len(m.Ports)})
	}
	jsonhttp.Write(w, http.StatusOK, out)
}

func (s *Server) getMembers(w http.ResponseWriter, r *http.Request) {
	out := []groupapi.Member{}
	for _, m := range s.g.Status().Members {
		gm := groupapi.Member{
			Number: m.Number, Name: m.Name, Serial: m.Serial, State: string(m.State),
			Firmware: groupapi.Firmware, Capacity: m.Capacity, Used: m.Used, Forwarded: m.Forwarded,
			Ports: []groupapi.Port{},
		}
		for _, p := range m.Ports {
			gm.Ports = append(gm.Ports, groupapi.Port{Address: p.Addr, TPGT: p.TPGT, State: p.State, Sessions: p.Sessions})
		}
		out = append(out, gm)
	}
	jsonhttp.Write(w, http.StatusOK, out)
}

func toAPIAccess(l array.AccessList) []groupapi.AccessRecord {
	out := []groupapi.AccessRecord{}
	for _, a := range l {
		rec := groupapi.AccessRecord{Initiator: a.Initiator, CHAPUser: a.CHAPUser}
		if a.Network.IsValid() {
			rec.Network = a.Network.String()
		}
		out = append(out, rec)
	}
	return out
}

func fromAPIAccess(recs []groupapi.AccessRecord) (array.AccessList, error) {
	out := array.AccessList{}
	for i, a := range recs {
		rec := array.AccessRecord{Initiator: a.Initiator, CHAPUser: a.CHAPUser}
		if a.Network != "" {
			p, err := netip.ParsePrefix(a.Network)
			if err != nil {
				return nil, fmt.Errorf("access record %d: network %q is not a CIDR such as 127.0.0.0/8", i+1, a.Network)
			}
			rec.Network = p
		}
		if err := rec.Validate(); err != nil {
			return nil, fmt.Errorf("access record %d: %w", i+1, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// volumes builds the API view of every volume, in configuration order.
func (s *Server) volumes() []groupapi.Volume {
	st := s.g.Status()
	out := []groupapi.Volume{}
	for _, vc := range s.g.Config().Volumes {
		v := groupapi.Volume{
			Name: vc.Name, IQN: vc.IQN, Serial: vc.Serial, Size: vc.Size, Thin: vc.Thin,
			Members: vc.Members, CHAPUser: vc.CHAPUser, Access: toAPIAccess(vc.Access),
			PagesPerMember: map[string]int64{},
		}
		if i := slices.IndexFunc(st.Volumes, func(vs array.VolumeStatus) bool { return vs.Name == vc.Name }); i >= 0 {
			vs := st.Volumes[i]
			v.Allocated, v.Forwarded, v.Sessions = vs.Allocated, vs.Forwarded, vs.Sessions
			for m, n := range vs.PagesPerMember {
				v.PagesPerMember[strconv.Itoa(m)] = n
			}
		}
		out = append(out, v)
	}
	return out
}

// volume answers 400 for a bad name and 404 for a missing volume.
func (s *Server) volume(w http.ResponseWriter, r *http.Request) (groupapi.Volume, bool) {
	name := r.PathValue("name")
	if !array.ValidName(name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("volume name %q: use 1 to 63 lower-case letters, digits, '.' or '-'", name))
		return groupapi.Volume{}, false
	}
	for _, v := range s.volumes() {
		if v.Name == name {
			return v, true
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no volume %q in group %s", name, s.g.Name()))
	return groupapi.Volume{}, false
}

func (s *Server) getVolumes(w http.ResponseWriter, r *http.Request) {
	jsonhttp.Write(w, http.StatusOK, s.volumes())
}

func (s *Server) getVolume(w http.ResponseWriter, r *http.Request) {
	if v, ok := s.volume(w, r); ok {
		jsonhttp.Write(w, http.StatusOK, v)
	}
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) {
	var req groupapi.CreateVolume
	if !decode(w, r, &req) {
		return
	}
	if !array.ValidName(req.Name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("volume name %q: use 1 to 63 lower-case letters, digits, '.' or '-'", req.Name))
		return
	}
	if msg := sizeError(req.Size); msg != "" {
		writeError(w, http.StatusBadRequest, "volume "+req.Name+": "+msg)
		return
	}
	var acl array.AccessList
	if req.Access != nil {
		var err error
		if acl, err = fromAPIAccess(req.Access); err != nil {
			writeError(w, http.StatusBadRequest, "volume "+req.Name+": "+err.Error())
			return
		}
		if len(acl) == 0 {
			acl = nil // the default: the volume's own CHAP user
		}
	}
	if req.CHAPSecret != "" {
		if err := array.CheckCHAPSecret(req.CHAPSecret); err != nil {
			writeError(w, http.StatusBadRequest, "volume "+req.Name+": "+err.Error())
			return
		}
	}
	s.change.Lock()
	defer s.change.Unlock()
	if slices.ContainsFunc(s.g.Config().Volumes, func(v array.VolumeConfig) bool { return v.Name == req.Name }) {
		writeError(w, http.StatusConflict, fmt.Sprintf("volume %q already exists; pick another name", req.Name))
		return
	}
	vc, err := s.g.CreateVolume(array.VolumeSpec{Name: req.Name, Size: req.Size, Thick: req.Thick, Access: acl, CHAPSecret: req.CHAPSecret})
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	s.event("volume-created", vc.Name, fmt.Sprintf("created %s, %d bytes, on members %v", vc.IQN, vc.Size, vc.Members), r)
	v, _ := s.volumeByName(vc.Name)
	jsonhttp.Write(w, http.StatusCreated, v)
}

func (s *Server) volumeByName(name string) (groupapi.Volume, bool) {
	for _, v := range s.volumes() {
		if v.Name == name {
			return v, true
		}
	}
	return groupapi.Volume{}, false
}

func (s *Server) resizeVolume(w http.ResponseWriter, r *http.Request) {
	s.change.Lock()
	defer s.change.Unlock()
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	var req groupapi.ResizeVolume
	if !decode(w, r, &req) {
		return
	}
	if msg := sizeError(req.Size); msg != "" {
		writeError(w, http.StatusBadRequest, "volume "+v.Name+": "+msg)
		return
	}
	if req.Size < v.Size && !req.Shrink {
		writeError(w, http.StatusConflict, fmt.Sprintf("volume %s: %d bytes is smaller than its %d; shrinking discards data, so send \"shrink\": true", v.Name, req.Size, v.Size))
		return
	}
	if err := s.g.ResizeVolume(v.Name, req.Size, req.Shrink); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	s.event("volume-resized", v.Name, fmt.Sprintf("resized from %d to %d bytes", v.Size, req.Size), r)
	nv, _ := s.volumeByName(v.Name)
	jsonhttp.Write(w, http.StatusOK, nv)
}

// deleteVolume deletes a volume with its snapshots; one with sessions
// is refused with 409 unless ?force=true.
func (s *Server) deleteVolume(w http.ResponseWriter, r *http.Request) {
	s.change.Lock()
	defer s.change.Unlock()
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	force, err := parseForce(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.g.DeleteVolume(v.Name, force); err != nil {
		snapshotFailed(w, err)
		return
	}
	s.event("volume-deleted", v.Name, fmt.Sprintf("deleted %s with its snapshots (force=%v)", v.IQN, force), r)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getAccess(w http.ResponseWriter, r *http.Request) {
	if v, ok := s.volume(w, r); ok {
		jsonhttp.Write(w, http.StatusOK, groupapi.Access{Records: v.Access})
	}
}

func (s *Server) setAccess(w http.ResponseWriter, r *http.Request) {
	s.change.Lock()
	defer s.change.Unlock()
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	var req groupapi.Access
	if !decode(w, r, &req) {
		return
	}
	if len(req.Records) == 0 {
		writeError(w, http.StatusBadRequest, "volume "+v.Name+": give at least one access record; a volume without records takes no logins")
		return
	}
	acl, err := fromAPIAccess(req.Records)
	if err != nil {
		writeError(w, http.StatusBadRequest, "volume "+v.Name+": "+err.Error())
		return
	}
	if err := s.g.SetAccess(v.Name, acl); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	s.event("access-changed", v.Name, fmt.Sprintf("%d access records", len(acl)), r)
	nv, _ := s.volumeByName(v.Name)
	jsonhttp.Write(w, http.StatusOK, groupapi.Access{Records: nv.Access})
}

func (s *Server) getPageMap(w http.ResponseWriter, r *http.Request) {
	v, ok := s.volume(w, r)
	if !ok {
		return
	}
	pm, err := s.g.PageMap(v.Name)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	out := groupapi.PageMap{Volume: v.Name, PageSize: pm.PageSize, Size: pm.Size, Pages: pm.Pages(), Members: pm.Members, Ports: map[int][]string{}}
	for _, n := range pm.Members {
		m, err := s.g.Member(n)
		if err != nil {
			continue
		}
		ports := []string{}
		for _, p := range m.Ports() {
			ports = append(ports, p.Addr)
		}
		out.Ports[n] = ports
	}
	jsonhttp.Write(w, http.StatusOK, out)
}

func (s *Server) getStats(w http.ResponseWriter, r *http.Request) {
	st := s.g.Status()
	out := groupapi.Stats{Time: time.Now().UTC(), Ports: []groupapi.PortStats{}, Members: []groupapi.MemberStats{}, Volumes: []groupapi.VolumeStats{}}
	byPortal, byVolume := map[string]uint64{}, map[string]uint64{}
	for _, ss := range st.Sessions {
		byPortal[ss.Portal] += ss.Commands
		if ss.Volume != "" {
			byVolume[ss.Volume] += ss.Commands
		}
	}
	var portRates, volRates map[string]groupapi.Rates
	if s.sampler != nil {
		portRates, volRates = s.sampler.rates()
	}
	gp := st.GroupPort
	out.Ports = append(out.Ports, groupapi.PortStats{Address: gp.Addr, Member: 0, State: gp.State, Sessions: gp.Sessions, Commands: byPortal[gp.Addr], Rates: portRates[gp.Addr]})
	for _, m := range st.Members {
		out.Members = append(out.Members, groupapi.MemberStats{Number: m.Number, Forwarded: m.Forwarded})
		for _, p := range m.Ports {
			out.Ports = append(out.Ports, groupapi.PortStats{Address: p.Addr, Member: m.Number, State: p.State, Sessions: p.Sessions, Commands: byPortal[p.Addr], Rates: portRates[p.Addr]})
		}
	}
	for _, v := range st.Volumes {
		out.Volumes = append(out.Volumes, groupapi.VolumeStats{Name: v.Name, Sessions: v.Sessions, Commands: byVolume[v.Name], Forwarded: v.Forwarded, Allocated: v.Allocated, Rates: volRates[v.IQN]})
	}
	jsonhttp.Write(w, http.StatusOK, out)
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := append([]groupapi.Event{}, s.events...)
	s.mu.Unlock()
	jsonhttp.Write(w, http.StatusOK, out)
}
