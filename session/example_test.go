package session_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/memstore"
)

func ExampleManager_Handler() {
	m, err := session.New(session.Config{Store: memstore.New(), Route: "n1"})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/visit", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _, err := session.Get[int](s, "visits")
		if err != nil {
			http.Error(w, "session unavailable", http.StatusInternalServerError)
			return
		}
		if err := s.Put("visits", n+1); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "visit %d", n+1)
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	var cookie string
	for range 3 {
		req, _ := http.NewRequest("GET", srv.URL+"/visit", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		if sc := resp.Header.Get("Set-Cookie"); sc != "" {
			cookie, _, _ = strings.Cut(sc, ";")
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// visit 1
	// visit 2
	// visit 3
}
