// Package demoapp is the small login-and-counter application that
// `shoal demo`, the docs and the tests run on every node. It is also the
// first example of the session package to read:
//
//	POST /login   (form "user")  log in; renews the session id
//	POST /logout                 log out; invalidates the session
//	GET  /whoami                 the user, or 401 if not logged in
//	GET  /counter                count this session's requests: JSON {"node","user","count","session"}
//	POST /bad                    try to put a value that cannot be encoded (a func): 422 with Put's error
//	GET  /                       an HTML page with the node, the user, the counter and a login form
package demoapp

import (
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/shoal-go/shoal/session"
)

// New returns the demo app's handler for the node called node. Wrap it in
// a session.Manager's Handler. A nil log discards.
func New(node string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &app{node: node, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /whoami", a.whoami)
	mux.HandleFunc("GET /counter", a.counter)
	mux.HandleFunc("POST /bad", a.bad)
	mux.HandleFunc("GET /{$}", a.index)
	return mux
}

type app struct {
	node string
	log  *slog.Logger
}

// fail answers 500 for a session error, logged here and not shown to the
// client (it may name the store's internals).
func (a *app) fail(w http.ResponseWriter, err error) {
	a.log.Error("demo app: session", "err", err)
	http.Error(w, "500 internal server error: session unavailable", http.StatusInternalServerError)
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimSpace(r.FormValue("user"))
	if user == "" || len(user) > 64 {
		http.Error(w, "form field user: want 1 to 64 characters", http.StatusBadRequest)
		return
	}
	s := session.FromContext(r.Context())
	// A new id at login: an id planted before it is worthless after it.
	if err := s.RenewID(); err != nil {
		a.fail(w, err)
		return
	}
	if err := s.Put("user", user); err != nil {
		a.fail(w, err)
		return
	}
	if wantsHTML(r) {
		http.Redirect(w, r, s.EncodeURL("/"), http.StatusSeeOther)
		return
	}
	writeJSON(w, map[string]string{"node": a.node, "user": user, "session": s.ID()})
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	if err := session.FromContext(r.Context()).Invalidate(); err != nil {
		a.fail(w, err)
		return
	}
	if wantsHTML(r) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *app) whoami(w http.ResponseWriter, r *http.Request) {
	user, ok, err := session.Get[string](session.FromContext(r.Context()), "user")
	if err != nil {
		a.fail(w, err)
		return
	}
	if !ok {
		http.Error(w, "not logged in", http.StatusUnauthorized)
		return
	}
	writeJSON(w, map[string]string{"node": a.node, "user": user})
}

// Counter is the JSON body of GET /counter.
type Counter struct {
	Node    string `json:"node"`
	User    string `json:"user"`
	Count   int    `json:"count"`
	Session string `json:"session"`
}

func (a *app) counter(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	count, _, err := session.Get[int](s, "count")
	if err != nil {
		a.fail(w, err)
		return
	}
	count++
	if err := s.Put("count", count); err != nil {
		a.fail(w, err)
		return
	}
	user, _, err := session.Get[string](s, "user")
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, Counter{Node: a.node, User: user, Count: count, Session: s.ID()})
}

// Callback is a value that cannot be encoded: it holds a func. POST /bad
// puts one to show the error Put returns (and that shoal doctor reports
// the encode failure).
type Callback struct {
	Name     string
	OnChange func()
}

func (a *app) bad(w http.ResponseWriter, r *http.Request) {
	err := session.FromContext(r.Context()).Put("callback", Callback{Name: "demo", OnChange: func() {}})
	if err == nil {
		a.fail(w, errors.New("a value holding a func was accepted"))
		return
	}
	a.log.Warn("demo app: value refused", "err", err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnprocessableEntity)
	_ = json.NewEncoder(w).Encode(map[string]string{"node": a.node, "error": err.Error()})
}

var page = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shoal demo — {{.Node}}</title>
<style>body{font:16px system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}
dt{font-weight:bold;float:left;width:6em}dd{margin:0 0 .5em 6em}</style></head>
<body><h1>shoal demo</h1>
<dl><dt>node</dt><dd id="node">{{.Node}}</dd>
<dt>user</dt><dd id="user">{{if .User}}{{.User}}{{else}}(not logged in){{end}}</dd>
<dt>counter</dt><dd id="count">{{.Count}}</dd></dl>
{{if .User}}<form method="post" action="{{.Logout}}"><button>Log out</button></form>
{{else}}<form method="post" action="{{.Login}}"><label>user <input name="user" required maxlength="64"></label> <button>Log in</button></form>{{end}}
<p><a href="{{.Counter}}">count</a> (JSON) · reload this page to see which node serves it.</p>
</body></html>
`))

func (a *app) index(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	user, _, err := session.Get[string](s, "user")
	if err != nil {
		a.fail(w, err)
		return
	}
	count, _, err := session.Get[int](s, "count")
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// An error here is the client going away mid-page: nothing to answer.
	_ = page.Execute(w, map[string]any{
		"Node": a.node, "User": user, "Count": count,
		"Login": s.EncodeURL("/login"), "Logout": s.EncodeURL("/logout"), "Counter": s.EncodeURL("/counter"),
	})
}

// wantsHTML reports whether the request came from a browser form rather
// than a script.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v) // fails only if the client went away
}
