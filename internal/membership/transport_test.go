package membership

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newTestTransport(t *testing.T) *transport {
	t.Helper()
	tr, err := newTransport("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown() })
	return tr
}

// Each packet reaches memberlist whole, in a buffer of its own size that
// the next packet does not overwrite, and receiving does not allocate a
// 64 KiB buffer per packet (memberlist's NetTransport does).
func TestTransportPacketsAreRightSizedCopies(t *testing.T) {
	tr := newTestTransport(t)
	c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.port())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const n = 200
	var first []byte
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for i := range n {
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 100+i)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-tr.PacketCh():
			if !bytes.Equal(p.Buf, msg) {
				t.Fatalf("packet %d: got %d bytes %.10q, want %d bytes %.10q", i, len(p.Buf), p.Buf, len(msg), msg)
			}
			if cap(p.Buf) > len(p.Buf)+64 {
				t.Fatalf("packet %d: %d bytes in a buffer of %d", i, len(p.Buf), cap(p.Buf))
			}
			if p.From == nil || !strings.HasPrefix(p.From.String(), "127.0.0.1:") {
				t.Fatalf("packet %d from %v", i, p.From)
			}
			if i == 0 {
				first = p.Buf
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("packet %d not received", i)
		}
	}
	runtime.ReadMemStats(&ms1)
	if !bytes.Equal(first, bytes.Repeat([]byte{'a'}, 100)) {
		t.Errorf("the first packet was overwritten by later ones: %.10q", first)
	}
	if per := (ms1.TotalAlloc - ms0.TotalAlloc) / n; per > 8<<10 {
		t.Errorf("%d bytes allocated per packet received", per)
	}
}

func TestTransportAdvertiseAddr(t *testing.T) {
	tr := newTestTransport(t)
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil || ip.String() != "127.0.0.1" || port != tr.port() {
		t.Errorf(`FinalAdvertiseAddr("", 0) = %v, %d, %v; want 127.0.0.1, %d`, ip, port, err, tr.port())
	}
	ip, port, err = tr.FinalAdvertiseAddr("10.1.2.3", 7946)
	if err != nil || ip.String() != "10.1.2.3" || len(ip) != net.IPv4len || port != 7946 {
		t.Errorf(`FinalAdvertiseAddr("10.1.2.3", 7946) = %v, %d, %v`, ip, port, err)
	}
	if _, _, err := tr.FinalAdvertiseAddr("not-an-ip", 1); err == nil {
		t.Error("an advertise address that is not an IP was accepted")
	}
}

func TestTransportBindErrors(t *testing.T) {
	tr := newTestTransport(t)
	_, err := newTransport("127.0.0.1", tr.port(), log.New(io.Discard, "", 0))
	if err == nil || !strings.Contains(err.Error(), "in use") || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("binding a port in use: %v", err)
	}
	if _, err := newTransport("localhost", 0, log.New(io.Discard, "", 0)); err == nil || !strings.Contains(err.Error(), "not an IP") {
		t.Errorf("binding a host name: %v", err)
	}
}

// Shutdown ends the loops even while memberlist does not read, and may
// be called twice (memberlist calls it, and New calls it again after a
// failed Create).
func TestTransportShutdown(t *testing.T) {
	tr := newTestTransport(t)
	c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.port())))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("nobody reads this"))
	c.Close()
	tc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.port())))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	time.Sleep(50 * time.Millisecond) // both loops now wait to hand over
	done := make(chan struct{})
	go func() {
		tr.Shutdown()
		tr.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return while a packet and a connection waited for memberlist")
	}
}
