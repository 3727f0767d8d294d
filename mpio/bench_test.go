package mpio

import (
	"context"
	"testing"

	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/scsi"
)

// BenchmarkSelect is the selector's cost per command, from many goroutines
// at once, over four paths.
func BenchmarkSelect(b *testing.B) {
	for _, policy := range []Policy{PolicyLQD, PolicyRoundRobin, PolicyFailover} {
		b.Run(string(policy), func(b *testing.B) {
			ps := fakePaths(4)
			s := &selector{policy: policy}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p := s.pick(ps)
					p.outstanding.Add(1)
					p.outstanding.Add(-1)
				}
			})
		})
	}
}

// BenchmarkExecute compares TEST UNIT READY sent on one session directly
// with the same command through a Device over four sessions: the
// difference is what multipathing costs per command.
func BenchmarkExecute(b *testing.B) {
	d := openDevice(b, labConfig(b))
	cmd := initiator.Command{LUN: scsi.EncodeLUN(0), CDB: scsi.TestUnitReady()}
	ctx := context.Background()
	bench := func(exec initiator.Executor) func(*testing.B) {
		return func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := exec.Execute(ctx, cmd); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
	}
	b.Run("session", bench(d.paths[0].sess.Load()))
	b.Run("device", bench(d))
}
