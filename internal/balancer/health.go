package balancer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// healthResult is the outcome of one health check.
type healthResult int

const (
	healthPass     healthResult = iota // 200: alive and ready
	healthNotReady                     // 503: alive, but takes no new sessions
	healthFail                         // anything else, or no answer
)

// healthRun is a running set of health checks: one goroutine per
// configured member.
type healthRun struct {
	cfg    HealthConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startHealth starts one goroutine per configured member that checks it
// every Health.Interval, if Health.Path is set. The caller holds setMu,
// and no checks run.
func (b *Balancer) startHealth(s *settings) {
	if s.cfg.Health.Path == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &healthRun{cfg: s.cfg.Health, cancel: cancel}
	b.health = run
	client := &http.Client{
		Transport: s.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer, not a pass
		},
	}
	// The configured members only: a cluster's members are followed by
	// membership (faster than HTTP checks).
	for _, m := range b.static {
		run.wg.Go(func() { b.healthLoop(ctx, &run.cfg, client, m) })
	}
}

// stopHealthLocked stops the running health checks and waits for them.
// The caller holds setMu.
func (b *Balancer) stopHealthLocked() {
	if b.health != nil {
		b.health.cancel()
		b.health.wg.Wait()
		b.health = nil
	}
}

// healthLoop checks m until ctx is done. The first check is at once.
// While the member is in error, or its last check failed, it is checked
// every fastInterval instead (HAProxy's fastinter): a restarted member
// is back within a fraction of the interval, and a failing one is
// confirmed sooner.
func (b *Balancer) healthLoop(ctx context.Context, hc *HealthConfig, client *http.Client, m *Member) {
	t := time.NewTimer(0)
	defer t.Stop()
	var h healthCounts
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, reason := b.checkHealth(ctx, hc, client, m)
		if ctx.Err() != nil {
			return
		}
		b.applyHealth(m, &h, res, reason)
		next := hc.Interval
		if res == healthFail || !m.usable(time.Now().UnixNano()) {
			next = fastInterval(hc.Interval)
		}
		t.Reset(next)
	}
}

// fastInterval is the check interval of a member in error: a tenth of
// the interval, at least 50 ms (and never more than the interval).
func fastInterval(interval time.Duration) time.Duration {
	return min(max(interval/10, 50*time.Millisecond), interval)
}

// checkHealth GETs the member's health URL once.
func (b *Balancer) checkHealth(ctx context.Context, hc *HealthConfig, client *http.Client, m *Member) (healthResult, string) {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.target().url.JoinPath(hc.Path).String(), nil)
	if err != nil {
		return healthFail, err.Error()
	}
	req.Header.Set("User-Agent", "shoal-balancer-health-check")
	res, err := client.Do(req)
	if err != nil {
		return healthFail, err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		return healthPass, ""
	case http.StatusServiceUnavailable:
		return healthNotReady, ""
	}
	return healthFail, fmt.Sprintf("%s answered %d", hc.Path, res.StatusCode)
}

// healthCounts are the consecutive passes and failures of one member's
// checks. Only its health goroutine uses them.
type healthCounts struct {
	passes, fails int
}

// applyHealth moves m's health state after a check: Fall failures in a
// row put it in error, Rise answers in a row (200 or 503) bring it back;
// a 503 makes it draining at once, a 200 ends that at once.
func (b *Balancer) applyHealth(m *Member, h *healthCounts, res healthResult, reason string) {
	hc := &b.cur.Load().cfg.Health
	log := b.log.With(slog.String("member", m.route))
	if res == healthFail {
		m.countError(failHealth)
		h.passes = 0
		h.fails++
		if h.fails >= hc.Fall && !m.down.Load() {
			// Logged first: whoever sees the member in error finds the
			// line (only this goroutine changes down).
			log.Warn("member failed health checks", slog.String("reason", reason), slog.Int("fails", h.fails))
			m.down.Store(true)
		}
		return
	}
	h.fails = 0
	h.passes++
	if h.passes >= hc.Rise && m.down.Load() {
		m.down.Store(false)
		// Recovery seen by the checks also ends an error left by failed
		// requests: the member answers again.
		m.errorUntil.Store(0)
		log.Info("member passed health checks", slog.Int("passes", h.passes))
	}
	if res == healthNotReady {
		if !m.notReady.Swap(true) {
			log.Warn("member not ready: draining (no new sessions; its own sessions still reach it)",
				slog.String("path", hc.Path))
		}
	} else if m.notReady.Swap(false) {
		log.Info("member ready", slog.String("path", hc.Path))
	}
}
