package disk

import "sync"

// maxChunk bounds the scratch buffers of the data path: VERIFY, COMPARE
// AND WRITE and WRITE SAME work through large ranges a chunk at a time.
const maxChunk = 1 << 20

// chunks reuses scratch buffers. Read data handed back in a Response is
// not pooled: it belongs to the target once Execute returns.
var chunks = sync.Pool{New: func() any { b := make([]byte, maxChunk); return &b }}

// getBuffer returns a scratch buffer of n bytes (n <= maxChunk, or a
// fresh allocation when larger).
func getBuffer(n int) *[]byte {
	if n > maxChunk {
		b := make([]byte, n)
		return &b
	}
	b := chunks.Get().(*[]byte)
	*b = (*b)[:n]
	return b
}

func putBuffer(b *[]byte) {
	if cap(*b) == maxChunk {
		*b = (*b)[:maxChunk]
		chunks.Put(b)
	}
}
