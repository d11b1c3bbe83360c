package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-go/shoal/internal/balancer"
)

// Balancer is what the manager manages: *balancer.Balancer is one.
// Members must be safe for concurrent use.
type Balancer interface {
	Members() []*balancer.Member
}

// Config configures a Handler.
type Config struct {
	// Balancer is the balancer to manage. Required.
	Balancer Balancer
	// Token is the secret of bearer and basic authentication. Required;
	// ReadTokenFile reads one, NewToken makes one.
	Token string
	// Logger receives a line per change and per refused credentials.
	// nil means none.
	Logger *slog.Logger
}

// Handler is the manager: an http.Handler for the routes the package doc
// lists. It is safe for concurrent use.
type Handler struct {
	b         Balancer
	log       *slog.Logger
	tokenHash [sha256.Size]byte
	keys      *keys
	origins   *http.CrossOriginProtection
	mux       *http.ServeMux
	page      *template.Template
	rates     rateSampler // the members' request rates, for the page and its chart
	cache     viewCache   // the last view of the cluster
}

//go:embed web
var webFS embed.FS

// New returns the manager of cfg.Balancer.
func New(cfg Config) (*Handler, error) {
	if cfg.Balancer == nil {
		return nil, errors.New("admin: no balancer")
	}
	if err := checkToken(cfg.Token); err != nil {
		return nil, fmt.Errorf("admin: token %w", err)
	}
	h := &Handler{
		b:         cfg.Balancer,
		log:       cfg.Logger,
		tokenHash: sha256.Sum256([]byte(cfg.Token)),
		keys:      newKeys(),
		origins:   http.NewCrossOriginProtection(),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	var err error
	h.page, err = template.New("index.html").ParseFS(webFS, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("admin: page template: %w", err)
	}

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		balancer.NewCollector(cfg.Balancer),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("admin: metrics: %w", err)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.servePage)
	mux.HandleFunc("POST /members/{route}", h.pageAction)
	mux.HandleFunc("GET /api/balancer", h.getBalancer)
	mux.HandleFunc("GET /api/cluster", h.getCluster)
	mux.HandleFunc("GET /api/rates", h.getRates)
	mux.HandleFunc("GET /api/members", h.listMembers)
	mux.HandleFunc("GET /api/members/{route}", h.getMember)
	mux.HandleFunc("POST /api/members/{route}", h.apiAction)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
	}))
	mux.HandleFunc("GET /static/{file}", serveStatic)
	h.mux = mux
	return h, nil
}

// NewToken returns a fresh random token: 130 bits from crypto/rand in
// base32 (crypto/rand.Text).
func NewToken() string { return rand.Text() }

// authMethod is how a request was authenticated.
type authMethod int

const (
	authBearer authMethod = iota + 1
	authBasic
)

func (a authMethod) String() string {
	if a == authBearer {
		return "bearer"
	}
	return "basic"
}

type authKey struct{}

func authFrom(ctx context.Context) authMethod {
	a, _ := ctx.Value(authKey{}).(authMethod)
	return a
}

// securityHeaders are set on every response. The page loads its scripts
// and stylesheet from /static/, its chart fetches /api/rates, and it
// posts its forms to itself; nothing else is allowed.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Frame-Options":        "DENY",
	"Cache-Control":          "no-store",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
}

// ServeHTTP serves the manager's routes: /healthz to anyone, the rest
// after authentication, and a POST only from this origin.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	for k, v := range securityHeaders {
		hdr.Set(k, v)
	}
	if r.URL.Path == "/healthz" {
		serveHealthz(w, r)
		return
	}
	auth, ok := h.authenticate(r)
	if !ok {
		hdr.Set("WWW-Authenticate", `Basic realm="shoal"`)
		writeText(w, http.StatusUnauthorized,
			"authentication required: Authorization: Bearer TOKEN, or user admin with the token as password")
		return
	}
	if err := h.origins.Check(r); err != nil {
		h.log.Warn("manager refused a cross-origin request", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("origin", r.Header.Get("Origin")),
			slog.String("remote", r.RemoteAddr))
		writeText(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	h.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authKey{}, auth)))
}

func serveHealthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeText(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	writeText(w, http.StatusOK, "ok")
}

// staticTypes are the files under web/static and their content types.
var staticTypes = map[string]string{
	"admin.css": "text/css; charset=utf-8",
	"admin.js":  "text/javascript; charset=utf-8",
	"chart.js":  "text/javascript; charset=utf-8",
}

func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	ctype, ok := staticTypes[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := webFS.ReadFile("web/static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Write(b)
}

// member returns the member of the request's {route}, or nil after
// answering 404.
func (h *Handler) member(w http.ResponseWriter, r *http.Request, asJSON bool) *balancer.Member {
	route := r.PathValue("route")
	for _, m := range h.b.Members() {
		if m.Route() == route {
			return m
		}
	}
	msg := fmt.Sprintf("no member with route %s", quoteShort(route))
	if asJSON {
		writeJSONError(w, http.StatusNotFound, msg)
	} else {
		writeText(w, http.StatusNotFound, msg)
	}
	return nil
}

// readBody reads a POST body of at most maxBodyBytes. On error it has
// answered (413 or 400).
func readBody(w http.ResponseWriter, r *http.Request, asJSON bool) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err == nil {
		return body, true
	}
	code, msg := http.StatusBadRequest, "reading the body: "+err.Error()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		code, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxBodyBytes)
	}
	if asJSON {
		writeJSONError(w, code, msg)
	} else {
		writeText(w, code, msg)
	}
	return nil, false
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}
