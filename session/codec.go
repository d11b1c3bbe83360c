package session

import (
	"fmt"
	"strings"
)

// Codec turns attribute values into bytes and back. Implementations must
// be safe for concurrent use. Unmarshal must not keep data after it
// returns, and must refuse (not panic on) any input: values may come from
// another node or from Redis.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// EncodeError is returned by Session.Put for a value that cannot be
// stored. It names the session key, the Go type of the value and the path
// to the part that fails, so that the put, not a later replication, is
// where the problem shows.
type EncodeError struct {
	Key       string // the session key passed to Put
	Type      string // the Go type of the value passed to Put, e.g. "main.Cart"
	Path      string // where in the value it fails, e.g. ".Items[0].OnChange"; empty for the value itself
	FieldType string // the Go type found at Path, e.g. "func()"
	Reason    string // why it cannot be encoded
	Err       error  // the codec's error, if the codec refused the value
}

func (e *EncodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "session: cannot put key %q: value of type %s", e.Key, e.Type)
	if e.Path != "" {
		fmt.Fprintf(&b, ", field %s", e.Path)
		if e.FieldType != "" {
			fmt.Fprintf(&b, " (%s)", e.FieldType)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

func (e *EncodeError) Unwrap() error { return e.Err }
