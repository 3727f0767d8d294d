package initiator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/internal/peer"
	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// Interop tests: hitkit's initiator against Debian's tgtd and istgt.

type starter func(testing.TB, peer.Options) *peer.Target

var targets = []struct {
	name  string
	start starter
}{
	{"tgtd", peer.StartTgtd},
	{"istgt", peer.StartIstgt},
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	if lv, err := logrus.ParseLevel(os.Getenv("HITKIT_TEST_LOG")); err == nil {
		l.SetLevel(lv)
	}
	return logrus.NewEntry(l)
}

func config(tg *peer.Target) initiator.Config {
	return initiator.Config{Portal: tg.Portal(), TargetName: tg.IQN, Log: quietLog()}
}

func dial(t *testing.T, cfg initiator.Config) *initiator.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t *testing.T, s *initiator.Session, lun int) *initiator.LogicalUnit {
	t.Helper()
	lu, err := initiator.OpenLogicalUnit(context.Background(), s, lun)
	if err != nil {
		t.Fatal(err)
	}
	return lu
}

func TestDiscovery(t *testing.T) {
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.start(t, peer.Options{})
			found, err := initiator.Discover(context.Background(), initiator.Config{Portal: tg.Portal(), Log: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range found {
				if d.Name == tg.IQN {
					if len(d.Portals) == 0 || d.Portals[0].Address != tg.Portal() {
						t.Fatalf("portals of %s: %+v, want %s", d.Name, d.Portals, tg.Portal())
					}
					return
				}
			}
			t.Fatalf("SendTargets did not list %s: %+v", tg.IQN, found)
		})
	}
}

// TestCHAP logs in with one-way and mutual CHAP. tgt reads CHAP_A=7 as
// SHA-1 rather than SHA-256, and istgt knows MD5 only, so both peers are
// offered MD5; the stronger algorithms are tested against the lab target.
func TestCHAP(t *testing.T) {
	const user, secret = "hitkit-user", "initiator-secret-1"
	const muser, msecret = "target-user", "target-secret-22"
	chapConfig := func(tg *peer.Target) initiator.Config {
		cfg := config(tg)
		cfg.CHAPUser, cfg.CHAPSecret = user, []byte(secret)
		cfg.CHAPAlgorithms = []iscsi.ChapAlgorithm{iscsi.ChapMD5}
		return cfg
	}
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			oneWay := tc.start(t, peer.Options{CHAPUser: user, CHAPSecret: secret})
			mutual := tc.start(t, peer.Options{CHAPUser: user, CHAPSecret: secret, MutualUser: muser, MutualSecret: msecret})
			t.Run("one-way", func(t *testing.T) {
				if lu := open(t, dial(t, chapConfig(oneWay)), oneWay.LUN); lu.Size() != 64<<20 {
					t.Fatalf("size %d", lu.Size())
				}
			})
			t.Run("mutual", func(t *testing.T) {
				cfg := chapConfig(mutual)
				cfg.MutualUser, cfg.MutualSecret = muser, []byte(msecret)
				open(t, dial(t, cfg), mutual.LUN)
			})
			t.Run("wrong secret", func(t *testing.T) {
				cfg := chapConfig(oneWay)
				cfg.CHAPSecret = []byte("not-the-secret!!")
				_, err := initiator.Dial(context.Background(), cfg)
				if !errors.Is(err, &initiator.LoginError{Status: iscsi.LoginAuthFailed}) {
					t.Fatalf("err = %v, want authentication failed", err)
				}
				if bytes.Contains([]byte(err.Error()), cfg.CHAPSecret) {
					t.Fatal("the error message shows the secret")
				}
			})
			t.Run("wrong mutual secret", func(t *testing.T) {
				cfg := chapConfig(mutual)
				cfg.MutualUser, cfg.MutualSecret = muser, []byte("other-target-secret")
				_, err := initiator.Dial(context.Background(), cfg)
				if !errors.Is(err, iscsi.ErrChapMutualFailed) {
					t.Fatalf("err = %v, want the target to fail mutual CHAP", err)
				}
			})
			t.Run("no credentials", func(t *testing.T) {
				_, err := initiator.Dial(context.Background(), config(oneWay))
				if err == nil {
					t.Fatal("login without CHAP succeeded on a CHAP target")
				}
			})
		})
	}
}

