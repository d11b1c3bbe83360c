package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-go/shoal/internal/balancer"
)

// maxBodyBytes bounds a POST body: an action is a few dozen bytes.
const maxBodyBytes = 16 << 10

// The actions a POST may ask for.
const (
	actionEnable  = "enable"  // takes requests again: neither disabled nor draining
	actionDisable = "disable" // no requests at all
	actionDrain   = "drain"   // only the requests of its own sessions
	actionWeight  = "weight"  // a new weight, 1 to 100
)

// action is a parsed POST body.
type action struct {
	Verb   string  // actionEnable, ...
	Weight float64 // with actionWeight
	Nonce  string  // the page's form nonce, if any
}

// errUnsupportedType is wrapped by parseAction's error for a body that is
// neither JSON nor a form: 415.
var errUnsupportedType = errors.New("unsupported Content-Type")

// parseAction parses a POST body, JSON ({"action": "weight", "weight":
// 2}) or form-encoded (action=weight&weight=2), by contentType. Fields
// other than action, weight and nonce are refused, as are fields given
// twice: a typo is an error, not a no-op. When the body parses but its
// action is invalid, the returned action still carries the nonce, so that
// the caller can check the nonce first.
func parseAction(contentType string, body []byte) (action, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && contentType != "" {
		mt = "" // unparsable: refused below
	}
	var a action
	var weight string // the weight as given, "" if not
	hasWeight := false
	switch mt {
	case "application/json":
		var in struct {
			Action *string          `json:"action"`
			Weight *json.RawMessage `json:"weight"`
			Nonce  *string          `json:"nonce"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return a, fmt.Errorf("body: invalid JSON: %v", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return a, errors.New("body: want one JSON object")
		}
		if in.Nonce != nil {
			a.Nonce = *in.Nonce
		}
		if in.Action != nil {
			a.Verb = *in.Action
		}
		if in.Weight != nil {
			hasWeight = true
			weight = string(*in.Weight)
			if !isJSONNumber(*in.Weight) {
				return a, fmt.Errorf("weight %s: want a number from 1 to 100", quoteShort(weight))
			}
		}
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return a, fmt.Errorf("body: invalid form: %v", err)
		}
		for k, vs := range form {
			switch {
			case k != "action" && k != "weight" && k != "nonce":
				return a, fmt.Errorf("unknown field %s: want action, weight or nonce", quoteShort(k))
			case len(vs) > 1:
				return a, fmt.Errorf("field %s given %d times", k, len(vs))
			}
		}
		a.Verb, a.Nonce = form.Get("action"), form.Get("nonce")
		weight, hasWeight = form.Get("weight"), form.Has("weight")
	default:
		return a, fmt.Errorf("%w %s: want application/json or application/x-www-form-urlencoded",
			errUnsupportedType, quoteShort(contentType))
	}

	switch a.Verb {
	case actionEnable, actionDisable, actionDrain:
		if hasWeight {
			return a, fmt.Errorf("weight goes only with action weight, not %s", a.Verb)
		}
	case actionWeight:
		if !hasWeight {
			return a, errors.New("action weight needs weight: a number from 1 to 100")
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(weight), 64)
		if err != nil || math.IsNaN(w) || w < 1 || w > 100 {
			return a, fmt.Errorf("weight %s: want a number from 1 to 100", quoteShort(weight))
		}
		a.Weight = w
	case "":
		return a, errors.New("action missing: want enable, disable, drain or weight")
	default:
		return a, fmt.Errorf("action %s: want enable, disable, drain or weight", quoteShort(a.Verb))
	}
	return a, nil
}

// isJSONNumber reports whether raw is a JSON number (not a string, which
// json.RawMessage would also hold).
// raw is valid JSON: the decoder checked it.
func isJSONNumber(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9')
}

// apply changes m as a says and returns what changed, for the flash
// message and the log. Draining sets draining before it clears disabled
// and enabling clears draining before disabled, so that the member never
// takes new sessions on the way.
func apply(m *balancer.Member, a action) string {
	switch a.Verb {
	case actionEnable:
		m.SetDraining(false)
		m.SetDisabled(false)
		return "enabled"
	case actionDisable:
		m.SetDisabled(true)
		return "disabled: no requests"
	case actionDrain:
		m.SetDraining(true)
		m.SetDisabled(false)
		return "draining: only the requests of its own sessions"
	case actionWeight:
		old := m.Weight()
		if err := m.SetWeight(a.Weight); err != nil { // checked by parseAction
			return err.Error()
		}
		return fmt.Sprintf("weight %s → %s", formatWeight(old), formatWeight(m.Weight()))
	}
	return "unchanged"
}

func formatWeight(w float64) string { return strconv.FormatFloat(w, 'f', -1, 64) }

// quoteShort quotes s for a message, cut to 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// memberJSON is a member in the API's answers.
type memberJSON struct {
	Route string `json:"route"`
	URL   string `json:"url"`
	// State is ok, standby, draining, error or disabled; Reason says why
	// it is draining or in error, and RetryUntil (RFC 3339) when a member
	// in error after failed requests may be tried again.
	State      string  `json:"state"`
	Reason     string  `json:"reason"`
	RetryUntil *string `json:"retry_until"`
	Weight     float64 `json:"weight"`
	Standby    bool    `json:"standby"`
	InFlight   int64   `json:"in_flight"`
	Requests   uint64  `json:"requests"`
	Errors     uint64  `json:"errors"`
	// LatencyEWMAMs is p2c's latency estimate: the peak EWMA of the time
	// to response headers, in ms. DurationMeanMs is the mean time of a
	// request, to the end of its response, in ms.
	LatencyEWMAMs  float64 `json:"latency_ewma_ms"`
	DurationMeanMs float64 `json:"duration_mean_ms"`
	StateChanges   uint64  `json:"state_changes"`
}

func newMemberJSON(m *balancer.Member) memberJSON { return memberJSONOf(m.Status()) }

// memberJSONOf returns the member of status st.
func memberJSONOf(st balancer.Status) memberJSON {
	j := memberJSON{
		Route: st.Route, URL: st.URL, State: string(st.Shown()), Reason: st.Reason,
		Weight: st.Weight, Standby: st.Standby, InFlight: st.InFlight,
		Requests: st.Requests, Errors: st.Errors,
		LatencyEWMAMs:  roundMs(st.Latency.Seconds() * 1e3),
		DurationMeanMs: roundMs(st.MeanDuration.Seconds() * 1e3),
		StateChanges:   st.StateChanges,
	}
	if !st.ErrorUntil.IsZero() {
		s := st.ErrorUntil.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		j.RetryUntil = &s
	}
	return j
}

// roundMs rounds to µs.
func roundMs(ms float64) float64 { return math.Round(ms*1e3) / 1e3 }

func (h *Handler) listMembers(w http.ResponseWriter, r *http.Request) {
	members := h.b.Members()
	out := struct {
		Members []memberJSON `json:"members"`
	}{Members: make([]memberJSON, 0, len(members))}
	for _, m := range members {
		out.Members = append(out.Members, newMemberJSON(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getMember(w http.ResponseWriter, r *http.Request) {
	if m := h.member(w, r, true); m != nil {
		writeJSON(w, http.StatusOK, newMemberJSON(m))
	}
}

// apiAction is POST /api/members/{route}: it answers the member as JSON
// after the change, 400 for an invalid action, 404 for an unknown route,
// 403 for a request authenticated by basic authentication without a
// valid form nonce.
func (h *Handler) apiAction(w http.ResponseWriter, r *http.Request) {
	m := h.member(w, r, true)
	if m == nil {
		return
	}
	body, ok := readBody(w, r, true)
	if !ok {
		return
	}
	a, err := parseAction(r.Header.Get("Content-Type"), body)
	auth := authFrom(r.Context())
	if auth != authBearer && !h.keys.validNonce(a.Nonce, m.Route(), time.Now()) {
		writeJSONError(w, http.StatusForbidden,
			"a change authenticated by basic authentication needs the page's form nonce: API clients send Authorization: Bearer TOKEN")
		return
	}
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, errUnsupportedType) {
			code = http.StatusUnsupportedMediaType
		}
		writeJSONError(w, code, err.Error())
		return
	}
	h.logChange(r, m, a, apply(m, a))
	writeJSON(w, http.StatusOK, newMemberJSON(m))
}

// pageAction is POST /members/{route}, the page's forms: it needs a valid
// form nonce (else 403), then changes the member and redirects to the
// page (303) with a flash message of what changed, or of what was wrong.
func (h *Handler) pageAction(w http.ResponseWriter, r *http.Request) {
	m := h.member(w, r, false)
	if m == nil {
		return
	}
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	a, err := parseAction(r.Header.Get("Content-Type"), body)
	if !h.keys.validNonce(a.Nonce, m.Route(), time.Now()) {
		writeText(w, http.StatusForbidden,
			"this form's nonce is missing, invalid or expired: reload the page and try again")
		return
	}
	msg, isErr := "", err != nil
	if isErr {
		msg = m.Route() + ": " + err.Error()
	} else {
		msg = m.Route() + ": " + apply(m, a)
		h.logChange(r, m, a, msg)
	}
	http.Redirect(w, r, "/?flash="+url.QueryEscape(h.keys.signFlash(msg, isErr)), http.StatusSeeOther)
}

func (h *Handler) logChange(r *http.Request, m *balancer.Member, a action, result string) {
	h.log.Info("manager changed a member", slog.String("member", m.Route()), slog.String("action", a.Verb),
		slog.String("result", result), slog.String("auth", authFrom(r.Context()).String()),
		slog.String("remote", r.RemoteAddr))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeText(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}
