package balancer

import (
	"io"
	"net"
	"time"
)

// hreader is a buffered reader of a connection that lets the parsers
// read a head in place: readHead returns the head's bytes in the buffer,
// valid until the next read. It grows its buffer for a head that does
// not fit, up to maxHeadBytes.
type hreader struct {
	c    net.Conn
	buf  []byte
	r, w int
	// slowHead, if set, is called once when a head did not arrive in one
	// read: the client side uses it to bound the time a head may take.
	slowHead func()
}

func (h *hreader) buffered() int { return h.w - h.r }

// fill reads once from the connection, first making room: unread bytes
// move to the front, and a full buffer grows (up to max).
func (h *hreader) fill(max int) error {
	if h.r == h.w {
		h.r, h.w = 0, 0
	}
	if h.w == len(h.buf) {
		if h.r > 0 {
			h.w = copy(h.buf, h.buf[h.r:h.w])
			h.r = 0
		} else {
			if len(h.buf) >= max {
				return errHeadTooLarge
			}
			nb := make([]byte, min(2*len(h.buf), max))
			h.w = copy(nb, h.buf[h.r:h.w])
			h.r = 0
			h.buf = nb
		}
	}
	n, err := h.c.Read(h.buf[h.w:])
	h.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readHead returns the next head (through its blank line), skipping
// empty lines before it (RFC 9112 2.2). The bytes stay valid until the
// next call that reads. Errors: those of the connection, errBadRequest
// for a bare LF or CR, errHeadTooLarge.
func (h *hreader) readHead(limit int) ([]byte, error) {
	checked := 0
	slow := false
	for {
		for h.w-h.r >= 2 && h.buf[h.r] == '\r' && h.buf[h.r+1] == '\n' {
			h.r += 2
			checked = 0
		}
		b := h.buf[h.r:h.w]
		n, err := headEnd(b, checked)
		if err == nil {
			h.r += n
			return b[:n:n], nil
		}
		if err != errNeedMore {
			return nil, err
		}
		checked = max(len(b)-3, 0)
		if len(b) >= limit {
			return nil, errHeadTooLarge
		}
		if len(b) > 0 && !slow {
			slow = true
			if h.slowHead != nil {
				h.slowHead()
			}
		}
		if err := h.fill(limit); err != nil {
			if err == io.EOF && h.w > h.r {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// readLine returns the next line without its CRLF, refusing a bare LF.
// The line is valid until the next call that reads.
func (h *hreader) readLine(limit int) ([]byte, error) {
	checked := 0
	for {
		b := h.buf[h.r:h.w]
		for i := checked; i < len(b); i++ {
			if b[i] == '\n' {
				if i == 0 || b[i-1] != '\r' {
					return nil, errBadRequest
				}
				h.r += i + 1
				return b[: i-1 : i-1], nil
			}
		}
		checked = len(b)
		if len(b) >= limit {
			return nil, errHeadTooLarge
		}
		if err := h.fill(limit); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		// fill keeps the unread bytes in order: checked still holds.
	}
}

// Read reads from the buffer, or straight from the connection when the
// buffer is empty and p is as large as it.
func (h *hreader) Read(p []byte) (int, error) {
	if h.r == h.w {
		if len(p) >= len(h.buf) {
			return h.c.Read(p)
		}
		if err := h.fill(len(h.buf)); err != nil {
			return 0, err
		}
	}
	n := copy(p, h.buf[h.r:h.w])
	h.r += n
	return n, nil
}

// next returns up to n buffered bytes, reading once if none is
// buffered. They are valid until the next call that reads.
func (h *hreader) next(n int64) ([]byte, error) {
	if h.r == h.w {
		if err := h.fill(len(h.buf)); err != nil {
			return nil, err
		}
	}
	b := h.buf[h.r:h.w]
	if int64(len(b)) > n {
		b = b[:n]
	}
	h.r += len(b)
	return b, nil
}

// shrink drops a buffer that grew for a large head, once it is empty.
func (h *hreader) shrink(size int) {
	if len(h.buf) > size && h.r == h.w {
		h.buf, h.r, h.w = make([]byte, size), 0, 0
	}
}

// setDeadline sets the connection's read deadline to now+d (none for 0).
func (h *hreader) setDeadline(d time.Duration) {
	h.c.SetReadDeadline(deadline(d))
}
