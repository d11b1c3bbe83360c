// Package cli implements the shoal command: its subcommands (demo, node,
// balancer, doctor, version, help), their flags and their help texts.
// cmd/shoal only calls Run.
//
// Flags are parsed with the standard library's flag package, one
// flag.NewFlagSet(name, flag.ContinueOnError) per command, so that Run
// returns errors instead of exiting and tests can drive it with arguments
// and buffers. It costs no dependency, and what cobra would add (nested
// command trees, shell completion, flag groups) is not needed for a
// handful of flat subcommands. The flag package accepts "--name value",
// "--name=value", "-name value" alike, so the help texts show the long
// "--name" form.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrUsage is matched (errors.Is) by every error about how shoal was
// called: an unknown command, an unknown flag, a missing or invalid flag
// value, a stray argument. cmd/shoal exits 2 for them, 1 for other errors.
var ErrUsage = errors.New("usage error")

// usageError is an error in how a command was called. Its message points
// to the help that explains the right way.
type usageError struct {
	cmd string // the command whose help to read; "" for shoal's own
	err error
}

func (e *usageError) Error() string {
	help := "shoal help"
	if e.cmd != "" {
		help += " " + e.cmd
	}
	return fmt.Sprintf("%v (run '%s')", e.err, help)
}

func (e *usageError) Unwrap() []error { return []error{e.err, ErrUsage} }

// command is one subcommand of shoal.
type command struct {
	name    string
	summary string // one line, shown by `shoal help` and atop the command's --help
	args    string // what follows "shoal <name>" in the usage line
	example string // the Example section of --help, one command per line
	run     func(ctx context.Context, inv *invocation) error
}

// commands is shoal's table of subcommands, in the order `shoal help`
// lists them. Add new commands here, one file each. (It is a
// function rather than a variable because help's run reads the table:
// a variable would be an initialization cycle.)
func commands() []command {
	return []command{
		{
			name:    "demo",
			summary: "start a balancer and three cluster nodes on this machine, and print the URL",
			args:    "[flags]",
			example: "shoal demo\nshoal demo --listen 127.0.0.1:9000 --nodes 5",
			run:     runDemo,
		},
		{
			name:    "node",
			summary: "run one node: the demo app behind the session middleware",
			args:    "--name NAME [flags]",
			example: "shoal node --name n1 --listen 127.0.0.1:8081\n" +
				"shoal node --gen-key > cluster.key\n" +
				"shoal node --name n1 --listen 127.0.0.1:8081 --cluster-listen 127.0.0.1:7946 --cluster-key-file cluster.key\n" +
				"shoal node --name n2 --listen 127.0.0.1:8082 --cluster-listen 127.0.0.1:7947 --cluster-key-file cluster.key --join 127.0.0.1:7946",
			run: runNode,
		},
		{
			name:    "balancer",
			summary: "run the balancer: sticky sessions, load balancing and failover over nodes",
			args:    "--member ROUTE=URL [--member ROUTE=URL ...] [flags]",
			example: "shoal balancer --listen 127.0.0.1:8000 --member n1=http://127.0.0.1:8081 --member n2=http://127.0.0.1:8082\n" +
				"shoal balancer --member n1=http://10.0.0.5:8080,weight=2 --member n2=http://10.0.0.6:8080 --member spare=http://10.0.0.7:8080,standby\n" +
				"shoal balancer --member n1=http://127.0.0.1:8081 --member n2=http://127.0.0.1:8082 --method hash --hash-key header:X-User --failonstatus 503",
			run: runBalancer,
		},
		{
			name:    "doctor",
			summary: "check a running cluster and balancer, and say what is wrong and what to do",
			args:    "[--balancer URL --admin-token-file FILE] [--node URL ...] [flags]",
			example: "shoal doctor --node http://127.0.0.1:8081\n" +
				"shoal doctor --balancer http://127.0.0.1:8001 --admin-token-file admin.token --node 10.0.0.5:8080,10.0.0.6:8080\n" +
				"shoal doctor --node http://127.0.0.1:8081 --json",
			run: runDoctor,
		},
		{
			name:    "version",
			summary: "print shoal's version and the Go version it was built with",
			example: "shoal version",
			run:     runVersion,
		},
		{
			name:    "help",
			summary: "show the commands, or the flags and examples of one command",
			args:    "[command]",
			example: "shoal help\nshoal help node",
			run:     runHelp,
		},
	}
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// Run runs shoal with args (os.Args[1:]): output for the user goes to
// stdout, logs to stderr. It returns when the command is done, or, for
// long-running commands such as node, after ctx is cancelled and the
// command has stopped cleanly. Errors about the arguments match ErrUsage.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return printUsage(stdout)
	}
	switch name := args[0]; {
	case isHelpFlag(name):
		return printUsage(stdout)
	case strings.HasPrefix(name, "-"):
		return &usageError{err: fmt.Errorf("unknown flag %q: flags go after the command", name)}
	}
	cmd, ok := lookup(args[0])
	if !ok {
		return &usageError{err: fmt.Errorf("unknown command %q", args[0])}
	}
	return cmd.run(ctx, &invocation{cmd: cmd, args: args[1:], stdout: stdout, stderr: stderr})
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "-help" || s == "--help"
}

