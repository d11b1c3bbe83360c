package balancer

import (
	"fmt"
	"math"
	"net/http"
	"strings"
)

// Hash sends all requests with the same key (a header's or a cookie's
// value) to the same member, by rendezvous (highest random weight)
// hashing: each member scores hash(key, member) scaled by its weight, and
// the highest score wins. When a member leaves the candidates only its
// keys move, spread over the others; when it comes back, they return.
// Requests without the key are balanced byrequests. The hash (FNV-1a of
// the key and of the route) does not depend on the process, so several
// balancers agree.
type Hash struct {
	header string // canonical header name, or ""
	cookie string // cookie name, or ""

	fallback ByRequests
	shared   *ByRequests // if set, used instead of fallback (see ByBusyness.shared)
}

// NewHash returns a Hash selector for a key spec: "header:NAME" or
// "cookie:NAME".
func NewHash(key string) (*Hash, error) {
	kind, name, _ := strings.Cut(key, ":")
	if !validName(name) {
		return nil, fmt.Errorf("hash-key %q: want header:NAME or cookie:NAME", key)
	}
	switch kind {
	case "header":
		return &Hash{header: http.CanonicalHeaderKey(name)}, nil
	case "cookie":
		return &Hash{cookie: name}, nil
	}
	return nil, fmt.Errorf("hash-key %q: want header:NAME or cookie:NAME", key)
}

// key returns the request's hash key, or "".
func (s *Hash) key(r *http.Request) string {
	if s.header != "" {
		if v := r.Header[s.header]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	for _, h := range r.Header["Cookie"] {
		if v := cookieValue(h, s.cookie); v != "" {
			return v
		}
	}
	return ""
}

// Select implements Selector.
func (s *Hash) Select(members []*Member, r *http.Request) *Member {
	return s.selectKey(members, s.key(r))
}

// selectKey is Select for a request whose key is key ("" for none).
func (s *Hash) selectKey(members []*Member, key string) *Member {
	if key == "" {
		if s.shared != nil {
			return s.shared.Select(members, nil)
		}
		return s.fallback.Select(members, nil)
	}
	kh := fnv1a(key)
	var best *Member
	var bestScore float64
	var bestH uint64
	weighted := false
	for _, m := range members[1:] {
		if m.lbfactor.Load() != members[0].lbfactor.Load() {
			weighted = true
			break
		}
	}
	for _, m := range members {
		h := mix64(kh ^ m.routeHash)
		if !weighted {
			if best == nil || h > bestH {
				best, bestH = m, h
			}
			continue
		}
		// Weighted rendezvous: -w/ln(u) with u uniform in (0, 1).
		u := (float64(h>>11) + 0.5) / (1 << 53)
		score := -float64(m.lbfactor.Load()) / math.Log(u)
		if best == nil || score > bestScore {
			best, bestScore = m, score
		}
	}
	return best
}

// fnv1a returns the 64-bit FNV-1a hash of s.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
