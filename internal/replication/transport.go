package replication

import (
	"context"
	"errors"

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