func TestWrongTargetName(t *testing.T) {
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.start(t, peer.Options{})
			cfg := config(tg)
			cfg.TargetName = tg.IQN + "-missing"
			_, err := initiator.Dial(context.Background(), cfg)
			if !errors.Is(err, &initiator.LoginError{Status: iscsi.LoginNotFound}) {
				t.Fatalf("err = %v, want target not found", err)
			}
		})
	}
}

// TestDigests moves data with CRC32C header and data digests. tgt does not
// do digests, so against it the login must fail with a clear error.
func TestDigests(t *testing.T) {
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.start(t, peer.Options{})
			cfg := config(tg)
			cfg.HeaderDigest, cfg.DataDigest = true, true
			if tc.name == "tgtd" {
				_, err := initiator.Dial(context.Background(), cfg)
				var ne *iscsi.NegotiationError
				if !errors.As(err, &ne) || !strings.Contains(err.Error(), "does not do CRC32C") {
					t.Fatalf("err = %v, want a refusal of CRC32C digests", err)
				}
				return
			}
			s := dial(t, cfg)
			if p := s.Params(); !p.HeaderDigest || !p.DataDigest {
				t.Fatalf("negotiated header=%v data=%v, want both", p.HeaderDigest, p.DataDigest)
			}
			checkRandomIO(t, open(t, s, tg.LUN), 32<<20, 16, 0)
		})
	}
}

// TestDataIntegrity writes 64 MiB at random offsets and sizes, including
// I/Os larger than the negotiated MaxBurstLength and FirstBurstLength,
// with 64 commands outstanding, then reads it all back.
func TestDataIntegrity(t *testing.T) {
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.start(t, peer.Options{SizeBytes: 128 << 20})
			for _, variant := range []struct {
				name          string
				noImmediate   bool
				noUnsolicited bool
			}{{"immediate+unsolicited", false, false}, {"r2t only", true, true}} {
				t.Run(variant.name, func(t *testing.T) {
					cfg := config(tg)
					cfg.DisableImmediateData, cfg.DisableUnsolicitedData = variant.noImmediate, variant.noUnsolicited
					cfg.FirstBurstLength = 64 << 10
					s := dial(t, cfg)
					p := s.Params()
					t.Logf("MaxBurstLength %d FirstBurstLength %d ImmediateData %v InitialR2T %v MRDSL in/out %d/%d",
						p.MaxBurstLength, p.FirstBurstLength, p.ImmediateData, p.InitialR2T, p.InitiatorMaxRecvDSL, p.TargetMaxRecvDSL)
					lu := open(t, s, tg.LUN)
					checkRandomIO(t, lu, 64<<20, 64, 0)
				})
			}
		})
	}
}

// checkRandomIO gives each of workers its own region of the unit, writes
// random data at random offsets and sizes (up to 4 MiB) until total bytes
// are written (or count I/Os when count > 0), keeping a shadow copy, and
// reads every region back.
func checkRandomIO(t *testing.T, lu *initiator.LogicalUnit, total int64, workers, count int) {
	t.Helper()
	region := lu.Size() / int64(workers)
	region -= region % 4096
	bs := int64(lu.BlockSize())
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	shadows := make([][]byte, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			shadow := make([]byte, region)
			base := int64(w) * region
			if _, err := lu.ReadAt(shadow, base); err != nil {
				errs <- err
				return
			}
			var written int64
			for i := 0; count > 0 && i < count || count == 0 && written < total/int64(workers); i++ {
				size := (1 + rng.Int64N(min(4<<20, region)/bs)) * bs
				off := rng.Int64N((region-size)/bs+1) * bs
				buf := make([]byte, size)
				for j := range buf {
					buf[j] = byte(rng.Uint32())
				}
				if _, err := lu.WriteAt(buf, base+off); err != nil {
					errs <- fmt.Errorf("write %d bytes at %d: %w", size, base+off, err)
					return
				}
				copy(shadow[off:], buf)
				written += size
			}
			shadows[w] = shadow
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := make([]byte, region)
	for w, shadow := range shadows {
		if _, err := lu.ReadAt(got, int64(w)*region); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, shadow) {
			t.Fatalf("region %d differs from what was written", w)
		}
	}
}

// TestTargetRestart kills the target in the middle of I/O and starts it
// again: the session logs in again and every command completes.
func TestTargetRestart(t *testing.T) {
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.start(t, peer.Options{})
			cfg := config(tg)
			cfg.ReplacementTimeout = 20 * time.Second
			lu := open(t, dial(t, cfg), tg.LUN)
			done := make(chan error, 1)
			go func() { done <- writeVerifyLoop(lu, 3*time.Second) }()
			time.Sleep(500 * time.Millisecond)
			tg.Kill()
			time.Sleep(time.Second)
			tg.Restart()
			if err := <-done; err != nil {
				t.Fatalf("I/O across the restart: %v", err)
			}
		})
	}
}

