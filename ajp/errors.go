package ajp

import "errors"

// Errors of the protocol layer. Every error a malformed packet causes
// wraps exactly one of the first four (errors.Is), with the detail of
// what was wrong and where in the packet.
var (
	// ErrBadMagic: a packet does not start with the magic bytes of its
	// direction (0x12 0x34 towards the container, 'A' 'B' towards the
	// web server). The peer does not speak AJP/1.3, or the stream lost
	// its framing.
	ErrBadMagic = errors.New("ajp: bad packet magic")

	// ErrPacketTooLarge: a packet's length exceeds the packet size
	// (Server.PacketSize, Transport.PacketSize), on read or on write.
	ErrPacketTooLarge = errors.New("ajp: packet too large")

	// ErrTruncated: the connection ended inside a packet.
	ErrTruncated = errors.New("ajp: truncated packet")

	// ErrMalformed: a packet is complete but its content is not valid:
	// a length that runs past the packet's end or does not match it, a
	// string without its NUL terminator, a missing 0xFF terminator, an
	// unknown code, a header name or value that is not valid HTTP, or a
	// packet that is not allowed at this point of the exchange.
	ErrMalformed = errors.New("ajp: malformed packet")

	// ErrNoSecret is returned by Server.Serve when neither Secret nor
	// InsecureNoSecret is set: an AJP port without a secret lets anyone
	// who reaches it claim any client address, user and TLS state
	// (CVE-2020-1938, "Ghostcat").
	ErrNoSecret = errors.New("ajp: no Secret set (set Server.Secret, or InsecureNoSecret for loopback tests)")

	// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
	ErrServerClosed = errors.New("ajp: server closed")
)
