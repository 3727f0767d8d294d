package initiator

import (
	"sync"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/hitkit/hitkit/scsi"
)

// Command is one SCSI command. ReadBuf receives Data-In; WriteBuf is sent
// as Data-Out. A command has at most one of them.
type Command struct {
	LUN      uint64 // the 8-byte LUN field (scsi.EncodeLUN)
	CDB      scsi.CDB
	Attr     iscsi.TaskAttr
	ReadBuf  []byte
	WriteBuf []byte
}

// Result is how the target ended a command.
type Result struct {
	Status   uint8  // SCSI status
	Response uint8  // iSCSI response: 0 means the target completed the command
	Sense    []byte // sense data, with CHECK CONDITION
	// Residual is the part of the expected transfer that did not happen
	// (underflow). Overflow reports a target that had more to send.
	Residual int
	Overflow bool
}

type taskKind uint8

const (
	kindSCSI taskKind = iota
	kindRequest
)

type wake uint8

const (
	wakeDone  wake = iota + 1 // the target answered
	wakeRetry                 // the connection it was sent on is gone
)

// task is one outstanding exchange, keyed by its initiator task tag.
//
// Ownership: Session.mu guards conn and the task table. The fields below
// the line belong to the reader goroutine of conn while the task is sent on
// it; the caller reads them after receiving wakeDone.
type task struct {
	itt   uint32
	kind  taskKind
	cmd   Command
	cmdSN uint32
	conn  *conn
	wake  chan wake

	// Data-Out goroutines answering R2Ts; waited for before reuse.
	dataOut sync.WaitGroup

	nextDataSN uint32
	result     Result
	err        error
	resp       iscsi.BHS // for kindRequest: the answer's header
	respData   []byte    // and its data segment
}

var taskPool = sync.Pool{New: func() any { return &task{wake: make(chan wake, 1)} }}

func getTask(kind taskKind, cmd Command) *task {
	t := taskPool.Get().(*task)
	t.kind, t.cmd = kind, cmd
	return t
}

func putTask(t *task) {
	t.dataOut.Wait()
	select {
	case <-t.wake:
	default:
	}
	t.itt, t.cmd, t.cmdSN, t.conn = 0, Command{}, 0, nil
	t.resp, t.respData = iscsi.BHS{}, nil
	t.resetProgress()
	taskPool.Put(t)
}

// resetProgress forgets what arrived for an earlier send of the task.
func (t *task) resetProgress() {
	t.nextDataSN = 0
	t.result = Result{}
	t.err = nil
}
