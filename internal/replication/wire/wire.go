package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ProtocolVersion is the version of the frame format and message set this
// package speaks, sent in Hello.Protocol.
const ProtocolVersion = 2

// Limits checked by Decode (and so by Writer.Send and Validate, which run
// the same checks before a frame leaves the node).
const (
	// MaxFrameSize is the default limit on a frame's length field: the
	// bytes after it (type, request id and payload).
	MaxFrameSize = 16 << 20
	// MaxKeyLen limits session keys (Record.Key, Apply.Key, Delta.NewKey,
	// Fetch.Key, Expired.Keys...). Session id bases are at most 128.
	MaxKeyLen = 256
	// MaxAttrKeyLen limits attribute keys.
	MaxAttrKeyLen = 256
	// MaxNameLen limits Hello.Cluster and Hello.Node.
	MaxNameLen = 256
	// MaxMessageLen limits Ack.Message.
	MaxMessageLen = 64 << 10
	// MaxAttrs limits the attributes of a record and the attributes set,
	// and separately removed, by a delta.
	MaxAttrs = 10_000
	// MaxBatch limits the records of a Records message and the keys of an
	// Expired message.
	MaxBatch = 10_000
)

// Errors returned by this package; each is wrapped with details, so test
// with errors.Is.
var (
	// ErrMalformed is wrapped by every Decode error about a payload: a
	// truncated or lying length, a limit exceeded, unsorted attributes,
	// trailing bytes. Validate and Writer.Send wrap it too.
	ErrMalformed = errors.New("wire: malformed message")
	// ErrUnknownType is wrapped by Decode when the type byte names no
	// message of this protocol version.
	ErrUnknownType = errors.New("wire: unknown message type")
	// ErrFrameTooLarge is returned by Reader.ReadFrame for a frame whose
	// length field is over the Reader's limit (before reading the body),
	// and by Writer.Send and Validate for a frame over the limit.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrMalformedFrame is returned by Reader.ReadFrame for a frame whose
	// header is broken: a non-minimal or overflowing varint, an empty body.
	ErrMalformedFrame = errors.New("wire: malformed frame")
	// ErrQueueFull is returned by Writer.Send when the frames waiting to
	// be written exceed the Writer's limit: the peer is not reading.
	ErrQueueFull = errors.New("wire: writer queue full (peer not reading)")
)

// Type is a message type: the byte after a frame's length.
type Type uint8

// Message types. Zero is never a valid type.
const (
	TypeHello Type = iota + 1
	TypeCreate
	TypeApply
	TypeForward
	TypeDelete
	TypeFetch
	TypeRecords
	TypeExpired
	TypeAck
	TypePing
	TypePong
	TypePull
	typeEnd // one past the last type
)

var typeNames = [...]string{
	TypeHello:   "Hello",
	TypeCreate:  "Create",
	TypeApply:   "Apply",
	TypeForward: "Forward",
	TypeDelete:  "Delete",
	TypeFetch:   "Fetch",
	TypeRecords: "Records",
	TypeExpired: "Expired",
	TypeAck:     "Ack",
	TypePing:    "Ping",
	TypePong:    "Pong",
	TypePull:    "Pull",
}

// String returns the message type's name, or "Type(0x2a)" for a byte that
// names no type.
func (t Type) String() string {
	if t > 0 && t < typeEnd {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(0x%02x)", uint8(t))
}

// Message is one of the message types of this package: *Hello, *Create,
// *Apply, *Forward, *Delete, *Fetch, *Records, *Expired, *Ack, *Ping,
// *Pong, *Pull. Messages are used by pointer; Decode returns pointers.
type Message interface {
	// Type returns the message's type.
	Type() Type
	// AppendTo appends the message's payload encoding to b and returns the
	// extended slice. It does not check limits: see Validate.
	AppendTo(b []byte) []byte
	// size returns the length of the payload AppendTo appends.
	size() int
	// decode reads the payload; see decoder.
	decode(d *decoder)
}

// Frame is one frame as read from a connection: its type, request id and
// undecoded payload.
type Frame struct {
	Type Type
	// ID matches a reply to its request: a reply carries the id of the
	// request it answers. Ids are chosen by the requesting side of a
	// connection.
	ID      uint64
	Payload []byte
}

// AppendFrame appends the frame carrying m with request id id to b and
// returns the extended slice. It allocates at most once, and not at all if
// b has the capacity. It does not check limits: Writer.Send does, and
// Validate can.
func AppendFrame(b []byte, id uint64, m Message) []byte {
	n := 1 + uvarintLen(id) + m.size()
	b = slices.Grow(b, uvarintLen(uint64(n))+n)
	b = binary.AppendUvarint(b, uint64(n))
	b = append(b, byte(m.Type()))
	b = binary.AppendUvarint(b, id)
	return m.AppendTo(b)
}

// newMessage returns a new zero message of type t, or nil.
func newMessage(t Type) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeCreate:
		return new(Create)
	case TypeApply:
		return new(Apply)
	case TypeForward:
		return new(Forward)
	case TypeDelete:
		return new(Delete)
	case TypeFetch:
		return new(Fetch)
	case TypeRecords:
		return new(Records)
	case TypeExpired:
		return new(Expired)
	case TypeAck:
		return new(Ack)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypePull:
		return new(Pull)
	}
	return nil
}

// Decode decodes the payload of a message of type t. It checks every
// length against the package's limits and the bytes present before
// allocating, and refuses a payload with bytes after the message.
//
// The result does not alias payload: strings and attribute values are
// copied, so the caller may reuse payload (a Reader's buffer). The copies
// are made into one block for the strings and one for the attribute values
// of the message (of each record, for Records), so a value kept from a
// decoded message keeps that block alive.
func Decode(t Type, payload []byte) (Message, error) {
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("%w %s", ErrUnknownType, t)
	}
	// First pass: validate everything and size the copies, allocating
	// nothing. Second pass: allocate and fill.
	d := decoder{typ: t, all: payload, b: payload}
	if err := d.run(m); err != nil {
		return nil, err
	}
	fill := decoder{typ: t, all: payload, b: payload, fill: true}
	fill.alloc(d.nstr, d.nval)
	if err := fill.run(m); err != nil {
		return nil, err // cannot happen: the first pass checked
	}
	return m, nil
}

// Validate reports whether m would be accepted by a peer's Decode, and its
// frame by a Reader with the default MaxFrameSize, with the error Decode
// would give. It encodes m (one allocation).
func Validate(m Message) error {
	return validate(m, AppendFrame(nil, 0, m), MaxFrameSize)
}

// validate checks frame, the encoding of m, against max and Decode's rules.
func validate(m Message, frame []byte, max int) error {
	n, k := binary.Uvarint(frame)
	if n > uint64(max) {
		return fmt.Errorf("%w: %s frame of %d bytes, over the limit of %d", ErrFrameTooLarge, m.Type(), n, max)
	}
	body := frame[k+1:]
	_, k = binary.Uvarint(body)
	d := decoder{typ: m.Type(), all: body[k:], b: body[k:]}
	return d.run(newMessage(m.Type()))
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
