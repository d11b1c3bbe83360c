package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shoal-go/shoal/internal/admin"
	"github.com/shoal-go/shoal/internal/doctor"
)

// errDoctorFailed is returned when a check failed: shoal exits 1 after the
// report, which says what failed.
var errDoctorFailed = errors.New("doctor: a check failed")

// nodeList is a repeatable --node flag.
type nodeList []string

func (l *nodeList) String() string { return strings.Join(*l, ",") }

func (l *nodeList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// runDoctor is `shoal doctor`.
func runDoctor(ctx context.Context, inv *invocation) error {
	fs := inv.flagSet()
	var (
		nodes     nodeList
		balancer  string
		tokenFile string
		asJSON    bool
		timeout   time.Duration
	)
	fs.Var(&nodes, "node", "check the node at `URL` (its --listen; repeat, or comma-separate);\n"+
		"the nodes the balancer routes to and the members the nodes list are checked too")
	fs.StringVar(&balancer, "balancer", "", "check the balancer whose manager (--admin-listen) is at `URL`")
	fs.StringVar(&tokenFile, "admin-token-file", "", "read the manager's token from `FILE` (the balancer's --admin-token-file)")
	fs.BoolVar(&asJSON, "json", false, "print the results as JSON")
	fs.DurationVar(&timeout, "timeout", 5*time.Second, "give each request `DURATION` to answer")
	cluster := defineDoctorClusterFlags(fs)
	if help, err := inv.parse(fs); help || err != nil {
		return err
	}
	if err := inv.noArgs(fs); err != nil {
		return err
	}
	if balancer == "" && len(nodes) == 0 && !cluster.enabled() {
		return inv.usageErr("give --balancer URL, --node URL, or the cluster's --cluster-join/--cluster-discover and key")
	}
	if cluster.enabled() {
		found, err := cluster.nodeURLs(ctx)
		if err != nil {
			return fmt.Errorf("doctor: %w", err)
		}
		for _, u := range found {
			if !slices.Contains(nodes, u) {
				nodes = append(nodes, u)
			}
		}
	}
	if tokenFile != "" && balancer == "" {
		return inv.usageErr("--admin-token-file goes with --balancer")
	}
	if timeout <= 0 {
		return inv.usageErr("--timeout %v: want a positive duration", timeout)
	}
	cfg := doctor.Config{Balancer: balancer, Nodes: nodes, Timeout: timeout}
	if tokenFile != "" {
		token, err := admin.ReadTokenFile(tokenFile)
		if err != nil {
			return fmt.Errorf("doctor: --admin-token-file: %w", err)
		}
		cfg.Token = token
	}
	rep, err := doctor.Run(ctx, cfg)
	if err != nil {
		return inv.usageErr("%w", err)
	}
	if asJSON {
		err = rep.WriteJSON(inv.stdout)
	} else {
		err = rep.WriteText(inv.stdout)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return errDoctorFailed
	}
	return nil
}
