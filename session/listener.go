package session

import (
	"context"
	"time"
)

// Reason says why a session was destroyed.
type Reason int

const (
	// ReasonExpired: the session's idle or absolute timeout passed.
	ReasonExpired Reason = iota + 1
	// ReasonInvalidated: the application called Session.Invalidate.
	ReasonInvalidated
	// ReasonEvicted: an operator or the store removed it (Manager.Evict).
	ReasonEvicted
)

func (r Reason) String() string {
	switch r {
	case ReasonExpired:
		return "expired"
	case ReasonInvalidated:
		return "invalidated"
	case ReasonEvicted:
		return "evicted"
	}
	return "unknown"
}

// Event describes one session event for a Listener.
type Event struct {
	// Key is the session id's base, the part that names it in the store.
	Key string
	// OldKey is the key before RenewID (SessionIDChanged only).
	OldKey string
	// Attr is the attribute key (attribute events only).
	Attr string
	// Reason says why the session was destroyed (SessionDestroyed only).
	Reason Reason
	// Created and LastAccess are the session's times as last known.
	Created, LastAccess time.Time
	// Copy is set on a SessionDestroyed fired for this node's copy of a
	// session that another node expired or deleted (only with
	// Config.DestroyedOnEveryCopy); the node that decided fires it unset.
	Copy bool

	attrs []Attr // the session's attributes after the event
	codec Codec
}

// Decode decodes the attribute key, as the session holds it after the
// event (for SessionDestroyed: its last committed state), into v. It
// reports false if there is no such attribute.
func (e Event) Decode(key string, v any) (bool, error) {
	b, ok := findAttr(e.attrs, key)
	if !ok {
		return false, nil
	}
	return true, e.codec.Unmarshal(b, v)
}

// Listener receives session events. Every field is optional. Hooks run
// synchronously on the goroutine that caused the event: for changes made
// by a request, during its commit, before the response status is written,
// and only once the store has accepted the change; for expiry, on the
// Manager's sweep goroutine. Within one commit the order is:
// SessionDestroyed (an invalidated session), SessionCreated,
// SessionIDChanged, then the attribute events in key order. Attribute
// events report the request's net effect: a key put and deleted in the same
// request of a new session reports nothing. A hook must not call methods of
// the request's Session (it runs while the Session is locked).
type Listener struct {
	SessionCreated    func(ctx context.Context, e Event)
	SessionDestroyed  func(ctx context.Context, e Event)
	SessionIDChanged  func(ctx context.Context, e Event)
	AttributeAdded    func(ctx context.Context, e Event)
	AttributeReplaced func(ctx context.Context, e Event)
	AttributeRemoved  func(ctx context.Context, e Event)
}

type eventKind int

const (
	evCreated eventKind = iota
	evDestroyed
	evIDChanged
	evAdded
	evReplaced
	evRemoved
)

func (m *Manager) fire(ctx context.Context, kind eventKind, e Event) {
	e.codec = m.codec
	for i := range m.cfg.Listeners {
		l := &m.cfg.Listeners[i]
		var h func(context.Context, Event)
		switch kind {
		case evCreated:
			h = l.SessionCreated
		case evDestroyed:
			h = l.SessionDestroyed
		case evIDChanged:
			h = l.SessionIDChanged
		case evAdded:
			h = l.AttributeAdded
		case evReplaced:
			h = l.AttributeReplaced
		case evRemoved:
			h = l.AttributeRemoved
		}
		if h != nil {
			h(ctx, e)
		}
	}
}
