package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/shoal-go/shoal/session"
)

var (
	_ Message = (*Hello)(nil)
	_ Message = (*Create)(nil)
	_ Message = (*Apply)(nil)
	_ Message = (*Forward)(nil)
	_ Message = (*Delete)(nil)
	_ Message = (*Fetch)(nil)
	_ Message = (*Records)(nil)
	_ Message = (*Expired)(nil)
	_ Message = (*Ack)(nil)
	_ Message = (*Ping)(nil)
	_ Message = (*Pong)(nil)
	_ Message = (*Pull)(nil)
)

// Hello is the first frame each side sends on a connection. Its layout
// never changes, so that any two versions can read each other's Hello.
type Hello struct {
	// Protocol is the sender's ProtocolVersion.
	Protocol uint16
	// Cluster names the cluster; a node refuses a peer of another one.
	Cluster string
	// Node is the sender's name (its route).
	Node string
	// Role is the sender's role on the connection, defined by the
	// replication layer.
	Role uint8
}

// Type returns TypeHello.
func (*Hello) Type() Type { return TypeHello }

// AppendTo appends Protocol (uvarint), Cluster, Node (strings), Role (byte).
func (m *Hello) AppendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(m.Protocol))
	b = appendString(b, m.Cluster)
	b = appendString(b, m.Node)
	return append(b, m.Role)
}

func (m *Hello) size() int {
	return uvarintLen(uint64(m.Protocol)) + stringLen(m.Cluster) + stringLen(m.Node) + 1
}

func (m *Hello) decode(d *decoder) {
	m.Protocol = d.uint16("Protocol")
	m.Cluster = d.string(MaxNameLen, "Cluster")
	m.Node = d.string(MaxNameLen, "Node")
	m.Role = d.byte("Role")
}

// Create asks a backup to hold a new session.
type Create struct {
	// Rec is the session; Rec.Version is the version the primary assigned.
	Rec session.Record
}

// Type returns TypeCreate.
func (*Create) Type() Type { return TypeCreate }

// AppendTo appends the record.
func (m *Create) AppendTo(b []byte) []byte { return appendRecord(b, &m.Rec) }

func (m *Create) size() int { return RecordSize(&m.Rec) }

func (m *Create) decode(d *decoder) { d.record(&m.Rec) }

// Apply, from a session's primary to a backup, applies Delta to the
// session under Key, bringing it to Version.
type Apply struct {
	Key     string
	Delta   session.Delta
	Version uint64
}

// Type returns TypeApply.
func (*Apply) Type() Type { return TypeApply }

// AppendTo appends Key, Delta, Version (uvarint).
func (m *Apply) AppendTo(b []byte) []byte {
	b = appendString(b, m.Key)
	b = appendDelta(b, &m.Delta)
	return binary.AppendUvarint(b, m.Version)
}

func (m *Apply) size() int {
	return stringLen(m.Key) + deltaLen(&m.Delta) + uvarintLen(m.Version)
}

func (m *Apply) decode(d *decoder) {
	m.Key = d.key("Key")
	d.delta(&m.Delta)
	m.Version = d.uvarint("Version")
}

// Forward, from a node that does not own a session to its primary, asks
// the primary to commit Delta to the session under Key; the reply is an
// Ack carrying the new version.
type Forward struct {
	Key   string
	Delta session.Delta
}

// Type returns TypeForward.
func (*Forward) Type() Type { return TypeForward }

// AppendTo appends Key, Delta.
func (m *Forward) AppendTo(b []byte) []byte {
	b = appendString(b, m.Key)
	return appendDelta(b, &m.Delta)
}

func (m *Forward) size() int { return stringLen(m.Key) + deltaLen(&m.Delta) }

func (m *Forward) decode(d *decoder) {
	m.Key = d.key("Key")
	d.delta(&m.Delta)
}

// Delete removes the session under Key.
type Delete struct {
	Key string
	// Reason says why, as defined by the replication layer.
	Reason uint8
	// Version is the session's version when it was deleted.
	Version uint64
}

// Type returns TypeDelete.
func (*Delete) Type() Type { return TypeDelete }

// AppendTo appends Key, Reason (byte), Version (uvarint).
func (m *Delete) AppendTo(b []byte) []byte {
	b = appendString(b, m.Key)
	b = append(b, m.Reason)
	return binary.AppendUvarint(b, m.Version)
}

func (m *Delete) size() int { return stringLen(m.Key) + 1 + uvarintLen(m.Version) }

func (m *Delete) decode(d *decoder) {
	m.Key = d.key("Key")
	m.Reason = d.byte("Reason")
	m.Version = d.uvarint("Version")
}

// Fetch asks for the session under Key; the reply is Records with zero
// records (not found) or one.
type Fetch struct {
	Key string
}

// Type returns TypeFetch.
func (*Fetch) Type() Type { return TypeFetch }

// AppendTo appends Key.
func (m *Fetch) AppendTo(b []byte) []byte { return appendString(b, m.Key) }

func (m *Fetch) size() int { return stringLen(m.Key) }

func (m *Fetch) decode(d *decoder) { m.Key = d.key("Key") }

// Records is a batch of whole sessions: state transfer to a joining node,
// re-replication after a node's death, the reply to Fetch.
type Records struct {
	Recs []session.Record
	// Last marks the final batch of a transfer.
	Last bool
}

// Type returns TypeRecords.
func (*Records) Type() Type { return TypeRecords }

// AppendTo appends Last (byte), the number of records (uvarint), the
// records.
func (m *Records) AppendTo(b []byte) []byte {
	b = appendBool(b, m.Last)
	b = binary.AppendUvarint(b, uint64(len(m.Recs)))
	for i := range m.Recs {
		b = appendRecord(b, &m.Recs[i])
	}
	return b
}

