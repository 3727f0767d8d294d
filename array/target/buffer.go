package target

import (
	"math/bits"
	"sync"
)

// Write buffers are pooled by power-of-two size class, so that a steady
// stream of writes does not allocate a fresh buffer per command.
const (
	minBufferShift = 12 // 4 KiB
	maxBufferShift = 25 // 32 MiB
)

var bufferPools [maxBufferShift + 1]sync.Pool

func sizeClass(n int) int {
	if n <= 1<<minBufferShift {
		return minBufferShift
	}
	return bits.Len(uint(n - 1))
}

// getBuffer returns a buffer of length n; its contents are undefined.
func getBuffer(n int) []byte {
	class := sizeClass(n)
	if class > maxBufferShift {
		return make([]byte, n)
	}
	if p, ok := bufferPools[class].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<class)
}

// putBuffer recycles a buffer from getBuffer.
func putBuffer(b []byte) {
	class := sizeClass(cap(b))
	if cap(b) != 1<<class || class > maxBufferShift {
		return
	}
	b = b[:0]
	bufferPools[class].Put(&b)
}
