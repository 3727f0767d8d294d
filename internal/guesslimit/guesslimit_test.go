package guesslimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &Limiter{Max: 3, Window: time.Minute, Now: func() time.Time { return now }}
	for i := range 3 {
		if _, blocked := l.Blocked("a"); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		l.Fail("a")
		now = now.Add(10 * time.Second)
	}
	wait, blocked := l.Blocked("a")
	if !blocked || wait != 30*time.Second {
		t.Fatalf("after 3 failures: blocked %v, wait %v; want 30s (the first failure was 30s ago)", blocked, wait)
	}
	if _, blocked := l.Blocked("b"); blocked {
		t.Fatal("another address is blocked too")
	}
	now = now.Add(30 * time.Second)
	if _, blocked := l.Blocked("a"); blocked {
		t.Fatal("still blocked once the oldest failure left the window")
	}
	if RetryAfter(1500*time.Millisecond) != 2 || RetryAfter(0) != 1 {
		t.Fatal("RetryAfter does not round up to whole seconds")
	}
	if Key("127.0.0.1:5555") != "127.0.0.1" || Key("[::1]:80") != "::1" {
		t.Fatal("Key keeps the port")
	}
}

func TestLimiterBoundsMemory(t *testing.T) {
	var l Limiter
	for i := range maxAddresses + 10 {
		l.Fail(string(rune(i)))
	}
	if len(l.failures) > maxAddresses {
		t.Fatalf("%d addresses kept; the bound is %d", len(l.failures), maxAddresses)
	}
}
