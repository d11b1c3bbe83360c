package replication

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/shoal-go/shoal/internal/replication/wire"
)

// ErrUnreachable wraps every error a Transport returns when the peer could
// not be reached or went away before replying: the engine then treats the
// peer as not live for that request (it skips a dead primary, and a dead
// backup does not hold up a commit).
var ErrUnreachable = errors.New("replication: peer unreachable")

// Transport carries requests from this node to its peers.
//
// Send enqueues req for peer and returns at once; the reply arrives
// through the returned Pending. Requests to one peer leave in the order of
// the Send calls, but the peer may handle them concurrently: the engine
// does not depend on their order (a backup that sees a version out of
// order answers NeedFull and gets the whole record). Send must be safe for
// concurrent use and must not block on the network; it may be called while
// a session's lock is held.
type Transport interface {
	Send(peer string, req wire.Message) Pending
}

// Pending is a request in flight.
type Pending interface {
	// Wait returns the peer's reply, or an error: ctx's, or one wrapping
	// ErrUnreachable.
	Wait(ctx context.Context) (wire.Message, error)
}

// Handler serves the requests a node receives from its peers. A
// Transport calls Handle for one peer's requests in the order they
// arrive, on the receiving goroutine, except for the requests that wait
// on other peers (Inline reports false: a forwarded commit waits for the
// backups), which it hands to goroutines of their own: holding the others
// up behind them could deadlock two nodes forwarding to each other. So a
// backup applies a primary's changes in the order they were sent.
type Handler interface {
	Handle(ctx context.Context, from string, req wire.Message) wire.Message
}

// timedWaiter is a Pending that can wait with a timeout of its own,
// cheaper than a context.WithTimeout per request (a timer, a channel and
// the parent context's child list: a third of a commit's allocations).
type timedWaiter interface {
	WaitTimeout(ctx context.Context, d time.Duration) (wire.Message, error)
}

// waitFor waits for p's reply for at most d (and while ctx lasts): the
// error on timeout is context.DeadlineExceeded, as a context's would be.
func waitFor(ctx context.Context, p Pending, d time.Duration) (wire.Message, error) {
	if tw, ok := p.(timedWaiter); ok {
		return tw.WaitTimeout(ctx, d)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return p.Wait(ctx)
}

// timerPool holds stopped timers for WaitTimeout. Since Go 1.23 a
// stopped timer delivers nothing stale, so reuse is safe.
var timerPool sync.Pool

// waitDone waits for done, ctx or d, whichever comes first; it reports
// ctx's error, context.DeadlineExceeded after d, or nil for done.
func waitDone(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	select {
	case <-done:
		return nil
	default:
	}
	t, _ := timerPool.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(d)
	} else {
		t.Reset(d)
	}
	defer func() {
		t.Stop()
		timerPool.Put(t)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return context.DeadlineExceeded
	}
}

// failed is a Pending that has already failed.
type failed struct{ err error }

func (f failed) Wait(context.Context) (wire.Message, error) { return nil, f.err }

// Failed returns a Pending that fails with err at once: for transports
// that know before sending that a peer cannot be reached.
func Failed(err error) Pending { return failed{err} }

// Inline reports whether a Transport handles req on the goroutine that
// reads the connection (in order), rather than on a goroutine of its own.
func Inline(req wire.Message) bool {
	_, forward := req.(*wire.Forward)
	return !forward
}
