package membership

import (
	"fmt"
	"net"
	"strconv"

	"github.com/hashicorp/memberlist"
)

// The metadata a member gossips about itself rides in memberlist's node
// meta (at most memberlist.MetaMaxSize = 512 bytes). Format version 1:
//
//	[0]   version (1)
//	[1]   role
//	[2]   state
//	[3]   flags: bit 0 = departing (Leave was called); other bits reserved
//	[4]   n = len(HTTPAddr), then n bytes
//	[.]   m = len(ReplAddr), then m bytes
//	[...] anything after that is ignored
//
// A later writer may append fields after ReplAddr and set reserved flag
// bits without bumping the version, so older readers keep understanding
// it; an incompatible change bumps the version and older readers ignore
// such peers (logged once each).
const (
	metaVersion     = 1
	metaHeaderLen   = 4
	flagDeparting   = 1 << 0
	maxMetaAddrLen  = 253 // two of them and the header fit in memberlist's 512 bytes
	maxMetaEncoding = memberlist.MetaMaxSize
)

// memberMeta is what a member says about itself in its gossip metadata.
type memberMeta struct {
	Role      Role
	State     State
	Departing bool // Leave was called: its disappearance is a leave, not a failure
	HTTPAddr  string
	ReplAddr  string
}

// encodeMeta returns the wire form of mm. It fails when mm would not
// decode (bad role, state or address) or does not fit in memberlist's
// meta limit.
func encodeMeta(mm memberMeta) ([]byte, error) {
	if err := mm.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, metaHeaderLen+2+len(mm.HTTPAddr)+len(mm.ReplAddr))
	var flags byte
	if mm.Departing {
		flags |= flagDeparting
	}
	b = append(b, metaVersion, byte(mm.Role), byte(mm.State), flags)
	b = append(b, byte(len(mm.HTTPAddr)))
	b = append(b, mm.HTTPAddr...)
	b = append(b, byte(len(mm.ReplAddr)))
	b = append(b, mm.ReplAddr...)
	if len(b) > maxMetaEncoding {
		return nil, fmt.Errorf("%w: %d bytes, memberlist allows %d", ErrInvalidMeta, len(b), maxMetaEncoding)
	}
	return b, nil
}

// decodeMeta parses a peer's gossip metadata. It never panics, whatever b
// holds; any error wraps ErrInvalidMeta.
func decodeMeta(b []byte) (memberMeta, error) {
	var mm memberMeta
	if len(b) == 0 {
		return memberMeta{}, fmt.Errorf("%w: empty (not a shoal member?)", ErrInvalidMeta)
	}
	if b[0] != metaVersion {
		return memberMeta{}, fmt.Errorf("%w: format version %d, this build reads %d", ErrInvalidMeta, b[0], metaVersion)
	}
	if len(b) < metaHeaderLen+1 {
		return memberMeta{}, fmt.Errorf("%w: %d bytes, too short", ErrInvalidMeta, len(b))
	}
	mm.Role = Role(b[1])
	mm.State = State(b[2])
	mm.Departing = b[3]&flagDeparting != 0
	rest := b[metaHeaderLen:]
	var ok bool
	if mm.HTTPAddr, rest, ok = cutLenString(rest); !ok {
		return memberMeta{}, fmt.Errorf("%w: HTTP address truncated", ErrInvalidMeta)
	}
	if mm.ReplAddr, _, ok = cutLenString(rest); !ok {
		return memberMeta{}, fmt.Errorf("%w: replication address truncated", ErrInvalidMeta)
	}
	if err := mm.validate(); err != nil {
		return memberMeta{}, err
	}
	return mm, nil
}

// cutLenString reads a one-byte length and that many bytes from b.
func cutLenString(b []byte) (s string, rest []byte, ok bool) {
	if len(b) < 1 {
		return "", nil, false
	}
	n := int(b[0])
	if len(b) < 1+n {
		return "", nil, false
	}
	return string(b[1 : 1+n]), b[1+n:], true
}

// validate checks the fields a decoder accepts.
func (mm memberMeta) validate() error {
	if !mm.Role.valid() {
		return fmt.Errorf("%w: unknown role %d", ErrInvalidMeta, uint8(mm.Role))
	}
	if !mm.State.valid() {
		return fmt.Errorf("%w: unknown state %d", ErrInvalidMeta, uint8(mm.State))
	}
	for _, a := range []struct{ name, v string }{{"HTTP address", mm.HTTPAddr}, {"replication address", mm.ReplAddr}} {
		if a.v == "" {
			if mm.Role == RoleNode {
				return fmt.Errorf("%w: a node needs a %s", ErrInvalidMeta, a.name)
			}
			continue
		}
		if err := checkHostPort(a.v); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidMeta, a.name, err)
		}
	}
	return nil
}

// checkHostPort accepts "host:port" with a non-empty host of printable
// ASCII and a port in 1-65535: an address another machine can dial.
func checkHostPort(s string) error {
	if len(s) > maxMetaAddrLen {
		return fmt.Errorf("%d bytes, at most %d", len(s), maxMetaAddrLen)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port", s)
	}
	if host == "" {
		return fmt.Errorf("%q: empty host (others cannot dial it; give an address or name)", s)
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%q: host has a space, control or non-ASCII byte", s)
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("%q: port must be 1-65535", s)
	}
	return nil
}