// TestReplacementTimeout kills the target for good: commands fail with a
// clear error once the replacement timeout is over, and not before.
func TestReplacementTimeout(t *testing.T) {
	tg := peer.StartTgtd(t, peer.Options{})
	cfg := config(tg)
	cfg.ReplacementTimeout = 2 * time.Second
	lu := open(t, dial(t, cfg), tg.LUN)
	// The session's clock starts when it sees the connection drop, which
	// can be before Kill returns.
	start := time.Now()
	tg.Kill()
	_, err := lu.ReadAt(make([]byte, 4096), 0)
	waited := time.Since(start)
	if !errors.Is(err, initiator.ErrReplacementTimeout) {
		t.Fatalf("err = %v, want ErrReplacementTimeout", err)
	}
	if waited < 2*time.Second {
		t.Fatalf("failed after %v, before the 2 s replacement timeout", waited)
	}
}

// writeVerifyLoop writes and reads back blocks at QD 8 for d.
func writeVerifyLoop(lu *initiator.LogicalUnit, d time.Duration) error {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf, got := make([]byte, 64<<10), make([]byte, 64<<10)
			for i := 0; time.Now().Before(deadline); i++ {
				off := int64(w*100+i%100) * int64(len(buf))
				for j := range buf {
					buf[j] = byte(i + j + w)
				}
				if _, err := lu.WriteAt(buf, off); err != nil {
					errs <- err
					return
				}
				if _, err := lu.ReadAt(got, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf, got) {
					errs <- fmt.Errorf("read back differs at offset %d", off)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func TestTaskManagement(t *testing.T) {
	tg := peer.StartTgtd(t, peer.Options{})
	s := dial(t, config(tg))
	lu := open(t, s, tg.LUN)
	if err := s.LogicalUnitReset(context.Background(), lun(tg)); err != nil {
		t.Fatalf("LOGICAL UNIT RESET: %v", err)
	}
	// The reset raises a unit attention, which the logical unit retries.
	if _, err := lu.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatalf("read after reset: %v", err)
	}
	// Cancelled reads are aborted; the session stays usable.
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Microsecond)
		lu.ReadAtContext(ctx, make([]byte, 1<<20), 0)
		cancel()
	}
	checkRandomIO(t, lu, 4<<20, 4, 50)
}

func lun(tg *peer.Target) uint64 { return uint64(tg.LUN) << 48 }

func TestCloseLeaksNoGoroutine(t *testing.T) {
	tg := peer.StartTgtd(t, peer.Options{})
	before := runtime.NumGoroutine()
	for range 3 {
		s, err := initiator.Dial(context.Background(), config(tg))
		if err != nil {
			t.Fatal(err)
		}
		lu, err := initiator.OpenLogicalUnit(context.Background(), s, tg.LUN)
		if err != nil {
			t.Fatal(err)
		}
		lu.WriteAt(make([]byte, 1<<20), 0)
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestUnitCommands runs the commands the multipath layer relies on, beside
// reads and writes: TEST UNIT READY, REPORT LUNS, SYNCHRONIZE CACHE and
// the identity pages, whose WWID must be the same on every session.
func TestUnitCommands(t *testing.T) {
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.start(t, peer.Options{})
			ctx := context.Background()
			s := dial(t, config(tg))
			lu := open(t, s, tg.LUN)
			if err := lu.TestUnitReady(ctx); err != nil {
				t.Fatal(err)
			}
			luns, err := initiator.ReportLuns(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(luns, tg.LUN) {
				t.Fatalf("REPORT LUNS = %v, want LUN %d in it", luns, tg.LUN)
			}
			if _, err := lu.WriteAt(bytes.Repeat([]byte{7}, 4096), 0); err != nil {
				t.Fatal(err)
			}
			if err := lu.Sync(); err != nil {
				t.Fatal(err)
			}
			id, err := lu.Identify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			other, err := open(t, dial(t, config(tg)), tg.LUN).Identify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if id.WWID == "" || id.WWID != other.WWID || id.Serial != other.Serial {
				t.Fatalf("identities differ between sessions, or have no WWID: %+v / %+v", id, other)
			}
		})
	}
}
