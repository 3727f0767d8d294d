package target

import (
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// tmfWait bounds how long a task management function waits for the
// tasks it aborted to leave their units.
const tmfWait = 30 * time.Second

// handleTMF runs a task management function. Aborted tasks get no
// response of their own; the TMF response goes out once they are gone,
// from a goroutine of its own so that the reader keeps reading.
func (c *conn) handleTMF(h *iscsi.BHS) error {
	var r iscsi.TaskMgmtRequest
	r.Unmarshal(h)
	if err := c.fr.DiscardData(h); err != nil {
		return err
	}
	s := c.sess
	if s.discovery() {
		c.reject(h, iscsi.RejectProtocolError)
		return nil
	}
	if !s.admit(r.CmdSN, r.Immediate, false) {
		return nil
	}
	c.log.WithFields(logrus.Fields{"itt": r.InitiatorTaskTag, "function": r.Function, "ref_itt": r.ReferencedTaskTag}).
		Info("task management")
	victims, resets, response := c.taskManagement(&r)
	c.tasks.Add(1)
	go func() {
		defer c.tasks.Done()
		waitGone(victims, c.done)
		for _, u := range resets {
			if rs, ok := u.(Resetter); ok {
				rs.Reset()
			}
		}
		c.delay()
		c.write(&iscsi.TaskMgmtResponse{Response: response, InitiatorTaskTag: r.InitiatorTaskTag}, nil, true)
	}()
	return nil
}

// taskManagement aborts what r asks for, and returns the aborted tasks,
// the units to reset once they are gone, and the response code.
func (c *conn) taskManagement(r *iscsi.TaskMgmtRequest) ([]*task, []Unit, uint8) {
	s := c.sess
	switch r.Function {
	case iscsi.TMFAbortTask:
		victims := s.abortTasks(func(t *task) bool { return t.itt == r.ReferencedTaskTag })
		if len(victims) == 0 {
			return nil, nil, iscsi.TMFTaskNotExist
		}
		return victims, nil, iscsi.TMFComplete
	case iscsi.TMFAbortTaskSet, iscsi.TMFClearTaskSet:
		return s.abortTasks(func(t *task) bool { return t.lunField == r.LUN }), nil, iscsi.TMFComplete
	case iscsi.TMFLogicalUnitReset:
		lun, ok := decodeLUN(r.LUN)
		u, exists := s.target.Unit(lun)
		if !ok || !exists {
			return nil, nil, iscsi.TMFLUNNotExist
		}
		victims := c.srv.abortTargetTasks(s.target, func(t *task) bool { return t.lunValid && t.lun == lun })
		return victims, []Unit{u}, iscsi.TMFComplete
	case iscsi.TMFTargetWarmReset:
		victims := c.srv.abortTargetTasks(s.target, func(*task) bool { return true })
		return victims, s.target.units(), iscsi.TMFComplete
	case iscsi.TMFTaskReassign:
		return nil, nil, iscsi.TMFReassignNotSupported
	}
	return nil, nil, iscsi.TMFNotSupported
}

// abortTasks marks the session's matching tasks aborted and cancels them.
// A task that is already sending its response is left to finish: for
// ABORT TASK it no longer exists.
func (s *session) abortTasks(match func(*task) bool) []*task {
	s.mu.Lock()
	var victims, gathering []*task
	for _, t := range s.tasks {
		if t.aborted || t.state == taskResponding || !match(t) {
			continue
		}
		t.aborted = true
		victims = append(victims, t)
		if t.state == taskGathering {
			gathering = append(gathering, t)
		}
	}
	s.mu.Unlock()
	for _, t := range victims {
		t.cancel()
	}
	for _, t := range gathering {
		// Never reached a unit: it is gone now. Its buffer is left to
		// the garbage collector, as the reader may still be filling it.
		s.forget(t)
	}
	return victims
}

// abortTargetTasks aborts matching tasks in every session of target t.
func (srv *Server) abortTargetTasks(t *Target, match func(*task) bool) []*task {
	srv.mu.Lock()
	var sessions []*session
	for _, ss := range srv.sessions {
		if ss.target == t {
			sessions = append(sessions, ss)
		}
	}
	srv.mu.Unlock()
	var victims []*task
	for _, ss := range sessions {
		victims = append(victims, ss.abortTasks(match)...)
	}
	return victims
}

// waitGone waits for tasks to be forgotten, within tmfWait.
func waitGone(tasks []*task, done <-chan struct{}) {
	deadline := time.NewTimer(tmfWait)
	defer deadline.Stop()
	for _, t := range tasks {
		select {
		case <-t.done:
		case <-done:
			return
		case <-deadline.C:
			return
		}
	}
}
