package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
)

// basicUser is the user name of basic authentication.
const basicUser = "admin"

// maxTokenBytes bounds a token file.
const maxTokenBytes = 4 << 10

// authenticate checks the request's credentials: a bearer token, or
// basic authentication as basicUser with the token as password.
func (h *Handler) authenticate(r *http.Request) (authMethod, bool) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return 0, false
	}
	if scheme, token, ok := strings.Cut(authz, " "); ok && strings.EqualFold(scheme, "Bearer") {
		if h.tokenOK(strings.TrimSpace(token)) {
			return authBearer, true
		}
	} else if user, pass, ok := r.BasicAuth(); ok {
		userOK := subtle.ConstantTimeCompare([]byte(user), []byte(basicUser)) == 1
		if h.tokenOK(pass) && userOK {
			return authBasic, true
		}
	}
	h.log.Warn("manager refused credentials", slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method), slog.String("path", r.URL.Path))
	return 0, false
}

// tokenOK compares got with the token in constant time: it compares
// their SHA-256 digests, so that neither the token's bytes nor its length
// show in the time it takes.
func (h *Handler) tokenOK(got string) bool {
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], h.tokenHash[:]) == 1
}

// checkToken reports whether a token is usable: not empty, and only
// printable ASCII without spaces, so that it travels in a header.
func checkToken(token string) error {
	if token == "" {
		return errors.New("is empty")
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return errors.New("has a space, a control or a non-ASCII character: want printable ASCII, such as the output of `openssl rand -base64 32`")
		}
	}
	return nil
}

// ReadTokenFile reads the manager's token from path: the whole file,
// trimmed of surrounding white space. It refuses a file that group or
// others may read or write, an empty token and a token that cannot
// travel in a header. Its errors name the file and say what to do.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s is open to group or others (mode %04o): it holds the manager's secret; run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("%s is over %d bytes: want one token", path, maxTokenBytes)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("%s is empty: put a token in it, such as the output of `openssl rand -base64 32`", path)
	}
	if err := checkToken(token); err != nil {
		return "", fmt.Errorf("the token in %s %w", path, err)
	}
	return token, nil
}

// IsLoopback reports whether addr (host:port) names a loopback address:
// an IP in 127.0.0.0/8 or ::1, or "localhost". An empty host (every
// interface) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
