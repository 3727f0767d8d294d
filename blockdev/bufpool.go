package blockdev

import (
	"math/bits"
	"sync"
)

// Request buffers are recycled in power-of-two classes from 4 KiB up to
// nbdMaxPayload, so a busy connection does not allocate per request.
const (
	minBufShift = 12
	maxBufShift = 25 // 32 MiB, nbdMaxPayload
)

var bufPools [maxBufShift - minBufShift + 1]sync.Pool

func bufClass(n int) int {
	return max(0, bits.Len(uint(n-1))-minBufShift)
}

// getBuf returns a buffer of length n; its contents are unspecified.
func getBuf(n int) []byte {
	if n == 0 {
		return nil
	}
	c := bufClass(n)
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<(c+minBufShift))
}

// putBuf returns a buffer from getBuf to its pool.
func putBuf(b []byte) {
	if cap(b) == 0 {
		return
	}
	c := bufClass(cap(b))
	if cap(b) != 1<<(c+minBufShift) {
		return
	}
	b = b[:cap(b)]
	bufPools[c].Put(&b)
}
