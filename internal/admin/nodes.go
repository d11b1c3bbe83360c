package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shoal-go/shoal/internal/doctor"
	"github.com/shoal-go/shoal/session"
)

// The manager reads each node's GET /healthz/cluster (sessions held, its
// view of the cluster) and GET /metrics (replication lag) when the page
// or GET /api/cluster is asked for. A node that does not answer in time,
// or answers what is not a node's status, is shown as such: it never
// breaks the page.
const (
	// nodeFetchTimeout bounds the whole round of fetches of one view:
	// a node that has not answered by then is "unreachable".
	nodeFetchTimeout = 1500 * time.Millisecond
	// nodeFetchParallel bounds the fetches in flight.
	nodeFetchParallel = 8
	// viewTTL is how long a view is reused: viewers at once, or the page
	// and its chart, cost the nodes one round.
	viewTTL = time.Second
	// maxStatusBytes and maxMetricsBytes bound what is read of a node.
	maxStatusBytes  = 1 << 20
	maxMetricsBytes = 4 << 20
	// maxNodes bounds the nodes a view reads (members and nodes that the
	// members list besides).
	maxNodes = 256
	// lagMetric is the nodes' histogram of replication round trips.
	lagMetric = "shoal_replication_lag_seconds"
)

// nodeReport is what the manager read from one node.
type nodeReport struct {
	Route string // the member (or cluster member) it was fetched for
	Base  string // scheme://host of the node
	// Status is the node's answer, or nil when Err says why there is none.
	Status *doctor.NodeStatus
	// Unreachable is set when the node did not answer at all (refused,
	// timed out), as opposed to answering something wrong.
	Unreachable bool
	Err         string
	// Lag is read from the node's metrics: LagErr says why not.
	Lag    lagTotals
	HasLag bool
	LagErr string
}

// lagTotals sums the lag histogram over the node's peers.
type lagTotals struct {
	Sum   float64 // seconds
	Count uint64
}

// nodeClient fetches from nodes. Members are the operator's configured
// backends or nodes that joined the cluster with its key; the client
// goes to them directly (no proxy from the environment), never follows
// a redirect, and reads a bounded answer.
var nodeClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: nodeFetchTimeout}).DialContext,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: nodeFetchTimeout,
		DisableCompression:    false,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// nodeBase returns scheme://host of a member's URL: a node serves its
// status and metrics at the root of its listener, whatever path the
// balancer proxies to.
func nodeBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s: want an http:// or https:// URL", quoteShort(raw))
	}
	return u.Scheme + "://" + u.Host, nil
}

// fetchNodes reads the nodes of targets (route → base URL) at once,
// nodeFetchParallel at a time, until ctx ends.
func fetchNodes(ctx context.Context, targets []nodeReport) []nodeReport {
	out := make([]nodeReport, len(targets))
	sem := make(chan struct{}, nodeFetchParallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				out[i] = fetchNode(ctx, t)
			case <-ctx.Done():
				t.Unreachable, t.Err = true, "no answer within "+nodeFetchTimeout.String()
				out[i] = t
			}
		})
	}
	wg.Wait()
	return out
}

// fetchNode reads one node's status and lag.
func fetchNode(ctx context.Context, r nodeReport) nodeReport {
	if r.Base == "" {
		return r
	}
	body, code, err := get(ctx, r.Base+doctor.StatusPath, "application/json", maxStatusBytes)
	switch {
	case err != nil:
		r.Unreachable, r.Err = isUnreachable(err), describeFetchError(err)
		return r
	case code == http.StatusServiceUnavailable:
		r.Err = "503: starting (joining the cluster)"
	case code == http.StatusNotFound:
		r.Err = "404: not a shoal node (no " + doctor.StatusPath + ")"
	case code != http.StatusOK:
		r.Err = fmt.Sprintf("%d %s", code, firstLine(body))
	}
	if r.Err != "" {
		return r
	}
	st, err := parseNodeStatus(body)
	if err != nil {
		r.Err = "not a node status: " + err.Error()
		return r
	}
	r.Status = st
	if st.Store != "cluster" {
		return r // a lone node replicates nothing
	}
	body, code, err = get(ctx, r.Base+"/metrics", "text/plain;version=0.0.4", maxMetricsBytes)
	switch {
	case err != nil:
		r.LagErr = "metrics: " + describeFetchError(err)
	case code != http.StatusOK:
		r.LagErr = fmt.Sprintf("metrics: %d %s", code, firstLine(body))
	default:
		r.Lag, r.HasLag, err = parseLag(body)
		if err != nil {
			r.LagErr = "metrics: " + err.Error()
		}
	}
	return r
}

