package doctor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeNode serves a status (or what body says) on StatusPath.
func fakeNode(t *testing.T, status func(w http.ResponseWriter)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz/ready":
			w.Write([]byte("ready\n"))
		case StatusPath:
			status(w)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func statusJSON(st NodeStatus) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { json.NewEncoder(w).Encode(st) }
}

func result(t *testing.T, rep Report, check string) Result {
	t.Helper()
	for _, r := range rep.Results {
		if r.Check == check {
			return r
		}
	}
	t.Fatalf("no %q result in %+v", check, rep.Results)
	return Result{}
}

// TestBadAnswers: whatever a node or the balancer answers, the doctor
// says what was wrong with it and fails the check; it never passes one it
// could not make.
func TestBadAnswers(t *testing.T) {
	cases := []struct {
		name string
		body func(w http.ResponseWriter)
		want string
	}{
		{"not JSON", func(w http.ResponseWriter) { w.Write([]byte("<html>")) }, "not a node status"},
		{"bad name", statusJSON(NodeStatus{Node: "n 1", Time: time.Now(), Cookie: "JSESSIONID", Store: "memory"}), "bad status: node name"},
		{"no time", statusJSON(NodeStatus{Node: "n1", Cookie: "JSESSIONID", Store: "memory"}), "bad status: no time"},
		{"cluster without status", statusJSON(NodeStatus{Node: "n1", Time: time.Now(), Cookie: "JSESSIONID", Store: "cluster"}), "without cluster status"},
		{"bad member", statusJSON(NodeStatus{Node: "n1", Time: time.Now(), Cookie: "JSESSIONID", Store: "cluster",
			Cluster: &ClusterStatus{Members: []Member{{Name: "../x"}}}}), "member name"},
		{"huge", func(w http.ResponseWriter) { w.Write([]byte(strings.Repeat(" ", maxBody+10))) }, "answer over"},
		{"starting", func(w http.ResponseWriter) { w.WriteHeader(503) }, "503: starting"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := fakeNode(t, c.body)
			rep, err := Run(context.Background(), Config{Nodes: []string{srv.URL}})
			if err != nil {
				t.Fatal(err)
			}
			r := result(t, rep, checkReachable)
			if rep.OK || r.Level != Fail || !strings.Contains(r.Evidence, c.want) {
				t.Errorf("ok %v, %+v; want a FAIL saying %q", rep.OK, r, c.want)
			}
		})
	}
}

func TestBalancerAnswers(t *testing.T) {
	cases := []struct {
		name string
		code int
		body string
		want string
	}{
		{"wrong token", 401, "authentication required", "refused the token"},
		{"not the manager", 200, `{"x":1}`, `no "members"`},
		{"not JSON", 200, `<html>`, "not the manager's JSON"},
		{"bad route", 200, `{"members":[{"route":"a b","url":"http://x"}]}`, `member route "a b"`},
		{"bad url", 200, `{"members":[{"route":"n1","url":"ftp://x"}]}`, "member n1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer tok" {
					t.Errorf("no token sent")
				}
				w.WriteHeader(c.code)
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			rep, err := Run(context.Background(), Config{Balancer: srv.URL, Token: "tok"})
			if err != nil {
				t.Fatal(err)
			}
			r := result(t, rep, checkRoutes)
			if rep.OK || r.Level != Fail || !strings.Contains(r.Evidence, c.want) {
				t.Errorf("ok %v, %+v; want a FAIL saying %q", rep.OK, r, c.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{}, {Nodes: []string{"ftp://x"}}, {Balancer: "http://"}, {Nodes: []string{"http://h:1/?q=1"}}} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) = nil error", cfg)
		}
	}
}

// TestClockSkew: a node whose clock is off by more than MaxSkew fails
// the clock check, and the evidence names it.
func TestClockSkew(t *testing.T) {
	st := func(name string, off time.Duration) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			statusJSON(NodeStatus{Node: name, State: "ready", Time: time.Now().Add(off), Cookie: "JSESSIONID", Store: "memory"})(w)
		}
	}
	a, b := fakeNode(t, st("n1", 0)), fakeNode(t, st("n2", 5*time.Second))
	rep, err := Run(context.Background(), Config{Nodes: []string{a.URL, b.URL}})
	if err != nil {
		t.Fatal(err)
	}
	if r := result(t, rep, checkClocks); r.Level != Fail || !strings.HasPrefix(r.Evidence, "n2 is ") || !strings.Contains(r.Evidence, "ahead of n1") {
		t.Errorf("clocks: %+v", r)
	}
}

func TestWriteText(t *testing.T) {
	rep := Report{Results: []Result{
		{Check: "a", Level: Pass, Evidence: "fine", Action: "ignored"},
		{Check: "bbb", Level: Fail, Evidence: "broken\nacross lines", Action: "fix it"},
	}}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "PASS  a    fine\nFAIL  bbb  broken across lines\n           → fix it\n\n1 passed, 0 warnings, 1 failed\n"
	if b.String() != want {
		t.Errorf("text:\n%q\nwant\n%q", b.String(), want)
	}
}
