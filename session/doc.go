// Package session gives Go web applications HTTP sessions that can live on
// several nodes: a login or a cart that survives whichever node serves the
// next request. It is the Go counterpart of the Java servlet HttpSession as
// a Tomcat cluster replicates it.
//
// # Basics
//
// Wrap the application's handler in a Manager's middleware, and use the
// request's Session in handlers:
//
//	m, err := session.New(session.Config{Store: memstore.New(), Route: "n1"})
//	...
//	http.ListenAndServe(addr, m.Handler(mux))
//
//	func login(w http.ResponseWriter, r *http.Request) {
//		s := session.FromContext(r.Context())
//		if err := s.RenewID(); err != nil { ... } // against session fixation
//		if err := s.Put("user", r.FormValue("user")); err != nil { ... }
//	}
//
//	user, ok, err := session.Get[string](s, "user")
//
// Values are any Go value the codec can encode; Get decodes them into the
// type asked for, with no type registration. A value that cannot be
// encoded (a func, a channel, a cycle, a struct with no exported field) is
// refused by Put with an *EncodeError that names the key, the type and the
// field: the failure shows where the value is put, never later on the wire.
//
// # Ids, cookies and routes
//
// A session id is "<base>.<route>": the base is 144 random bits in
// base64url (no '.'), the route the node's name (Config.Route). That is the
// format Apache's mod_proxy_balancer (stickysession=JSESSIONID|jsessionid)
// and HAProxy's cookie prefix read, so shoal nodes can sit behind them. The
// middleware reads the id from a ";jsessionid=" path parameter, a
// "jsessionid" query parameter, or the JSESSIONID cookie, in that order. An
// id that is malformed, unknown or expired starts a fresh session: it is
// never an error and is never adopted (no client chooses its id).
//
// # Commits and deltas
//
// A request's changes are committed to the Store before its response's
// status line is written, as one Delta (the attributes put and removed, the
// access time), applied atomically. If the commit fails, the client gets an
// error response instead of the handler's, so no response announces a
// change that was not stored. A change after the response started fails
// with ErrCommitted instead of being lost.
//
// # Codec
//
// The default Codec is CBOR (RFC 8949, github.com/fxamacker/cbor/v2).
// bench/README.md ("Codec choice") has the measurements behind the choice:
// CBOR, msgpack, gob and JSON, encoding and decoding an int, a small user
// struct and a ten-item cart. CBOR was the fastest or tied everywhere
// (tied with msgpack on the user struct, ahead on the cart); gob, made
// self-contained per value as a store needs, decoded 7 to 25 times slower
// and needs types registered for interface values; JSON decoded 3 to 4
// times slower and turns numbers inside any into float64. Between CBOR and
// msgpack the deciding points are that CBOR is a standard and that its
// decoder is built for untrusted input (nesting and size limits, duplicate
// keys refused), which values from other nodes and from Redis are.
//
// Put checks a value before encoding it (checkEncodable): fxamacker/cbor
// would overflow the stack on a cycle and silently store a struct with no
// exported fields as an empty map, so both are refused with the path.
package session
