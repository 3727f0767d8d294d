package mpio

import (
	"testing"
	"time"
)

func TestLatencyStats(t *testing.T) {
	var l latencyStats
	for range 10 {
		l.add(time.Millisecond)
	}
	l.add(5 * time.Millisecond)
	if avg, n, slowest := l.report(); avg != 0 || n != 0 || slowest != 5*time.Millisecond {
		t.Fatalf("before a sample: avg %v over %d, slowest %v", avg, n, slowest)
	}
	l.sample()
	avg, n, slowest := l.report()
	if want := 15 * time.Millisecond / 11; avg != want || n != 11 || slowest != 5*time.Millisecond {
		t.Fatalf("after a sample: avg %v over %d (want %v over 11), slowest %v", avg, n, want, slowest)
	}
	// A slower second moves the average by the weight of one second.
	for range 10 {
		l.add(11 * time.Millisecond)
	}
	l.sample()
	if avg, _, _ = l.report(); avg < 4*time.Millisecond || avg > 5*time.Millisecond {
		t.Fatalf("after a slow second: avg %v, want 0.3*11ms + 0.7*1.36ms", avg)
	}
	// The slowest completion falls out of the window after 10 samples;
	// the average is forgotten after 30 idle ones.
	for range latencyWindow {
		l.sample()
	}
	if _, _, slowest = l.report(); slowest != 0 {
		t.Fatalf("slowest %v after the window passed", slowest)
	}
	if avg, _, _ = l.report(); avg == 0 {
		t.Fatal("average forgotten too early")
	}
	for range latencyForgetAft {
		l.sample()
	}
	if avg, n, _ = l.report(); avg != 0 || n != 0 {
		t.Fatalf("idle path: avg %v over %d, want forgotten", avg, n)
	}
}
