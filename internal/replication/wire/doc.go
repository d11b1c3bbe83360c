// Package wire is the binary frame format nodes use to replicate sessions
// to each other over persistent (TLS) TCP connections: framing, the
// message types, and a batching Writer and a Reader for a connection.
//
// # Frames
//
// A connection carries frames back to back, in both directions:
//
//	length      uvarint   bytes after this field: 1 + len(id) + len(payload); 1 to the limit
//	type        1 byte    the message type (TypeHello ... TypePong); 0 is never valid
//	request id  uvarint   matches replies to requests, so a connection pipelines
//	payload     length-1-len(id) bytes, the message (below)
//
// The length is a uvarint (1 byte for frames under 128 bytes, 2 under 16
// KiB) rather than a fixed 4 bytes: most frames are small deltas. A
// Reader refuses a length over its limit (MaxFrameSize by default) before
// reading the body. Both sides of a connection send requests on it: the
// side that dialed picks odd request ids, the side that accepted even
// ones (0 is Hello's); a reply (Ack, Records for Fetch, Pong) carries the
// id of the request it answers. So the parity of a received frame's id
// tells a reply to one's own request from the peer's request, and two
// nodes need one connection between them, not one each way (protocol
// version 2; in version 1 only the dialing side sent requests).
//
// # Field encodings
//
//	uvarint   unsigned LEB128 as in encoding/binary, minimal: an overlong form is refused,
//	          so a message has exactly one encoding
//	string    uvarint length, then the bytes (also attribute values)
//	byte      1 byte; a bool is a byte 0 or 1
//	time      uvarint: 0 for the zero time.Time, else zigzag(Unix milliseconds) + 1;
//	          decoded in UTC at millisecond precision (sub-millisecond parts are dropped)
//	duration  uvarint zigzag(nanoseconds): exact, negative, zero and positive
//	attrs     uvarint count, then count × (key string, value string), keys strictly
//	          increasing (sorted, no duplicates), as session.Record.Attrs and Delta.Set are
//	record    Key string, Attrs attrs, Created time, LastAccess time, IdleTimeout duration,
//	          AbsoluteDeadline time, Version uvarint
//	delta     Set attrs, Removed (uvarint count, strings strictly increasing, none in Set),
//	          Access time, IdleTimeout duration, NewKey string (empty: none), BaseVersion uvarint
//
// (zigzag maps 0, -1, 1, -2 ... to 0, 1, 2, 3 ...)
//
// # Messages
//
//	type  message   payload                                   direction
//	1     Hello     Protocol uvarint, Cluster string,         each side, first frame
//	                Node string, Role byte
//	2     Create    record                                    primary → backup
//	3     Apply     Key string, delta, Version uvarint        primary → backup
//	4     Forward   Key string, delta                         non-owner → primary; reply Ack with the version
//	5     Delete    Key string, Reason byte, Version uvarint  to a session's other owners
//	6     Fetch     Key string                                any → owner; reply Records of 0 or 1
//	7     Records   Last byte, uvarint count, count × record  state transfer, re-replication, Fetch reply
//	8     Expired   uvarint count, count × Key string         primary → backups
//	9     Ack       Status byte, Version uvarint,             reply to a request
//	                Message string
//	10    Ping      (empty)                                   either way, on an idle connection
//	11    Pong      (empty)                                   reply to Ping
//
// Session keys are never empty (but Delta.NewKey may be). For example an
// Apply that sets one attribute "count" to the 1-byte value 0x02 on a
// session with a 24-character key, request id 7:
//
//	2f             length 47 (a 48-byte frame)
//	03             type Apply
//	07             request id
//	18 <24 bytes>  Key
//	01             Delta.Set: 1 attribute
//	05 "count"     key
//	01 02          value
//	00             Delta.Removed: none
//	<6 bytes>      Delta.Access (2026 in ms: 6 bytes)
//	00             Delta.IdleTimeout: unchanged
//	00             Delta.NewKey: none
//	01             Delta.BaseVersion
//	02             Version
//
// # Limits
//
// Decode checks every length and count against the limits (MaxKeyLen,
// MaxAttrKeyLen, MaxNameLen, MaxMessageLen, MaxAttrs, MaxBatch) and
// against the bytes left before it allocates anything, and refuses
// trailing bytes; Reader refuses frames over its limit. Attribute values
// are limited only by the frame. Allocation is bounded by the bytes
// present, with the Go structures' overhead: at worst about 20 times the
// payload (a 40-byte session.Attr for each 2-byte empty attribute). Writer.Send and Validate apply the same
// checks to outgoing messages, so a message the peer would refuse fails
// at the sender, with an error naming the field.
//
// # Versions
//
// Hello.Protocol carries ProtocolVersion. Hello's layout never changes, so
// any two versions can read each other's Hello; everything after it is
// spoken at one version, and a node that does not speak its peer's replies
// Ack{Status: StatusRefused} naming the versions it speaks, and closes.
// A change to any other message's layout, a new message type or a new
// Status is a new ProtocolVersion. Decode refuses a message type it does
// not know with an error wrapping ErrUnknownType that names the type byte.
//
// # Decoded messages
//
// Decode copies: nothing in a decoded message aliases the payload, so a
// Reader's buffer can be reused. The strings of a message share one
// allocation and its attribute values another (for Records, each record
// has its own pair), so decoding an Apply costs a handful of allocations
// whatever its attribute count; a value kept from a decoded message keeps
// its block alive.
package wire
