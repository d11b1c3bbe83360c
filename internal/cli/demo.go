package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-go/shoal/internal/membership"
)

// demoStopTimeout bounds how long the demo waits for a child to stop after
// SIGTERM before it kills it.
const demoStopTimeout = 15 * time.Second

// runDemo is `shoal demo`: a balancer and three cluster nodes, each a
// separate process running this same binary, on loopback.
func runDemo(ctx context.Context, inv *invocation) error {
	fs := inv.flagSet()
	listen := fs.String("listen", "127.0.0.1:8080", "serve the balancer on `ADDR`; the app is at http://ADDR/")
	nodes := fs.Int("nodes", 3, "start `N` nodes")
	if help, err := inv.parse(fs); help || err != nil {
		return err
	}
	if err := inv.noArgs(fs); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 9 {
		return inv.usageErr("--nodes %d: want 1 to 9", *nodes)
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return inv.usageErr("--listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return inv.usageErr("--listen %q: the demo runs on loopback only", *listen)
	}
	log := newLogger(inv.stderr, "text", slog.LevelInfo).With(slog.String("component", "demo"))
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: cannot find this program to start its processes: %w", err)
	}
	dir, err := os.MkdirTemp("", "shoal-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "cluster.key")
	key, err := membership.GenerateKey()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(keyFile, []byte(membership.EncodeKey(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// The balancer's port is checked first: it is the one a user opens.
	// The nodes' ports are chosen while it is held, all at once, so that
	// none of them is the balancer's or another's.
	addrs, err := reserveAddrs(*listen, 2**nodes+1)
	if err != nil {
		return err
	}

	d := &demo{self: self, stderr: inv.stderr, log: log, exited: make(chan string, *nodes+1)}
	defer d.stopAll()

	var firstGossip string
	for i := 1; i <= *nodes; i++ {
		name := "n" + strconv.Itoa(i)
		httpAddr, gossip := addrs[2*(i-1)], addrs[2*(i-1)+1]
		args := []string{"node", "--name", name, "--listen", httpAddr, "--cluster-listen", gossip, "--cluster-key-file", keyFile}
		if firstGossip != "" {
			args = append(args, "--join", firstGossip)
		} else {
			firstGossip = gossip
		}
		if err := d.start(ctx, name, args); err != nil {
			return err
		}
		if err := waitReady(ctx, "http://"+httpAddr+"/healthz/ready", d.exited); err != nil {
			return fmt.Errorf("demo: node %s: %w", name, err)
		}
	}
	// The balancer follows the cluster (no --member list): it learns the
	// nodes from membership, drops a killed one as fast as the nodes do,
	// and sends its sessions straight to nodes that hold them.
	balancerGossip := addrs[2**nodes]
	if err := d.start(ctx, "balancer", []string{"balancer", "--listen", *listen, "--cluster-join", firstGossip,
		"--cluster-key-file", keyFile, "--cluster-listen", balancerGossip, "--cluster-name", "balancer"}); err != nil {
		return err
	}
	if err := waitReady(ctx, "http://"+*listen+"/", d.exited); err != nil {
		return fmt.Errorf("demo: balancer: %w", err)
	}
	fmt.Fprintf(inv.stdout, "\nshoal demo: a balancer and %d cluster nodes are running.\n\n"+
		"  open   http://%s/   log in, count, reload\n"+
		"  then   kill -9 the PID of the node the page names: the next request goes to\n"+
		"         another node, and the session (user, counter) is still there\n\n", *nodes, *listen)
	for _, c := range d.list() {
		fmt.Fprintf(inv.stdout, "  %-8s pid %d\n", c.name, c.cmd.Process.Pid)
	}
	fmt.Fprint(inv.stdout, "\nPress Ctrl-C to stop them all.\n\n")

	// A node that dies is what the demo is for: the others carry on. The
	// balancer dying, or every node, ends the demo.
	alive := *nodes
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping the demo")
			return nil
		case name := <-d.exited:
			if name == "balancer" {
				return errors.New("demo: the balancer exited unexpectedly; stopping the nodes")
			}
			alive--
			if alive == 0 {
				return errors.New("demo: every node has exited; stopping the balancer")
			}
			fmt.Fprintf(inv.stdout, "%s exited; the cluster goes on with %d node(s). Ctrl-C stops the rest.\n", name, alive)
		}
	}
}

// reserveAddrs checks that listen is free and returns n loopback
// addresses with ports that were free a moment ago. It holds every port
// it has chosen (and listen) open until it has them all: the system may
// hand a port just released to the next request for any port, and
// picking them one at a time gave a node the balancer's port.
func reserveAddrs(listen string, n int) ([]string, error) {
	held, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("demo: %s is not free (%v): choose another with --listen", listen, err)
	}
	lns := []net.Listener{held}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("demo: no free port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// waitReady polls url until it answers 200, the context ends, a child
// exits, or 30 s pass.
func waitReady(ctx context.Context, url string, exited <-chan string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 30 s (%s)", url)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case name := <-exited:
			return fmt.Errorf("%s exited while starting", name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// demo owns the child processes.
type demo struct {
	self   string
	stderr io.Writer
	log    *slog.Logger
	exited chan string // names of children that exited before stopAll

	mu       sync.Mutex // protects children, stopping
	children []*child
	stopping bool
	wg       sync.WaitGroup
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs this program with args as the child name; its log lines go
// to the demo's stderr prefixed with the name.
func (d *demo) start(ctx context.Context, name string, args []string) error {
	cmd := exec.Command(d.self, args...)
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = cmd.Stderr
	// Its own process group: Ctrl-C in the terminal reaches the demo,
	// which stops the children in order, rather than all at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("demo: start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	d.mu.Lock()
	d.children = append(d.children, c)
	d.mu.Unlock()
	d.log.Info("started", slog.String("process", name), slog.Int("pid", cmd.Process.Pid))
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(d.stderr, "[%s] %s\n", name, sc.Text())
		}
		cmd.Wait()
		close(c.done)
		d.mu.Lock()
		stopping := d.stopping
		d.mu.Unlock()
		if !stopping {
			d.exited <- name
		}
	}()
	return nil
}

func (d *demo) list() []*child {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*child(nil), d.children...)
}

// stopAll sends SIGTERM to every child still running (the balancer
// first, then the nodes in reverse order), waits for each up to
// demoStopTimeout, and kills what is left. It only signals the processes
// it started.
func (d *demo) stopAll() {
	d.mu.Lock()
	d.stopping = true
	children := append([]*child(nil), d.children...)
	d.mu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		select {
		case <-c.done:
			continue
		default:
		}
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			d.log.Warn("stop", slog.String("process", c.name), slog.Any("err", err))
		}
		select {
		case <-c.done:
		case <-time.After(demoStopTimeout):
			d.log.Warn("did not stop in time; killing it", slog.String("process", c.name))
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	d.wg.Wait()
}
