package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
)

const (
	// readBufferSize is the Reader's bufio size, and the first step by
	// which it grows its frame buffer beyond its capacity.
	readBufferSize = 32 << 10
	// keepBuffer is the largest buffer a Reader or Writer keeps for reuse
	// after a larger frame or batch.
	keepBuffer = 1 << 20
)

// Reader reads frames from a connection. It is not safe for concurrent
// use: one goroutine per connection reads.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewReader returns a Reader reading frames from r, refusing any whose
// length field is over max bytes. If max <= 0, MaxFrameSize is used.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = MaxFrameSize
	}
	return &Reader{r: bufio.NewReaderSize(r, readBufferSize), max: max}
}

// ReadFrame reads the next frame. The frame's Payload is valid until the
// next call: Decode copies what it keeps.
//
// It returns io.EOF if the stream ends cleanly between frames, an error
// wrapping io.ErrUnexpectedEOF if it ends inside one, ErrFrameTooLarge for
// a length over the limit (read before any of the body, nothing
// allocated), ErrMalformedFrame for a broken header, and the underlying
// reader's errors. After any error the stream is out of step: close the
// connection.
//
// A length that lies (more than the peer sends) costs no more memory than
// the bytes that arrive: the buffer grows with them, at most doubling,
// from a first step of 32 KiB.
func (r *Reader) ReadFrame() (Frame, error) {
	n, err := r.readLength()
	if err != nil {
		return Frame{}, err
	}
	body, err := r.readBody(n)
	if err != nil {
		return Frame{}, err
	}
	id, k := binary.Uvarint(body[1:])
	switch {
	case k == 0:
		return Frame{}, fmt.Errorf("%w: request id runs past the frame's end", ErrMalformedFrame)
	case k < 0:
		return Frame{}, fmt.Errorf("%w: request id overflows 64 bits", ErrMalformedFrame)
	case k > 1 && body[k] == 0:
		return Frame{}, fmt.Errorf("%w: non-minimal request id", ErrMalformedFrame)
	}
	return Frame{Type: Type(body[0]), ID: id, Payload: body[1+k:]}, nil
}

// readLength reads a frame's length field.
func (r *Reader) readLength() (int, error) {
	var x uint64
	for i := 0; ; i++ {
		c, err := r.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if i == 0 {
					return 0, io.EOF
				}
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("wire: reading frame length: %w", err)
		}
		if i > 0 && c == 0 {
			return 0, fmt.Errorf("%w: non-minimal length", ErrMalformedFrame)
		}
		x |= uint64(c&0x7f) << (7 * i)
		// x only grows with more bytes, so refuse as soon as it is over.
		if x > uint64(r.max) {
			return 0, fmt.Errorf("%w: length over the limit of %d bytes", ErrFrameTooLarge, r.max)
		}
		if c < 0x80 {
			break
		}
	}
	if x == 0 {
		return 0, fmt.Errorf("%w: empty frame (no type byte)", ErrMalformedFrame)
	}
	return int(x), nil
}

// readBody reads n bytes into r.buf, growing it only as bytes arrive.
func (r *Reader) readBody(n int) ([]byte, error) {
	if cap(r.buf) > keepBuffer && n <= keepBuffer {
		r.buf = nil // let a big frame's buffer go
	}
	b := r.buf[:0]
	for len(b) < n {
		step := n - len(b)
		if cap(b) < n {
			step = min(step, max(len(b), readBufferSize))
			b = slices.Grow(b, step)
		}
		k, err := io.ReadFull(r.r, b[len(b):len(b)+step])
		b = b[:len(b)+k]
		if err != nil {
			r.buf = b[:0]
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("wire: truncated frame: read %d of %d bytes: %w", len(b), n, err)
		}
	}
	r.buf = b
	return b, nil
}