func (m *Records) size() int {
	n := 1 + uvarintLen(uint64(len(m.Recs)))
	for i := range m.Recs {
		n += RecordSize(&m.Recs[i])
	}
	return n
}

func (m *Records) decode(d *decoder) {
	m.Last = d.bool("Last")
	n := d.count(MaxBatch, minRecordLen, "Recs")
	m.Recs = nil
	if d.fill && n > 0 {
		m.Recs = make([]session.Record, n)
	}
	var scratch session.Record // the first pass's destination
	for i := 0; i < n && d.err == nil; i++ {
		r := &scratch
		if d.fill {
			r = &m.Recs[i]
		}
		d.ownRecord(r)
	}
}

// Expired tells a session's copies that its primary expired it.
type Expired struct {
	Keys []string
}

// Type returns TypeExpired.
func (*Expired) Type() Type { return TypeExpired }

// AppendTo appends the number of keys (uvarint), the keys.
func (m *Expired) AppendTo(b []byte) []byte { return appendStrings(b, m.Keys) }

func (m *Expired) size() int { return stringsLen(m.Keys) }

func (m *Expired) decode(d *decoder) {
	n := d.count(MaxBatch, 2, "Keys")
	m.Keys = nil
	if d.fill && n > 0 {
		m.Keys = make([]string, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		k := d.key("Keys")
		if d.fill {
			m.Keys[i] = k
		}
	}
}

// Status is the outcome an Ack reports.
type Status uint8

// Statuses.
const (
	// StatusOK: done; Ack.Version is the session's version after it.
	StatusOK Status = iota
	// StatusNotFound: no session under the key.
	StatusNotFound
	// StatusExists: the key (Create's, or Delta.NewKey) is taken.
	StatusExists
	// StatusStale: the receiver holds a newer version than the request
	// assumes; Ack.Version is the receiver's.
	StatusStale
	// StatusNeedFull: the receiver cannot apply the delta (it lacks the
	// session or missed versions); send the whole record.
	StatusNeedFull
	// StatusRefused: the receiver will not serve the request (not an
	// owner, another cluster or protocol, shutting down); Ack.Message says
	// why.
	StatusRefused
	// StatusError: anything else; Ack.Message says what.
	StatusError
	statusEnd
)

var statusNames = [...]string{
	StatusOK:       "OK",
	StatusNotFound: "NotFound",
	StatusExists:   "Exists",
	StatusStale:    "Stale",
	StatusNeedFull: "NeedFull",
	StatusRefused:  "Refused",
	StatusError:    "Error",
}

// String returns the status's name, or "Status(0x2a)" for an unknown one.
func (s Status) String() string {
	if s < statusEnd {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(0x%02x)", uint8(s))
}

// Ack is the reply to a request (but Fetch, answered by Records, and Ping,
// answered by Pong).
type Ack struct {
	Status  Status
	Version uint64
	Message string
}

// Type returns TypeAck.
func (*Ack) Type() Type { return TypeAck }

// AppendTo appends Status (byte), Version (uvarint), Message.
func (m *Ack) AppendTo(b []byte) []byte {
	b = append(b, byte(m.Status))
	b = binary.AppendUvarint(b, m.Version)
	return appendString(b, m.Message)
}

func (m *Ack) size() int { return 1 + uvarintLen(m.Version) + stringLen(m.Message) }

func (m *Ack) decode(d *decoder) {
	m.Status = Status(d.byte("Status"))
	if d.err == nil && m.Status >= statusEnd {
		d.fail("Status: unknown status %d", uint8(m.Status))
	}
	m.Version = d.uvarint("Version")
	m.Message = d.string(MaxMessageLen, "Message")
}

// Ping asks the peer for a Pong, to check an idle connection.
type Ping struct{}

// Type returns TypePing.
func (*Ping) Type() Type { return TypePing }

// AppendTo appends nothing: the payload is empty.
func (*Ping) AppendTo(b []byte) []byte { return b }

func (*Ping) size() int { return 0 }

func (*Ping) decode(*decoder) {}

// Pong answers a Ping, with the Ping's request id.
type Pong struct{}

// Type returns TypePong.
func (*Pong) Type() Type { return TypePong }

// AppendTo appends nothing: the payload is empty.
func (*Pong) AppendTo(b []byte) []byte { return b }

func (*Pong) size() int { return 0 }

func (*Pong) decode(*decoder) {}

// MaxPullPart bounds Pull.Part: a transfer is cut into at most this many
// parts, each answered by one Records.
const MaxPullPart = 1 << 16

// Pull is a joining node's request for the sessions it will own: the
// receiver answers with Records holding part Part of them (the receiver
// decides how it cuts its sessions into parts) and Last set on the final
// part. Node is the joining node's name.
type Pull struct {
	Node string
	Part uint32
}

// Type returns TypePull.
func (*Pull) Type() Type { return TypePull }

// AppendTo appends Node, Part (uvarint).
func (m *Pull) AppendTo(b []byte) []byte {
	b = appendString(b, m.Node)
	return binary.AppendUvarint(b, uint64(m.Part))
}

func (m *Pull) size() int { return stringLen(m.Node) + uvarintLen(uint64(m.Part)) }

func (m *Pull) decode(d *decoder) {
	m.Node = d.string(MaxNameLen, "Node")
	part := d.uvarint("Part")
	if d.err == nil && part >= MaxPullPart {
		d.fail("Part: %d over the limit of %d", part, MaxPullPart)
	}
	m.Part = uint32(part)
}
