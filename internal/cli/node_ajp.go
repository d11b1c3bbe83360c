package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"

	"github.com/shoal-go/shoal/ajp"
	"github.com/shoal-go/shoal/rawnet"
)

// ajpFlags are the flags of `shoal node` that serve the application
// over AJP/1.3 as well, for Apache httpd's mod_proxy_ajp in front
// (package ajp).
type ajpFlags struct {
	addr       string // --ajp: the AJP address; "" means no AJP
	secretFile string // --ajp-secret-file
	insecure   bool   // --ajp-insecure-no-secret
	raw        bool   // --raw-syscalls: connections through rawnet
}

func (a *ajpFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&a.addr, "ajp", "",
		"also serve the application over AJP/1.3 on `ADDR` (host:port), for Apache httpd's\n"+
			"mod_proxy_ajp (BalancerMember ajp://HOST:PORT route=NAME secret=...)")
	fs.StringVar(&a.secretFile, "ajp-secret-file", "",
		"the AJP secret is in `FILE` (one line; mode 0600), the same as Apache's secret=;\n"+
			"requests without it are refused (403) and logged")
	fs.BoolVar(&a.insecure, "ajp-insecure-no-secret", false,
		"serve AJP without a secret: anyone reaching the port can claim any client address,\n"+
			"user and TLS state (CVE-2020-1938); refused unless --ajp is on loopback")
}

// validate checks the AJP flags against each other.
func (a *ajpFlags) validate() error {
	if a.addr == "" {
		if a.secretFile != "" || a.insecure {
			return errors.New("--ajp-secret-file and --ajp-insecure-no-secret need --ajp")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(a.addr)
	if err != nil {
		return fmt.Errorf("--ajp %q: want host:port", a.addr)
	}
	switch {
	case a.secretFile != "" && a.insecure:
		return errors.New("--ajp-secret-file and --ajp-insecure-no-secret both set: choose one")
	case a.secretFile == "" && !a.insecure:
		return errors.New("--ajp needs --ajp-secret-file (the secret Apache sends: BalancerMember ... secret=...), " +
			"or --ajp-insecure-no-secret on loopback")
	case a.insecure && !loopbackHost(host):
		return fmt.Errorf("--ajp-insecure-no-secret is refused on %q: an AJP port without a secret trusts whoever reaches it; "+
			"use a loopback address (127.0.0.1) or --ajp-secret-file", a.addr)
	}
	return nil
}

// loopbackHost reports whether host names only this machine. An empty
// host (all interfaces) does not.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readAJPSecret reads a secret file: one line, not readable by others.
func readAJPSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--ajp-secret-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--ajp-secret-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("--ajp-secret-file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o027 != 0 {
		return "", fmt.Errorf("--ajp-secret-file %s has mode %#o (group-writable or readable by others); run: chmod 600 %s", path, perm, path)
	}
	const limit = 4096 // a secret is a line; more is the wrong file
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return "", fmt.Errorf("--ajp-secret-file %s: %w", path, err)
	}
	secret := strings.TrimSpace(string(b))
	switch {
	case len(b) == limit:
		return "", fmt.Errorf("--ajp-secret-file %s: %d bytes or more; want one line", path, limit)
	case secret == "":
		return "", fmt.Errorf("--ajp-secret-file %s is empty", path)
	case strings.ContainsAny(secret, "\r\n\x00"):
		return "", fmt.Errorf("--ajp-secret-file %s: want one line", path)
	}
	return secret, nil
}

// around serves the application over AJP beside HTTP: it returns a
// start that also starts the AJP server once the application is made
// (so AJP, like HTTP, serves only a ready node), and a stop that shuts
// the AJP server down (started when ctx ends, in parallel with the
// HTTP server's shutdown) and waits for it. Without --ajp both are
// no-ops.
func (a *ajpFlags) around(ctx context.Context, log *slog.Logger, start func() (http.Handler, error)) (func() (http.Handler, error), func()) {
	if a.addr == "" {
		return start, func() {}
	}
	stopped := make(chan struct{})
	started := false
	stop := func() {
		if started {
			<-stopped
		}
	}
	return func() (http.Handler, error) {
		srv := &ajp.Server{InsecureNoSecret: a.insecure, Logger: log}
		if a.secretFile != "" {
			secret, err := readAJPSecret(a.secretFile)
			if err != nil {
				return nil, fmt.Errorf("node: %w", err)
			}
			srv.Secret = secret
		}
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			return nil, fmt.Errorf("node: ajp: %w", err)
		}
		if a.raw {
			ln = rawnet.Listener(ln)
		}
		app, err := start()
		if err != nil {
			ln.Close()
			return nil, err
		}
		srv.Handler = app
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		started = true
		go func() {
			defer close(stopped)
			select {
			case err := <-served:
				log.Error("node: serving AJP failed", slog.String("addr", ln.Addr().String()), slog.Any("err", err))
				return
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), nodeShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("AJP graceful shutdown did not finish in time; connections closed", slog.Any("err", err))
			}
			<-served
		}()
		log.Info("node serving AJP", slog.String("addr", ln.Addr().String()), slog.Bool("secret", srv.Secret != ""))
		return app, nil
	}, stop
}
