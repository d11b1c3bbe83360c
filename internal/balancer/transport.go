package balancer

import (
	"log/slog"

	"github.com/shoal-go/shoal/ajp"
	"net"
	"net/http"
	"time"
)

// Transport and server settings that are not worth a flag.
const (
	// maxIdleConnsPerMember is how many idle keep-alive connections to one
	// member are kept for reuse: enough for a load generator's hundreds of
	// concurrent clients not to open and close a connection per request.
	maxIdleConnsPerMember = 256
	// idleConnTimeout closes an idle connection to a member after it.
	idleConnTimeout = 90 * time.Second
	// tcpKeepAlive is the period of TCP keep-alive probes to members.
	tcpKeepAlive = 30 * time.Second

	// idleTimeout closes idle client connections. There is no read or
	// write timeout: bodies may stream and WebSockets may stay open.
	idleTimeout = 2 * time.Minute
)

// readHeaderTimeout bounds how long a client may take to send a
// request's headers (slowloris). A variable for tests.
var readHeaderTimeout = 10 * time.Second

// newTransport returns the one transport to all members: HTTP/1.1,
// keep-alive pools sized for load, the connect and response header
// timeouts of cfg, no environment proxy, and no transparent gzip (the
// proxy passes bodies as they are).
func newTransport(cfg *Config) *http.Transport {
	d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: tcpKeepAlive}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	t := &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConnsPerHost:   maxIdleConnsPerMember,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		Protocols:             &protocols,
	}
	// ajp:// members: the same requests over AJP/1.3, pooled by the ajp
	// package's Transport (which bounds the wait for headers by the
	// request's context, as ReverseProxy's attempts set it).
	t.RegisterProtocol("ajp", &ajp.Transport{Secret: cfg.AJPSecret, DialContext: d.DialContext,
		MaxIdleConnsPerHost: maxIdleConnsPerMember, IdleConnTimeout: idleConnTimeout})
	return t
}

// NewServer returns an http.Server for h that speaks HTTP/1.1, HTTP/2
// over TLS (when served with TLS) and unencrypted HTTP/2 with prior
// knowledge (h2c), with the header and idle timeouts of a proxy. Errors
// of the server go to log at warning level; nil means they are dropped.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
