package sysconn

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// pair returns a wrapped connection and its plain peer over loopback.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	c, ok := Wrap(d).(*Conn)
	if !ok {
		t.Fatalf("Wrap(%T) did not wrap", d)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

// TestConnLargeTransfers sends 8 MiB each way through a peer that does
// not read at first: writes fill the socket and wait for room, reads
// wait for bytes; every byte arrives once and in order.
func TestConnLargeTransfers(t *testing.T) {
	c, peer := pair(t)
	payload := make([]byte, 8<<20)
	for i := range payload {
		payload[i] = byte(i * 7 / 3)
	}
	want := sha256.Sum256(payload)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	peer.SetDeadline(time.Now().Add(20 * time.Second))

	got := make(chan [32]byte, 1)
	go func() {
		time.Sleep(100 * time.Millisecond) // c's writes find the socket full
		h := sha256.New()
		io.CopyN(h, peer, int64(len(payload)))
		var s [32]byte
		copy(s[:], h.Sum(nil))
		got <- s
	}()
	if n, err := c.Write(payload); n != len(payload) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if s := <-got; s != want {
		t.Fatal("the peer read different bytes than were written")
	}

	go func() {
		peer.Write(payload)
		peer.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	buf := make([]byte, 3000) // reads of odd sizes
	var total int
	for {
		n, err := c.Read(buf)
		h.Write(buf[:n])
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", total, err)
		}
		if n == 0 {
			t.Fatal("Read returned 0 bytes and no error")
		}
	}
	if total != len(payload) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("read %d bytes of %d, or different ones", total, len(payload))
	}
}

// TestConnConcurrentWrites: writes from several goroutines do not
// interleave, as a net.Conn's do not.
func TestConnConcurrentWrites(t *testing.T) {
	c, peer := pair(t)
	const writers, each, size = 4, 50, 20000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := bytes.Repeat([]byte{byte('a' + w)}, size)
			for range each {
				if _, err := c.Write(b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, size)
	for i := range writers * each {
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if bytes.Count(buf, buf[:1]) != size {
			t.Fatalf("write %d came interleaved with another", i)
		}
	}
	wg.Wait()
}

// TestConnDeadlinesAndClose: a read past its deadline says so, a read
// on a closed connection says it is closed, and a peer's reset is an
// error, not an end of stream.
func TestConnDeadlinesAndClose(t *testing.T) {
	c, peer := pair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want a deadline error", err)
	}
	c.SetReadDeadline(time.Time{})

	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read on a closed connection: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}

	c2, peer2 := pair(t)
	peer2.(*net.TCPConn).SetLinger(0)
	peer2.Close() // a reset
	_ = peer
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 10)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after the peer's reset: %v, want an error", err)
	}
}

func TestWrapOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Error("Wrap of a non-TCP connection must return it as is")
	}
}

// TestConnAllocations: a write and a read allocate nothing (the
// callbacks are bound once, in Wrap).
func TestConnAllocations(t *testing.T) {
	c, peer := pair(t)
	msg := []byte("0123456789")
	buf := make([]byte, len(msg))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatal(err)
		}
		peer.Write(msg)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per write and read, want 0", allocs)
	}
}
