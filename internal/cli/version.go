package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is shoal's version. Release builds set it with
//
//	go build -ldflags "-X github.com/shoal-go/shoal/internal/cli.Version=v1.2.3" ./cmd/shoal
//
// Left at "dev", the main module's version from the build information is
// used instead when there is one (go install github.com/shoal-go/shoal/cmd/shoal@v1.2.3).
var Version = "dev"

// version returns the version to report.
func version() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	return Version
}

// runVersion is `shoal version`.
func runVersion(_ context.Context, inv *invocation) error {
	fs := inv.flagSet()
	if help, err := inv.parse(fs); help || err != nil {
		return err
	}
	if err := inv.noArgs(fs); err != nil {
		return err
	}
	_, err := fmt.Fprintf(inv.stdout, "shoal %s (%s)\n", version(), runtime.Version())
	return err
}
