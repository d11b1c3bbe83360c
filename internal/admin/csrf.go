package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"
)

// nonceTTL is how long a form nonce is accepted after the page was
// rendered.
const nonceTTL = time.Hour

// Layout of a nonce, before base64url: expiry (unix seconds, big
// endian), random bytes, then the MAC of both.
const (
	nonceExpiryLen = 8
	nonceRandLen   = 16
	nonceMACLen    = sha256.Size
	nonceLen       = nonceExpiryLen + nonceRandLen + nonceMACLen
	// flashMACLen is how much of a flash message's MAC is kept.
	flashMACLen = 16
)

// keys are the manager's per-process secrets for form nonces and flash
// messages. They are random at start, so a restart invalidates every
// nonce a page holds.
type keys struct {
	mac [32]byte
}

func newKeys() *keys {
	k := &keys{}
	rand.Read(k.mac[:]) // never fails (crypto/rand)
	return k
}

// sum returns HMAC-SHA256(key, purpose ‖ 0 ‖ parts joined by 0).
func (k *keys) sum(purpose string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, k.mac[:])
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write(p)
	}
	return m.Sum(nil)
}

// issueNonce returns a fresh nonce for a form that changes the member of
// route, valid until now+nonceTTL.
func (k *keys) issueNonce(route string, now time.Time) string {
	var b [nonceLen]byte
	binary.BigEndian.PutUint64(b[:nonceExpiryLen], uint64(now.Add(nonceTTL).Unix()))
	rand.Read(b[nonceExpiryLen : nonceExpiryLen+nonceRandLen])
	copy(b[nonceExpiryLen+nonceRandLen:], k.sum("nonce", []byte(route), b[:nonceExpiryLen+nonceRandLen]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validNonce reports whether nonce was issued by issueNonce for route and
// has not expired at now. The MAC is compared with hmac.Equal.
func (k *keys) validNonce(nonce, route string, now time.Time) bool {
	if base64.RawURLEncoding.DecodedLen(len(nonce)) != nonceLen {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceLen {
		return false
	}
	body, mac := b[:nonceExpiryLen+nonceRandLen], b[nonceExpiryLen+nonceRandLen:]
	if !hmac.Equal(mac, k.sum("nonce", []byte(route), body)) {
		return false
	}
	expiry := int64(binary.BigEndian.Uint64(body[:nonceExpiryLen]))
	return now.Unix() < expiry
}

// signFlash returns msg (an error if isErr) with its MAC, for the page's
// flash parameter after a change: the page shows only messages it
// signed, so a link cannot make it say something else.
func (k *keys) signFlash(msg string, isErr bool) string {
	b := append([]byte{'o'}, msg...)
	if isErr {
		b[0] = 'e'
	}
	mac := k.sum("flash", b)[:flashMACLen]
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(mac)
}

// openFlash returns the message of a signed flash parameter, and whether
// it is an error; "" if param is not one.
func (k *keys) openFlash(param string) (msg string, isErr bool) {
	enc, encMAC, ok := strings.Cut(param, ".")
	if !ok {
		return "", false
	}
	b, err1 := base64.RawURLEncoding.DecodeString(enc)
	mac, err2 := base64.RawURLEncoding.DecodeString(encMAC)
	if err1 != nil || err2 != nil || len(b) == 0 || !hmac.Equal(mac, k.sum("flash", b)[:flashMACLen]) {
		return "", false
	}
	return string(b[1:]), b[0] == 'e'
}
