package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// attempt is the state of one request's attempts, shared by the
// balancer's loop and the ReverseProxy's hooks through the request's
// context. Only the request's goroutine touches it: the ReverseProxy
// calls Rewrite, RoundTrip, ModifyResponse and ErrorHandler on the
// goroutine that called its ServeHTTP.
type attempt struct {
	s        *settings
	member   *Member
	tried    []*Member // the members that failed, in order
	start    time.Time // when the attempt started
	canRetry bool      // the request may be sent to another member if this one fails

	rtErr      error // the transport's error: the member failed
	err        error // what the ErrorHandler got: the attempt failed
	failStatus int   // the status in FailOnStatus that is being retried
	status     int   // the member's response status, 0 if none came
}

type attemptKey struct{}

func attemptFrom(ctx context.Context) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

// begin starts an attempt on m.
func (a *attempt) begin(m *Member) {
	a.member, a.start = m, time.Now()
	a.rtErr, a.err, a.failStatus, a.status = nil, nil, 0, 0
}

// attemptTransport wraps the transport to members: it tells a member's
// failure (the transport's error) from the proxy's other errors, and
// measures the time to the response's headers for P2C.
type attemptTransport struct{}

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a := attemptFrom(req.Context())
	if a == nil { // cannot happen: Rewrite needed the attempt already
		return nil, errors.New("balancer: request without an attempt")
	}
	res, err := a.s.transport.RoundTrip(req)
	if err != nil {
		a.rtErr = err
	} else {
		now := time.Now()
		a.status = res.StatusCode
		a.member.lat.observe(now.UnixNano(), now.Sub(a.start))
	}
	return res, err
}

// recordError is the ReverseProxy's ErrorHandler: it writes nothing, so
// that the balancer can still send the request to another member, and
// leaves the error to the balancer's loop.
func recordError(w http.ResponseWriter, r *http.Request, err error) {
	a := attemptFrom(r.Context())
	if a == nil { // not called through Balancer.ServeHTTP
		writePlain(w, http.StatusBadGateway, "bad gateway")
		return
	}
	a.err = err
}

// modifyResponse is the ReverseProxy's ModifyResponse: a status in
// FailOnStatus puts the member in error and, if the request may go to
// another member, has the response dropped so that it does.
func (b *Balancer) modifyResponse(res *http.Response) error {
	a := attemptFrom(res.Request.Context())
	if a == nil || res.StatusCode < 0 || res.StatusCode >= len(a.s.failOn) || !a.s.failOn[res.StatusCode] {
		return nil
	}
	b.markFailed(a.s, a.member, fmt.Sprintf("answered %d (failonstatus)", res.StatusCode), failStatus)
	if a.canRetry && b.hasCandidate(a) {
		a.failStatus = res.StatusCode
		return errFailOnStatus
	}
	return nil
}

// hasCandidate reports whether a member other than the ones a tried could
// take the request now.
func (b *Balancer) hasCandidate(a *attempt) bool {
	now := time.Now().UnixNano()
	for _, m := range b.set.Load().list {
		if m != a.member && m.acceptsNew(now) && !contains(a.tried, m) {
			return true
		}
	}
	return false
}

// failedOver handles an attempt that failed before any response reached
// the client. It reports true if the request is to be sent to another
// member; otherwise it has answered the client.
func (b *Balancer) failedOver(w http.ResponseWriter, r *http.Request, a *attempt, body *replayBody, idempotent bool) bool {
	switch {
	case a.failStatus != 0:
		return true // modifyResponse checked that it may
	case body != nil && body.tooLarge.Load():
		writePlain(w, http.StatusRequestEntityTooLarge, "request body too large")
		return false
	case r.Context().Err() != nil:
		// The client went away: the member is not to blame, and there
		// is no one to answer.
		b.log.Debug("client gone", slog.String("member", a.member.route), slog.Any("err", a.err))
		return false
	case a.rtErr == nil:
		// The proxy failed after the member answered (a refused
		// protocol switch, say): not the member's fault.
		b.log.Warn("proxy error", slog.String("member", a.member.route), slog.Any("err", a.err))
		writePlain(w, http.StatusBadGateway, "bad gateway")
		return false
	}
	notSent := isDialError(a.rtErr)
	b.markFailed(a.s, a.member, a.rtErr.Error(), failReasonOf(a.rtErr))
	if (notSent || idempotent) && (body == nil || body.replayable()) {
		return true
	}
	if isTimeout(a.rtErr) {
		writePlain(w, http.StatusGatewayTimeout, "gateway timeout")
	} else {
		writePlain(w, http.StatusBadGateway, "bad gateway")
	}
	return false
}

// markFailed puts m in error for Retry, logging it once per failure,
// and counts the failure under why. It also closes the member's idle
// fast-path connections: they would fail too.
func (b *Balancer) markFailed(s *settings, m *Member, reason string, why failReason) {
	now := time.Now()
	if m.markFailed(now.UnixNano(), s.cfg.Retry, reason, why) {
		b.log.Warn("member in error", slog.String("member", m.route), slog.String("reason", reason),
			slog.Time("retry_at", now.Add(s.cfg.Retry)))
	}
	m.target().pool.closeIdle()
}

// isDialError reports whether err is a failure to connect: the request
// was not sent, so any request may be sent elsewhere.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isTimeout reports whether err is a timeout (connect, or response
// headers).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
