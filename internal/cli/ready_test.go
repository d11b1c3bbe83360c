package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestNotReadyWhileStarting: while the application is being made (a
// cluster node joining and receiving its sessions), the node answers 503
// on /healthz/ready and on the application's paths, 200 on /healthz/live;
// once it is made, 200 everywhere.
func TestNotReadyWhileStarting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveHTTP(ctx, ln, slog.New(slog.DiscardHandler), func() (http.Handler, error) {
			<-release
			return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "app") }), nil
		})
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	status := func(path string) int {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/healthz/ready"); got != 503 {
		t.Fatalf("ready while starting: %d, want 503", got)
	}
	if got := status("/counter"); got != 503 {
		t.Fatalf("app while starting: %d, want 503", got)
	}
	if got := status("/healthz/live"); got != 200 {
		t.Fatalf("live while starting: %d, want 200", got)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for status("/healthz/ready") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := status("/counter"); got != 200 {
		t.Fatalf("app once started: %d", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