// get sends a GET and reads at most limit bytes of the answer.
func get(ctx context.Context, u, accept string, limit int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", accept)
	res, err := nodeClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, res.StatusCode, fmt.Errorf("reading the answer: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, res.StatusCode, fmt.Errorf("answer over %d bytes", limit)
	}
	return body, res.StatusCode, nil
}

// isUnreachable reports whether err means the node did not answer:
// connection refused or reset, no route, or no answer in time.
func isUnreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout())
}

// describeFetchError says what went wrong without the request's method
// and URL, which the page shows beside it.
func describeFetchError(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within " + nodeFetchTimeout.String()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// firstLine returns the first line of b, cut to 200 bytes, for an error.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// parseNodeStatus reads and checks a node's answer to GET
// /healthz/cluster: what the page shows of it must make sense.
func parseNodeStatus(body []byte) (*doctor.NodeStatus, error) {
	var st doctor.NodeStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if err := session.ValidateRoute(st.Node); err != nil {
		return nil, fmt.Errorf("node name: %v", err)
	}
	if !knownState(st.State) {
		return nil, fmt.Errorf("state %s: want joining, ready or leaving", quoteShort(st.State))
	}
	if st.Sessions.Primary < 0 || st.Sessions.Backup < 0 || st.Sessions.MissingCopies < 0 {
		return nil, errors.New("negative session counts")
	}
	switch st.Store {
	case "memory":
	case "cluster":
		if st.Cluster == nil {
			return nil, errors.New(`store "cluster" without cluster status`)
		}
		if len(st.Cluster.Members) > maxNodes {
			return nil, fmt.Errorf("%d members, over the %d the manager reads", len(st.Cluster.Members), maxNodes)
		}
		for _, m := range st.Cluster.Members {
			if err := session.ValidateRoute(m.Name); err != nil {
				return nil, fmt.Errorf("member name: %v", err)
			}
			if !knownState(m.State) {
				return nil, fmt.Errorf("member %s: state %s: want joining, ready or leaving", m.Name, quoteShort(m.State))
			}
		}
	default:
		return nil, fmt.Errorf("store %s: want memory or cluster", quoteShort(st.Store))
	}
	return &st, nil
}

func knownState(s string) bool { return s == "joining" || s == "ready" || s == "leaving" }

// parseLag sums the replication lag histogram of a node's metrics over
// its peers. A node that replicated nothing yet has none (ok false): it
// serves no series of the histogram.
func parseLag(body []byte) (lagTotals, bool, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return lagTotals{}, false, fmt.Errorf("not Prometheus text: %v", firstLine([]byte(err.Error())))
	}
	fam, ok := fams[lagMetric]
	if !ok {
		return lagTotals{}, false, nil // no peer yet
	}
	var t lagTotals
	for _, m := range fam.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			return lagTotals{}, false, fmt.Errorf("%s is not a histogram", lagMetric)
		}
		sum := h.GetSampleSum()
		if sum < 0 || sum != sum {
			return lagTotals{}, false, fmt.Errorf("%s: sum %v", lagMetric, sum)
		}
		t.Sum += sum
		t.Count += h.GetSampleCount()
	}
	return t, t.Count > 0, nil
}
