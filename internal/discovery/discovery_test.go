package discovery

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

type fakeResolver struct {
	mu  sync.Mutex
	ips []string
	err error
}

func (f *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []net.IPAddr
	for _, s := range f.ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // the finder's String(); "" when Parse must refuse
	}{
		{"dns://shoal.default.svc.cluster.local", "dns://shoal.default.svc.cluster.local:7947"},
		{"dns://members:9000", "dns://members:9000"},
		{"dns://members:0", ""},
		{"dns://members:x", ""},
		{"multicast://228.0.0.4:45564", "multicast://228.0.0.4:45564"},
		{"multicast://228.0.0.4", "multicast://228.0.0.4:45564"},
		{"multicast://228.0.0.4:45564?iface=lo", "multicast://228.0.0.4:45564"},
		{"multicast://[ff02::1]:7000", "multicast://[ff02::1]:7000"},
		{"multicast://10.0.0.1:45564", ""},        // not a group
		{"multicast://shoal.local:45564", ""},     // names are not groups
		{"multicast://228.0.0.4:45564/x", ""},     // nothing after
		{"multicast://228.0.0.4:45564?ttl=3", ""}, // unknown parameter
		{"multicast://228.0.0.4:70000", ""},
		{"http://x", ""},
		{"members", ""},
		{"dns://members/path", ""},
	} {
		d, err := Parse(tc.in, 7947)
		if (err == nil) != (tc.want != "") {
			t.Errorf("Parse(%q) = %v, want ok=%v", tc.in, err, tc.want != "")
			continue
		}
		if err == nil && d.String() != tc.want {
			t.Errorf("Parse(%q) = %s, want %s", tc.in, d, tc.want)
		}
	}
	if _, err := Parse("udp://228.0.0.4:45564", 1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("udp: %v, want ErrUnsupported", err)
	}
	if d, _ := Parse("multicast://228.0.0.4?iface=eth7", 1); d.(*Multicast).Iface != "eth7" {
		t.Errorf("iface not kept: %+v", d)
	}
}

func TestAddrs(t *testing.T) {
	r := &fakeResolver{ips: []string{"10.0.0.2", "10.0.0.1", "::1", "10.0.0.1"}}
	got, err := (&DNS{Name: "x", Port: 7947, Resolver: r}).Addrs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:7947", "10.0.0.2:7947", "[::1]:7947"}; !slices.Equal(got, want) {
		t.Fatalf("Addrs = %v, want %v", got, want)
	}
}

// TestLoopFindsLateMembers: addresses that appear later are joined; known
// ones are not joined again; a resolver error is reported and the loop
// goes on.
func TestLoopFindsLateMembers(t *testing.T) {
	r := &fakeResolver{ips: []string{"127.0.0.1"}}
	var mu sync.Mutex
	var joined []string
	known := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(joined)
	}
	join := func(_ context.Context, addrs []string) error {
		mu.Lock()
		defer mu.Unlock()
		joined = append(joined, addrs...)
		return nil
	}
	errs := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Loop(ctx, &DNS{Name: "x", Port: 1, Resolver: r}, 5*time.Millisecond, known, join, func(err error) {
			select {
			case errs <- err:
			default:
			}
		})
		close(done)
	}()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait("the first member", func() bool { return len(known()) == 1 })
	r.mu.Lock()
	r.err = errors.New("SERVFAIL")
	r.mu.Unlock()
	select {
	case <-errs:
	case <-time.After(5 * time.Second):
		t.Fatal("resolver error not reported")
	}
	r.mu.Lock()
	r.err, r.ips = nil, []string{"127.0.0.1", "127.0.0.2"}
	r.mu.Unlock()
	wait("the late member", func() bool { return len(known()) == 2 })
	cancel()
	<-done
	if got := known(); !slices.Equal(got, []string{"127.0.0.1:1", "127.0.0.2:1"}) {
		t.Fatalf("joined %v: each address once", got)
	}
}
