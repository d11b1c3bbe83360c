package admin

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
)

// maxRefresh bounds the page's auto-refresh period, in seconds.
const maxRefresh = 3600

// pageData is what web/index.html renders.
type pageData struct {
	Members  []memberRow
	Flash    string
	FlashErr bool
	Refresh  int // seconds between reloads by web/static/admin.js; 0: none
	Now      string
}

// memberRow is one member in the page's table, with the nonces of its
// two forms.
type memberRow struct {
	Route, URL    string
	State, Reason string
	RetryIn       string // "" unless in error until a known time
	Weight        string
	Standby       bool
	InFlight      int64
	Requests      uint64
	Errors        uint64
	Latency       string // p2c's estimate
	MeanDuration  string
	StateNonce    string // for Enable, Disable, Drain
	WeightNonce   string // for the weight form
}

// servePage is GET /: the members' table, rendered on the server. The
// optional query parameters are refresh (seconds, for the auto-refresh
// script) and flash (a message signed by pageAction).
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	q := r.URL.Query()
	data := pageData{Now: now.UTC().Format("2006-01-02 15:04:05 UTC")}
	if n, err := strconv.Atoi(q.Get("refresh")); err == nil && n > 0 && n <= maxRefresh {
		data.Refresh = n
	}
	if f := q.Get("flash"); f != "" {
		data.Flash, data.FlashErr = h.keys.openFlash(f)
	}
	for _, m := range h.b.Members() {
		data.Members = append(data.Members, h.row(m, now))
	}
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, data); err != nil {
		writeText(w, http.StatusInternalServerError, "rendering the page: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

func (h *Handler) row(m *balancer.Member, now time.Time) memberRow {
	st := m.Status()
	row := memberRow{
		Route: st.Route, URL: st.URL, State: string(st.Shown()), Reason: st.Reason,
		Weight: formatWeight(st.Weight), Standby: st.Standby, InFlight: st.InFlight,
		Requests: st.Requests, Errors: st.Errors,
		Latency: formatDuration(st.Latency), MeanDuration: formatDuration(st.MeanDuration),
		StateNonce:  h.keys.issueNonce(st.Route, now),
		WeightNonce: h.keys.issueNonce(st.Route, now),
	}
	if !st.ErrorUntil.IsZero() {
		row.RetryIn = st.ErrorUntil.Sub(now).Round(time.Second).String()
	}
	return row
}

// formatDuration writes d in ms with up to three significant decimals,
// or "-" for 0 (nothing measured).
func formatDuration(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	ms := d.Seconds() * 1e3
	prec := 0
	switch {
	case ms < 1:
		prec = 3
	case ms < 10:
		prec = 2
	case ms < 100:
		prec = 1
	}
	return strconv.FormatFloat(ms, 'f', prec, 64) + " ms"
}
