package membership

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// KeySize is the length of a cluster key in bytes: memberlist uses it as
// an AES-256-GCM key for every gossip packet and stream.
const KeySize = 32

// GenerateKey returns a new random cluster key of KeySize bytes.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("membership: generate key: %w", err)
	}
	return k, nil
}

// EncodeKey returns the text form of a key, as key files hold it: standard
// base64 (with padding), without a newline.
func EncodeKey(k []byte) string {
	return base64.StdEncoding.EncodeToString(k)
}

// ParseKey parses the text form of a cluster key: standard base64 of
// exactly KeySize bytes. Surrounding white space, such as the newline an
// editor or `echo` leaves at the end of a key file, is ignored. Errors
// wrap ErrInvalidKey and say what is wrong, never the key itself.
func ParseKey(text string) ([]byte, error) {
	t := strings.TrimSpace(text)
	if t == "" {
		return nil, fmt.Errorf("%w: empty (want base64 of %d bytes; `shoal` can generate one)", ErrInvalidKey, KeySize)
	}
	k, err := base64.StdEncoding.Strict().DecodeString(t)
	if err != nil {
		hint := ""
		if strings.ContainsAny(t, "-_") {
			hint = " (looks like URL-safe base64; use standard base64 with + and /)"
		} else if strings.ContainsAny(t, " \t\r\n") {
			hint = " (white space inside the key)"
		}
		return nil, fmt.Errorf("%w: not standard base64%s: %v", ErrInvalidKey, hint, err)
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("%w: decodes to %d bytes, want exactly %d (AES-256)", ErrInvalidKey, len(k), KeySize)
	}
	return k, nil
}

// LoadKeyFile reads a key file written with EncodeKey (a trailing newline
// is fine). Like an SSH private key, the file must not be readable or
// writable by others, nor writable by its group: it refuses such a file
// with ErrKeyFileMode and the chmod that fixes it. Group-readable (0640)
// is allowed so that a service group can share the key. The mode is not
// checked on Windows, where it does not describe access.
func LoadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("membership: cluster key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("membership: cluster key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("membership: cluster key file %s: not a regular file", path)
	}
	if runtime.GOOS != "windows" {
		if perm := fi.Mode().Perm(); perm&0o027 != 0 {
			return nil, fmt.Errorf("%w: %s has mode %#o (group-writable or accessible by others); run: chmod 600 %s",
				ErrKeyFileMode, path, perm, path)
		}
	}
	// A key file is 45 bytes; read a little more to report a wrong file
	// clearly without reading a huge one.
	const limit = 4096
	buf, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("membership: cluster key file %s: %w", path, err)
	}
	if len(buf) == limit {
		return nil, fmt.Errorf("membership: cluster key file %s: %w: %d bytes or more; a key file holds one base64 line", path, ErrInvalidKey, limit)
	}
	k, err := ParseKey(string(buf))
	if err != nil {
		return nil, fmt.Errorf("membership: cluster key file %s: %w", path, err)
	}
	return k, nil
}
