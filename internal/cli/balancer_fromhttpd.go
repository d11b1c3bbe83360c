package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/shoal-go/shoal/internal/httpdconf"
)

// fromHTTPDUsage is the help of `shoal balancer --from-httpd`.
const fromHTTPDUsage = "print the shoal config file (for --config) equivalent to the balancer of Apache httpd config `FILE`\n" +
	"(<Proxy balancer://...>, BalancerMember, ProxySet, ProxyPass), list on stderr what it cannot translate,\n" +
	"and exit: 0 if everything was translated, 1 if something was not, 2 if FILE cannot be read"

// errNotTranslated is returned when --from-httpd could not translate
// everything: shoal exits 1, after the list on stderr.
var errNotTranslated = errors.New("not everything could be translated")

// inputError is a --from-httpd FILE that cannot be read: shoal exits 2,
// as for any bad argument, without pointing at the help (the file is
// what is wrong).
type inputError struct{ err error }

func (e *inputError) Error() string   { return e.err.Error() }
func (e *inputError) Unwrap() []error { return []error{e.err, ErrUsage} }

// runFromHTTPD is `shoal balancer --from-httpd FILE`: it translates FILE
// and prints the config to stdout, the problems to stderr. Other flags
// are refused: the command prints a config, it runs no balancer.
func runFromHTTPD(inv *invocation, fs *flag.FlagSet, path string) error {
	var others []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "from-httpd" {
			others = append(others, "--"+f.Name)
		}
	})
	if len(others) > 0 {
		return inv.usageErr("--from-httpd prints a config and runs no balancer: give it alone (not %s)", others[0])
	}
	data, err := readHTTPDConf(path)
	if err != nil {
		return &inputError{fmt.Errorf("balancer: --from-httpd %s: %w", path, err)}
	}
	f, err := httpdconf.Parse(path, data)
	if err != nil {
		return &inputError{fmt.Errorf("balancer: --from-httpd: %w", err)}
	}
	res := httpdconf.Translate(f)
	for _, p := range res.Problems {
		fmt.Fprintln(inv.stderr, p)
	}
	if res.Config != nil {
		if _, err := inv.stdout.Write(res.Config); err != nil {
			return err
		}
	}
	if n := res.NotTranslated(); n > 0 {
		return fmt.Errorf("balancer: --from-httpd %s: %w: %d listed above as \"not translated\"", path, errNotTranslated, n)
	}
	return nil
}

// readHTTPDConf reads at most httpdconf.MaxFileSize+1 bytes of path:
// Parse refuses larger files.
func readHTTPDConf(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errMessage(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, httpdconf.MaxFileSize+1))
	if err != nil {
		return nil, errMessage(err)
	}
	return data, nil
}

// errMessage drops the path from a file error: the caller's message
// names the file.
func errMessage(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
