// Package placement decides which members of a cluster hold a session:
// its primary owner and its backups. It uses rendezvous (highest random
// weight) hashing: every member gets a score for a key, the highest scores
// own it. When a member joins or leaves, only the keys it owns (or will
// own) move, about 1/N of them, and every node computes the same owners
// from the same member list without talking to the others.
//
// Scores come from FNV-1a and a 64-bit finaliser (MurmurHash3's fmix64):
// stable across processes and versions, which a seeded hash such as
// hash/maphash is not.
package placement

import (
	"slices"
	"strings"
)

// Ring is an immutable set of members. Build a new one when membership
// changes; a Ring is safe for concurrent use.
type Ring struct {
	members []member // sorted by name
}

type member struct {
	name string
	hash uint64
}

// New returns a Ring over the named members. Duplicates are ignored.
func New(names []string) *Ring {
	r := &Ring{}
	for _, n := range names {
		r.members = append(r.members, member{name: n, hash: fmix64(fnv1a(n))})
	}
	slices.SortFunc(r.members, func(a, b member) int { return strings.Compare(a.name, b.name) })
	r.members = slices.CompactFunc(r.members, func(a, b member) bool { return a.name == b.name })
	return r
}

// Len returns the number of members.
func (r *Ring) Len() int { return len(r.members) }

// Members returns the members' names, sorted.
func (r *Ring) Members() []string {
	out := make([]string, len(r.members))
	for i, m := range r.members {
		out[i] = m.name
	}
	return out
}

// Has reports whether name is a member.
func (r *Ring) Has(name string) bool {
	_, ok := slices.BinarySearchFunc(r.members, name, func(m member, n string) int { return strings.Compare(m.name, n) })
	return ok
}

func score(keyHash, memberHash uint64) uint64 { return fmix64(keyHash ^ memberHash) }

// Owners appends to dst the n members that own key, primary first, and
// returns the extended slice. n <= 0 or n > Len means every member (the
// all-to-all mode). Ties, which need a 64-bit collision, break by name.
func (r *Ring) Owners(dst []string, key string, n int) []string {
	if n <= 0 || n > len(r.members) {
		n = len(r.members)
	}
	if n == 0 {
		return dst
	}
	kh := fnv1a(key)
	// Selection of the n best by insertion into a small sorted window:
	// n is the replication factor (2 or 3), so this beats sorting all.
	type scored struct {
		s uint64
		i int
	}
	var buf [8]scored
	best := buf[:0]
	if n > len(buf) {
		best = make([]scored, 0, n)
	}
	for i, m := range r.members {
		s := score(kh, m.hash)
		if len(best) == n && s <= best[n-1].s {
			continue
		}
		j := len(best)
		if j < n {
			best = append(best, scored{})
		} else {
			j = n - 1
		}
		for j > 0 && best[j-1].s < s {
			best[j] = best[j-1]
			j--
		}
		best[j] = scored{s, i}
	}
	for _, b := range best {
		dst = append(dst, r.members[b.i].name)
	}
	return dst
}

// Primary returns key's primary owner, or "" for an empty ring.
func (r *Ring) Primary(key string) string {
	var buf [1]string
	o := r.Owners(buf[:0], key, 1)
	if len(o) == 0 {
		return ""
	}
	return o[0]
}

// IsOwner reports whether name is among key's n owners.
func (r *Ring) IsOwner(key, name string, n int) bool {
	var buf [8]string
	return slices.Contains(r.Owners(buf[:0], key, n), name)
}

// maxDraws bounds NewOwnedKey: with N members a draw succeeds with
// probability 1/N, so 64 draws fail only for clusters far larger than
// the all-in-memory design is for (and then the key is still valid, only
// not local).
const maxDraws = 64

// NewOwnedKey draws keys with gen until one has self as its primary owner,
// so that a session created on self is served locally for as long as self
// lives; after maxDraws it returns the last key drawn. Each draw is a fresh
// random key, so the result keeps all but log2(N) bits of gen's entropy.
func (r *Ring) NewOwnedKey(self string, gen func() string) string {
	k := gen()
	if !r.Has(self) {
		return k
	}
	for range maxDraws {
		if r.Primary(k) == self {
			return k
		}
		k = gen()
	}
	return k
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// fmix64 is MurmurHash3's 64-bit finaliser: it spreads every input bit
// over the output, which FNV alone does poorly for similar keys.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
