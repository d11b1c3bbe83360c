package balancer

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// errBodyTooLarge is the read error of a request body past MaxBodyBytes.
var errBodyTooLarge = errors.New("request body too large")

// errBodyReplaced is the read error of an attempt's body after the
// request was sent again: the old attempt must not consume the body.
var errBodyReplaced = errors.New("request body is being sent to another member")

// replayBody is a request body that can be read again from the start, by
// the next attempt of the request, as long as everything read so far is
// still kept: it keeps what a member read, up to keep bytes, and streams
// the rest. It never reads ahead, so a client that streams its body and
// waits for the response as it goes (bidirectional streaming) is not
// stalled. It also enforces the body limit.
type replayBody struct {
	// mu guards the fields below. It is held while reading from src, so a
	// read of an attempt that was given up (its transport may still be
	// reading when the next attempt starts) finishes, and its bytes are
	// kept, before the next attempt reads.
	mu   sync.Mutex
	src  io.Reader
	buf  []byte // the bytes read from src, while they fit in keep
	keep int
	read int64 // bytes read from src
	max  int64 // 0: no limit
	err  error // src's error once it returned one (io.EOF at the end)
	cur  *bodyReader

	overflowed atomic.Bool // read > keep: the body can no longer be replayed
	tooLarge   atomic.Bool // read past max
	// ended is done's answer without mu, which a read waiting for the
	// client holds.
	ended atomic.Bool
}

func newReplayBody(src io.Reader, size int64, keep int, max int64) *replayBody {
	rb := &replayBody{src: src, keep: keep, max: max}
	if size > 0 && size <= int64(keep) {
		rb.buf = make([]byte, 0, size)
	}
	return rb
}

// done reports whether the body was read to its end. It does not wait
// for a read in progress.
func (rb *replayBody) done() bool { return rb.ended.Load() }

// replayable reports whether the body can still be sent from the start.
func (rb *replayBody) replayable() bool { return !rb.overflowed.Load() }

// reader returns a reader of the body from its start and makes the
// readers handed out before it fail. It returns nil if the body can no
// longer be replayed.
func (rb *replayBody) reader() *bodyReader {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if rb.overflowed.Load() {
		return nil
	}
	rb.cur = &bodyReader{rb: rb}
	return rb.cur
}

// bodyReader is one attempt's reading of a replayBody.
type bodyReader struct {
	rb  *replayBody
	off int64 // bytes this reader returned
}

func (b *bodyReader) Read(p []byte) (int, error) {
	rb := b.rb
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if rb.cur != b {
		return 0, errBodyReplaced
	}
	if b.off < int64(len(rb.buf)) {
		n := copy(p, rb.buf[b.off:])
		b.off += int64(n)
		return n, nil
	}
	if rb.err != nil {
		return 0, rb.err
	}
	if b.off != rb.read { // the kept bytes were dropped: cannot happen to the current reader
		return 0, errBodyReplaced
	}
	if rb.max > 0 && int64(len(p)) > rb.max-rb.read+1 {
		p = p[:rb.max-rb.read+1]
	}
	n, err := rb.src.Read(p)
	rb.read += int64(n)
	if rb.max > 0 && rb.read > rb.max {
		rb.tooLarge.Store(true)
		rb.overflowed.Store(true)
		rb.buf = nil
		n, err = 0, errBodyTooLarge
	}
	if !rb.overflowed.Load() {
		if rb.read <= int64(rb.keep) {
			rb.buf = append(rb.buf, p[:n]...)
		} else {
			rb.overflowed.Store(true)
			rb.buf = nil
		}
	}
	b.off += int64(n)
	if err != nil {
		rb.err = err
		if err == io.EOF {
			rb.ended.Store(true)
		}
	}
	return n, err
}

// Close does nothing: the server closes the client's body.
func (b *bodyReader) Close() error { return nil }
