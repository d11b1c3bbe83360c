package admin

import (
	"encoding/json"
	"net/http"
)

// stickyReporter is what a Balancer offers to report where it finds the
// session id ("COOKIE|param"), for GET /api/balancer and shoal doctor's
// check that the balancer and the nodes agree on the cookie's name.
type stickyReporter interface {
	Sticky() string
}

// balancerInfo is the body of GET /api/balancer: the settings shoal
// doctor compares with the nodes'. A setting the balancer does not
// report is null.
type balancerInfo struct {
	Sticky *string `json:"sticky"`
}

func (h *Handler) getBalancer(w http.ResponseWriter, _ *http.Request) {
	var info balancerInfo
	if s, ok := h.b.(stickyReporter); ok {
		v := s.Sticky()
		info.Sticky = &v
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(info) // fails only if the client went away
}