// Writer writes frames to a connection, batching those sent close
// together into one write.
//
// Any number of goroutines may call Send; one goroutine runs Run, which
// writes. Send encodes and checks the frame, appends it to the queue and
// returns, without I/O; Run, woken when the queue turns non-empty, takes
// the whole queue and writes it in one Write, while new frames queue
// behind it. So a lone frame is written at once, and under load every
// frame sent during a write goes out together in the next one (one
// syscall, full TLS records): the batch grows with the load, without a
// timer. Woken, Run first yields its processor once (runtime.Gosched), so
// that goroutines already runnable, typically other requests about to
// send theirs, queue their frames before it takes the queue: group
// commit. Where nothing else is runnable the yield returns at once. With
// two nodes under load on one processor each, this cut the replication
// writes from 1.2 to 0.3 per request and the nodes' CPU per request by
// a fifth (bench/README.md, "Replication writes").
//
// Give NewWriter the connection itself (a tls.Conn), not a bufio.Writer:
// the batch is the buffer.
type Writer struct {
	w         io.Writer
	max       int
	maxQueued int
	wake      chan struct{} // holds a token when the queue has turned non-empty

	mu  sync.Mutex
	buf []byte // queued frames; guarded by mu
	err error  // set when Run stops; guarded by mu
}

// NewWriter returns a Writer of frames to w, refusing any whose length
// field would be over max bytes. If max <= 0, MaxFrameSize is used. The
// queue holds at most 4*max bytes.
func NewWriter(w io.Writer, max int) *Writer {
	if max <= 0 {
		max = MaxFrameSize
	}
	return &Writer{w: w, max: max, maxQueued: 4 * min(max, math.MaxInt/4), wake: make(chan struct{}, 1)}
}

// Send queues the frame carrying m with request id id. It checks m as
// Decode would and returns the error (wrapping ErrMalformed or
// ErrFrameTooLarge) instead of queuing a frame the peer would refuse. It
// returns ErrQueueFull if the queue is full, and the error Run stopped
// with once it has.
//
// A nil error means queued, not delivered: the peer's reply confirms
// delivery. Send encodes and checks outside the queue's lock, which it
// holds only to copy the frame in; it does not allocate once its buffers
// have grown to the load.
func (w *Writer) Send(id uint64, m Message) error {
	if n := 1 + uvarintLen(id) + m.size(); n > w.max {
		return fmt.Errorf("%w: %s frame of %d bytes, over the limit of %d", ErrFrameTooLarge, m.Type(), n, w.max)
	}
	bp := framePool.Get().(*[]byte)
	frame := AppendFrame((*bp)[:0], id, m)
	err := validate(m, frame, w.max)
	if err == nil {
		err = w.queue(frame)
	}
	if cap(frame) <= keepBuffer {
		*bp = frame[:0]
		framePool.Put(bp)
	}
	return err
}

// framePool holds buffers for Send to encode into.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

func (w *Writer) queue(frame []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if len(w.buf) >= w.maxQueued {
		return fmt.Errorf("%w: %d bytes queued", ErrQueueFull, len(w.buf))
	}
	w.buf = append(w.buf, frame...)
	if len(w.buf) == len(frame) { // the queue was empty: wake Run
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Run writes queued frames until ctx is done or a write fails, and
// returns why (ctx.Err() or the write error). Later Sends return that
// error, wrapped; frames still queued are dropped. Run must be called
// once; to stop it while a Write blocks, close the connection (or set a
// write deadline).
func (w *Writer) Run(ctx context.Context) error {
	var spare []byte
	for {
		select {
		case <-ctx.Done():
			return w.stop(ctx.Err())
		case <-w.wake:
		}
		runtime.Gosched()
		w.mu.Lock()
		batch := w.buf
		w.buf = spare[:0]
		w.mu.Unlock()
		if len(batch) == 0 {
			spare = batch
			continue
		}
		if _, err := w.w.Write(batch); err != nil {
			return w.stop(err)
		}
		if cap(batch) > keepBuffer {
			batch = nil
		}
		spare = batch
	}
}

func (w *Writer) stop(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = fmt.Errorf("wire: writer stopped: %w", err)
	w.buf = nil
	return err
}
