package cli

import (
	"context"
	"fmt"
)

// runHelp is `shoal help [command]`: shoal's help, or a command's (the
// same text as `shoal <command> --help`).
func runHelp(ctx context.Context, inv *invocation) error {
	fs := inv.flagSet()
	if help, err := inv.parse(fs); help || err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
		return printUsage(inv.stdout)
	case 1:
	default:
		return inv.usageErr("want at most one command, got %d arguments", fs.NArg())
	}
	cmd, ok := lookup(fs.Arg(0))
	if !ok {
		return &usageError{err: fmt.Errorf("help: unknown command %q", fs.Arg(0))}
	}
	return cmd.run(ctx, &invocation{cmd: cmd, args: []string{"--help"}, stdout: inv.stdout, stderr: inv.stderr})
}
