// Package ajp speaks AJP/1.3, the binary protocol between Apache httpd
// (mod_proxy_ajp, mod_jk) and servlet containers such as Tomcat, so that
// a Go application can take a Tomcat's place behind an existing Apache,
// and a Go proxy can talk to existing Tomcats.
//
// It has three parts:
//
//   - the codec: ReadPacket and the Parse/Append functions of every
//     packet (forward request 0x02, body data, send headers 0x04, send
//     body chunk 0x03, get body chunk 0x06, end response 0x05, CPing
//     0x0A and CPong 0x09), the request attributes (route, secret,
//     remote user, auth type, query string, the SSL attributes,
//     req_attribute pairs, stored method) and the coded header names
//     (request 0xA001-0xA00E, response 0xA001-0xA00B);
//   - Server, which serves any http.Handler over AJP, as a servlet
//     container does;
//   - Transport, an http.RoundTripper for ajp:// URLs, as mod_proxy_ajp
//     is, with a connection pool and a CPing health probe (Ping).
//
// # What it promises
//
// Every packet is bounded by the packet size (DefaultPacketSize, 8192
// bytes, as Tomcat and Apache httpd; up to MaxPacketSize), checked before
// its payload is read. Every malformed packet is refused with an error
// that wraps ErrBadMagic, ErrPacketTooLarge, ErrTruncated or ErrMalformed
// and says what was wrong: a length that runs past the packet or does
// not match it, a string without its NUL, a missing 0xFF terminator, an
// unknown code, a header name that is not a token or a value with CR or
// LF. A malformed or hostile peer costs its own connection, nothing
// else. The decoders are fuzzed (testdata/fuzz).
//
// Server requires a Secret unless told otherwise (InsecureNoSecret): an
// AJP port is trusted with the client's address, user and TLS state, and
// an AJP port open without a secret was CVE-2020-1938 ("Ghostcat"). A
// request without the secret, or with a wrong one, is answered 403,
// logged with the peer's address, and its connection closed. Every
// response starts with its own SEND_HEADERS, built from nothing but that
// response, even when it has no headers at all (CVE-2023-34981: a
// response without headers got the previous response's). The status line
// has the standard reason phrase, "200 OK", not "200 200". The shutdown
// packet is refused.
//
// Transport never returns a connection to its pool unless the exchange
// ended with an END_RESPONSE that allows reuse: not after an error, a
// cancelled context, or a response body closed before its end. A
// response without SEND_HEADERS is an error, never completed with
// anything else.
//
// # Why it is written here
//
// No maintained, complete Go implementation of AJP/1.3 exists: the few
// found are partial (GET only, written for an exploit), command-line
// tools, or unfinished parts of larger servers. The protocol is small
// and stable (its reference is the Tomcat connectors' "AJP Protocol
// Reference"; where that page and Apache httpd differ, this package does
// what Apache httpd's mod_proxy_ajp and Tomcat do, such as the NUL after
// a body chunk's data), so it is implemented here on the standard
// library alone.
//
// # Limits
//
// AJP carries one request at a time per connection and has no interim
// responses, trailers or protocol upgrades: WriteHeader with a 1xx code
// is dropped, trailers are not sent, and Hijack is not offered.
package ajp
