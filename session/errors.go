package session

import "errors"

// Limits on one session's attributes, which every store can carry (the
// cluster's frames refuse more).
const (
	// MaxKeyLen is the longest attribute key, in bytes.
	MaxKeyLen = 256
	// MaxAttrs is the most attributes one session holds.
	MaxAttrs = 10_000
)

var (
	// ErrNotFound is returned by a Store for a key it does not hold.
	ErrNotFound = errors.New("session: not found")

	// ErrExists is returned by Store.Create and by a renaming
	// Store.Commit when the key is already taken.
	ErrExists = errors.New("session: key already exists")

	// ErrTooManySessions is returned when creating a session would exceed
	// Config.MaxSessions. The middleware answers it with 503.
	ErrTooManySessions = errors.New("session: too many live sessions")

	// ErrTooLarge is returned by Put when the session's encoded size would
	// exceed Config.MaxSessionBytes.
	ErrTooLarge = errors.New("session: session too large")

	// ErrBadKey is returned by Put for an empty key or one longer than
	// MaxKeyLen.
	ErrBadKey = errors.New("session: bad attribute key")

	// ErrNoSession is returned by Session methods called on a request that
	// did not pass through Manager.Handler.
	ErrNoSession = errors.New("session: no session in context (is the handler wrapped in Manager.Handler?)")

	// ErrCommitted is returned by a change (Put, Delete, RenewID,
	// Invalidate) made after the response started: the session was
	// committed before the status line, so a later change would never
	// reach the store, and shoal refuses it rather than lose it silently.
	ErrCommitted = errors.New("session: change after the response started (commit happens before the status line is written)")

	// ErrClosed is returned by a closed Store or Manager.
	ErrClosed = errors.New("session: closed")
)
