package wire_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-go/shoal/internal/replication/wire"
	"github.com/shoal-go/shoal/session"
)

func TestReaderStream(t *testing.T) {
	var stream []byte
	samples := sampleMessages()
	for i, tc := range samples {
		stream = wire.AppendFrame(stream, uint64(i), tc.m)
	}
	r := wire.NewReader(bytes.NewReader(stream), 0)
	for i, tc := range samples {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d (%s): %v", i, tc.name, err)
		}
		m, err := wire.Decode(f.Type, f.Payload)
		if err != nil {
			t.Fatalf("frame %d (%s): %v", i, tc.name, err)
		}
		if f.ID != uint64(i) || !reflect.DeepEqual(m, tc.m) {
			t.Fatalf("frame %d (%s): id %d, %+v", i, tc.name, f.ID, m)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

// onceReader returns b, then fails the test if read again.
type onceReader struct {
	t *testing.T
	b []byte
}

func (r *onceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		r.t.Error("read past the frame's length")
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// cycleReader returns b over and over.
type cycleReader struct {
	b   []byte
	off int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], r.b[r.off:])
		n += k
		r.off = (r.off + k) % len(r.b)
	}
	return n, nil
}

// allocated returns the bytes f allocates, on average over runs.
func allocated(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

func TestReaderRefusesHugeLength(t *testing.T) {
	header := cat(uv(1<<30), []byte{byte(wire.TypeRecords), 1})
	_, err := wire.NewReader(&onceReader{t: t, b: header[:5]}, 0).ReadFrame()
	if !errors.Is(err, wire.ErrFrameTooLarge) || !strings.Contains(err.Error(), "limit of 16777216") {
		t.Fatalf("1 GiB frame: %v, want ErrFrameTooLarge", err)
	}

	// Over and over: the Reader allocates only its error.
	r := wire.NewReader(&cycleReader{b: header[:5]}, 0)
	read := func() {
		if _, err := r.ReadFrame(); !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatal(err)
		}
	}
	read() // the bufio buffer fills
	if n := testing.AllocsPerRun(100, read); n > 3 && !raceEnabled {
		t.Errorf("refusing a 1 GiB frame: %v allocations, want at most 3 (the error)", n)
	}
	if n := allocated(1000, read); n > 256 {
		t.Errorf("refusing a 1 GiB frame: %d bytes allocated, want at most 256", n)
	}

	// A limit set lower.
	frame := wire.AppendFrame(nil, 1, &wire.Fetch{Key: strings.Repeat("k", 97)}) // length 100
	if _, err := wire.NewReader(bytes.NewReader(frame), 100).ReadFrame(); err != nil {
		t.Fatalf("100-byte frame under a 100-byte limit: %v", err)
	}
	frame = wire.AppendFrame(nil, 1, &wire.Fetch{Key: strings.Repeat("k", 98)})
	if _, err := wire.NewReader(bytes.NewReader(frame), 100).ReadFrame(); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("101-byte frame under a 100-byte limit: %v, want ErrFrameTooLarge", err)
	}
}

// TestReaderLyingLength sends a length within the limit and fewer bytes:
// the Reader's memory follows the bytes sent, not the length.
func TestReaderLyingLength(t *testing.T) {
	for _, sent := range []int{10, 1000, 100_000} {
		stream := cat(uv(wire.MaxFrameSize), []byte{byte(wire.TypeRecords), 1}, make([]byte, sent))
		var err error
		n := allocated(5, func() {
			_, err = wire.NewReader(bytes.NewReader(stream), 0).ReadFrame()
		})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d bytes of a 16 MiB frame: %v, want io.ErrUnexpectedEOF", sent, err)
		}
		t.Logf("%d bytes of a 16 MiB frame: %d bytes allocated", sent, n)
		if limit := uint64(3*sent + 128<<10); n > limit {
			t.Errorf("%d bytes of a 16 MiB frame: %d bytes allocated, want at most %d", sent, n, limit)
		}
	}
}

