package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/hitkit/hitkit/array/target"
	"github.com/hitkit/hitkit/scsi"
)

// TestConcurrentIO runs writers, readers, UNMAP, mode changes and
// reservation queries at once (run it with -race), and uses COMPARE AND
// WRITE as a lock-free counter: if it were not atomic against the other
// writers, increments would be lost.
func TestConcurrentIO(t *testing.T) {
	d := newTestDisk(t, 8*mib, Options{ThinProvisioning: true, WriteCache: true})
	const (
		workers    = 8
		rounds     = 50
		counterLBA = 0
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers*4)
	fail := func(format string, args ...any) { errs <- &testError{format, args} }

	for w := range workers {
		n := target.Nexus{InitiatorName: "iqn.test:w", ISID: [6]byte{byte(w)}}
		wg.Add(1)
		go func() { // private region: write, read back, unmap, read zeroes
			defer wg.Done()
			lba := uint32(1024 + w*64)
			for i := range rounds {
				data := pattern(16*512, byte(w*rounds+i))
				if r := d.runPastAttention(n, cdb10(scsi.OpWrite10, 0, lba, 16), data); r.Status != 0 {
					fail("write: %v", scsi.NewError(r.Status, r.Sense))
					return
				}
				if r := d.runPastAttention(n, cdb10(scsi.OpRead10, 0, lba, 16), nil); !bytes.Equal(r.DataIn, data) {
					fail("worker %d round %d: read back differs", w, i)
					return
				}
				p := scsi.UnmapParams([]scsi.Extent{{LBA: uint64(lba), Blocks: 16}})
				d.runPastAttention(n, bytesOf(scsi.Unmap(uint16(len(p)))), p)
				if r := d.runPastAttention(n, cdb10(scsi.OpRead10, 0, lba, 16), nil); !allZero(r.DataIn) {
					fail("worker %d: unmapped blocks not zero", w)
					return
				}
			}
		}()
		wg.Add(1)
		go func() { // shared counter in block 0, advanced by COMPARE AND WRITE
			defer wg.Done()
			for range rounds {
				for {
					cur := d.runPastAttention(n, cdb10(scsi.OpRead10, 0, counterLBA, 1), nil).DataIn
					next := bytes.Clone(cur)
					binary.BigEndian.PutUint64(next, binary.BigEndian.Uint64(cur)+1)
					r := d.runPastAttention(n, compareAndWriteCDB(counterLBA, 1, 0), append(cur, next...))
					if r.Status == scsi.StatusGood {
						break
					}
					if s, _ := scsi.ParseSense(r.Sense); s.Key != scsi.KeyMiscompare {
						fail("COMPARE AND WRITE: %v", s)
						return
					}
				}
			}
		}()
		wg.Add(1)
		go func() { // blind writers over the rest of the counter's stripe
			defer wg.Done()
			for i := range rounds {
				d.runPastAttention(n, cdb10(scsi.OpWrite10, 0, uint32(1+w), 1), pattern(512, byte(i)))
				d.runPastAttention(n, inquiryCDB(true, 0x83, 255), nil)
				d.runPastAttention(n, prInCDB(prInReadKeys, 1024), nil)
				d.runPastAttention(n, modeSense6(false, pcCurrent, pageAll, 0, 255), nil)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range rounds {
			d.Reset()
			d.Stats()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := binary.BigEndian.Uint64(d.good(cdb10(scsi.OpRead10, 0, counterLBA, 1), nil))
	if got != workers*rounds {
		t.Fatalf("counter %d, want %d: COMPARE AND WRITE lost updates", got, workers*rounds)
	}
}

type testError struct {
	format string
	args   []any
}

func (e *testError) Error() string { return fmt.Sprintf(e.format, e.args...) }

// runPastAttention retries a command that met a unit attention, as an
// initiator does.
func (d *testDisk) runPastAttention(n target.Nexus, cdb, data []byte) target.Response {
	for {
		r := d.run(n, cdb, data)
		if s, err := scsi.ParseSense(r.Sense); err != nil || s.Key != scsi.KeyUnitAttention {
			return r
		}
	}
}
