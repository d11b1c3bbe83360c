package replication

import (
	"sync"
)

// maxShort bounds the keys remembered as missing copies: past it, more
// are counted (shortOverflow) but not remembered, so a cluster that
// cannot replicate at all does not grow this set with every session.
const maxShort = 100_000

// shortCopies remembers the sessions whose last write (or move) did not
// reach every owner: an owner was unreachable or refused, and the change
// lives on fewer nodes than Owners until a later write or a rebalance
// pass reaches them all.
type shortCopies struct {
	mu       sync.Mutex // protects keys, overflow
	keys     map[string]struct{}
	overflow int // marks not remembered because keys was full
}

func (s *shortCopies) mark(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]struct{}{}
	}
	if _, ok := s.keys[key]; ok {
		return
	}
	if len(s.keys) >= maxShort {
		s.overflow++
		return
	}
	s.keys[key] = struct{}{}
}

func (s *shortCopies) clear(key string) {
	s.mu.Lock()
	delete(s.keys, key)
	s.mu.Unlock()
}

// prune forgets the keys keep rejects (sessions gone from this node).
func (s *shortCopies) prune(keep func(key string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.keys {
		if !keep(k) {
			delete(s.keys, k)
		}
	}
}

// count returns how many keys pass held.
func (s *shortCopies) count(held func(key string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.overflow
	for k := range s.keys {
		if held(k) {
			n++
		}
	}
	return n
}

// MissingCopies returns how many of the sessions this node is primary of
// have fewer copies than the owners they should have: every one of them
// while fewer nodes are ready than Config.Owners, else those whose last
// write or move did not reach every owner (one was unreachable) and that
// no later write or rebalance pass has repaired yet.
func (n *Node) MissingCopies() int {
	r := n.ring.Load()
	if n.cfg.Owners > 0 && len(r.Members()) < n.cfg.Owners {
		return n.PrimaryCount()
	}
	return n.short.count(func(key string) bool {
		_, ok := n.copies.Get(key)
		return ok && r.Primary(key) == n.cfg.Self
	})
}