func TestReaderMalformedHeader(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"non-minimal length", []byte{0x82, 0x00, 3, 1}, wire.ErrMalformedFrame},
		{"empty frame", []byte{0x00, 3, 1}, wire.ErrMalformedFrame},
		{"no request id", []byte{0x01, 3}, wire.ErrMalformedFrame},
		{"request id past the end", []byte{0x02, 3, 0x80}, wire.ErrMalformedFrame},
		{"non-minimal request id", []byte{0x03, 3, 0x81, 0x00}, wire.ErrMalformedFrame},
		{"request id overflow", cat(uv(12), []byte{3}, bytes.Repeat([]byte{0xff}, 11)), wire.ErrMalformedFrame},
		{"length overflow", bytes.Repeat([]byte{0xff}, 11), wire.ErrFrameTooLarge},
		{"truncated length", []byte{0x80}, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		_, err := wire.NewReader(bytes.NewReader(tc.stream), 0).ReadFrame()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReaderPassesErrors(t *testing.T) {
	boom := errors.New("connection reset")
	if _, err := wire.NewReader(errReader{boom}, 0).ReadFrame(); !errors.Is(err, boom) {
		t.Errorf("got %v, want %v", err, boom)
	}
	frame := wire.AppendFrame(nil, 1, counterApply())
	r := wire.NewReader(io.MultiReader(bytes.NewReader(frame[:10]), errReader{boom}), 0)
	if _, err := r.ReadFrame(); !errors.Is(err, boom) {
		t.Errorf("inside a frame: got %v, want %v", err, boom)
	}
}

func TestReaderReusesBuffer(t *testing.T) {
	r := wire.NewReader(&cycleReader{b: wire.AppendFrame(nil, 1, counterApply())}, 0)
	read := func() {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if n := testing.AllocsPerRun(1000, read); n != 0 && !raceEnabled {
		t.Errorf("ReadFrame: %v allocations, want 0", n)
	}
}

// gatedWriter records each Write; the first one waits for open to close.
type gatedWriter struct {
	entered chan struct{} // closed when the first Write starts
	open    chan struct{}
	writes  chan []byte
	calls   int
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls == 1 {
		close(w.entered)
		<-w.open
	}
	w.writes <- slices.Clone(p)
	return len(p), nil
}

// TestWriterBatches sends 100 frames from 100 goroutines while the first
// frame's write is blocked: they must go out in one more write.
func TestWriterBatches(t *testing.T) {
	gw := &gatedWriter{entered: make(chan struct{}), open: make(chan struct{}), writes: make(chan []byte, 10)}
	w := wire.NewWriter(gw, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	msg := func(i int) wire.Message {
		return &wire.Apply{Key: testKey, Delta: session.Delta{Set: []session.Attr{{Key: "count", Value: []byte{byte(i)}}}, BaseVersion: uint64(i)}, Version: uint64(i + 1)}
	}
	if err := w.Send(0, msg(0)); err != nil {
		t.Fatal(err)
	}
	<-gw.entered
	var wg sync.WaitGroup
	for i := 1; i < 100; i++ {
		wg.Go(func() {
			if err := w.Send(uint64(i), msg(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(gw.open)

	var stream []byte
	for _, want := range []int{1, 99} {
		batch := <-gw.writes
		n := 0
		for r := wire.NewReader(bytes.NewReader(batch), 0); ; n++ {
			if _, err := r.ReadFrame(); err != nil {
				break
			}
		}
		if n != want {
			t.Errorf("write of %d frames, want %d", n, want)
		}
		stream = append(stream, batch...)
	}
	r := wire.NewReader(bytes.NewReader(stream), 0)
	seen := map[uint64]bool{}
	for range 100 {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		m, err := wire.Decode(f.Type, f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m, msg(int(f.ID))) || seen[f.ID] {
			t.Fatalf("frame %d: %+v", f.ID, m)
		}
		seen[f.ID] = true
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if err := w.Send(1, &wire.Ping{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send after Run returned: %v, want context.Canceled", err)
	}
}

func TestWriterRefuses(t *testing.T) {
	gw := &gatedWriter{entered: make(chan struct{}), open: make(chan struct{}), writes: make(chan []byte, 10)}
	close(gw.open)
	w := wire.NewWriter(gw, 100)
	unsorted := &wire.Apply{Key: "k", Delta: session.Delta{Set: []session.Attr{{Key: "b"}, {Key: "a"}}}}
	if err := w.Send(1, unsorted); !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), `Delta.Set: key "a" after "b"`) {
		t.Errorf("unsorted attributes: %v, want ErrMalformed", err)
	}
	if err := w.Send(2, &wire.Fetch{Key: strings.Repeat("k", 98)}); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Errorf("101-byte frame, limit 100: %v, want ErrFrameTooLarge", err)
	}
	if err := w.Send(3, &wire.Fetch{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	got := <-gw.writes
	if want := wire.AppendFrame(nil, 3, &wire.Fetch{Key: "k"}); !bytes.Equal(got, want) {
		t.Errorf("wrote % x, want only the valid frame % x", got, want)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriterWriteError(t *testing.T) {
	boom := errors.New("broken pipe")
	w := wire.NewWriter(failWriter{boom}, 0)
	if err := w.Send(1, &wire.Ping{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want %v", err, boom)
	}
	if err := w.Send(2, &wire.Ping{}); !errors.Is(err, boom) {
		t.Fatalf("Send after a write error: %v, want %v", err, boom)
	}
}

func TestWriterQueueFull(t *testing.T) {
	w := wire.NewWriter(io.Discard, 64) // queue limit 256 bytes; Run not started
	ping := &wire.Ping{}                // 3-byte frames
	sent := 0
	var err error
	for ; sent < 1000; sent++ {
		if err = w.Send(uint64(sent%100), ping); err != nil {
			break
		}
	}
	if !errors.Is(err, wire.ErrQueueFull) || sent != 86 {
		t.Fatalf("after %d frames: %v, want ErrQueueFull after 86", sent, err)
	}
}

func TestWriterSendAllocs(t *testing.T) {
	w := wire.NewWriter(io.Discard, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	m := counterApply()
	n := testing.AllocsPerRun(1000, func() {
		if err := w.Send(1, m); err != nil {
			t.Fatal(err)
		}
	})
	cancel()
	<-done
	if n > 0.1 && !raceEnabled { // the queue's buffer grows now and then
		t.Errorf("Send: %v allocations, want 0", n)
	}
}

// countingWriter counts Writes and the frames in them.
type countingWriter struct {
	mu             sync.Mutex
	writes, frames int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n := 0
	for r := wire.NewReader(bytes.NewReader(p), 0); ; n++ {
		if _, err := r.ReadFrame(); err != nil {
			break
		}
	}
	w.mu.Lock()
	w.writes++
	w.frames += n
	w.mu.Unlock()
	return len(p), nil
}

func (w *countingWriter) counts() (writes, frames int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.frames
}

// TestWriterWaitsForRunnableSenders: on one processor, 50 senders made
// runnable together must share a few writes. Run yields once before it
// takes the queue; without that, each sender's frame wakes Run, which
// the scheduler runs next, and every frame gets a write of its own.
func TestWriterWaitsForRunnableSenders(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector randomizes which goroutine runs next")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	cw := &countingWriter{}
	w := wire.NewWriter(cw, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	const senders = 50
	var ready, sent sync.WaitGroup
	start := make(chan struct{})
	ready.Add(senders)
	for i := range senders {
		sent.Go(func() {
			ready.Done()
			<-start
			if err := w.Send(uint64(i), &wire.Ping{}); err != nil {
				t.Error(err)
			}
		})
	}
	ready.Wait()
	close(start)
	sent.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		writes, frames := cw.counts()
		if frames == senders {
			if writes > 5 {
				t.Errorf("%d frames in %d writes, want at most 5 writes", frames, writes)
			}
			t.Logf("%d frames in %d writes", frames, writes)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames written after 5 s", frames, senders)
		}
		time.Sleep(time.Millisecond)
	}
}