// printUsage prints shoal's own help.
func printUsage(w io.Writer) error {
	var b strings.Builder
	b.WriteString("shoal runs a stateful Go web app on several nodes behind one balancer,\n" +
		"with sessions that survive whichever node serves the next request.\n\n")
	b.WriteString("Usage:\n  shoal <command> [flags]\n\nCommands:\n")
	cmds := commands()
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name, c.summary)
	}
	b.WriteString("\nRun 'shoal help <command>' or 'shoal <command> --help' for its flags and examples.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// invocation is one run of a command: its arguments after the command's
// name and where its output goes.
type invocation struct {
	cmd    command
	args   []string
	stdout io.Writer
	stderr io.Writer
}

// flagSet returns an empty flag set for the command. It prints nothing:
// parse reports errors and prints the help.
func (inv *invocation) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("shoal "+inv.cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses the invocation's arguments into fs. When they ask for help
// (-h, --help), it prints the command's help to stdout and reports
// help=true with a nil error: the command then returns nil. A bad flag is
// a usage error.
func (inv *invocation) parse(fs *flag.FlagSet) (help bool, err error) {
	err = fs.Parse(inv.args)
	if errors.Is(err, flag.ErrHelp) {
		return true, inv.printHelp(fs)
	}
	if err != nil {
		return false, inv.usageErr("%v", err)
	}
	return false, nil
}

// noArgs returns a usage error if fs was given positional arguments.
func (inv *invocation) noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return inv.usageErr("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// usageErr returns a usage error for this command.
func (inv *invocation) usageErr(format string, a ...any) error {
	return &usageError{cmd: inv.cmd.name, err: fmt.Errorf(inv.cmd.name+": "+format, a...)}
}

// printHelp prints the command's help: summary, usage line, flags and
// examples.
func (inv *invocation) printHelp(fs *flag.FlagSet) error {
	c := inv.cmd
	var b strings.Builder
	fmt.Fprintf(&b, "shoal %s: %s\n\nUsage:\n  shoal %s", c.name, c.summary, c.name)
	if c.args != "" {
		b.WriteString(" " + c.args)
	}
	b.WriteString("\n")
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) { writeFlag(&b, f) })
	}
	b.WriteString("\nExample:\n")
	for line := range strings.SplitSeq(c.example, "\n") {
		b.WriteString("  " + line + "\n")
	}
	_, err := io.WriteString(inv.stdout, b.String())
	return err
}

// writeFlag writes one flag as flag.PrintDefaults does, in the long
// "--name" form.
func writeFlag(b *strings.Builder, f *flag.Flag) {
	argName, usage := flag.UnquoteUsage(f)
	fmt.Fprintf(b, "  --%s", f.Name)
	if argName != "" {
		b.WriteString(" " + argName)
	}
	b.WriteString("\n        " + strings.ReplaceAll(usage, "\n", "\n        "))
	if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
		fmt.Fprintf(b, " (default %s)", f.DefValue)
	}
	b.WriteString("\n")
}
