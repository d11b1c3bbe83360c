package membership_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/shoal-go/shoal/internal/membership"
)

// Two members on loopback: the second joins the first, and both see the
// cluster.
func Example() {
	key, err := membership.GenerateKey() // in production: LoadKeyFile
	if err != nil {
		log.Fatal(err)
	}
	start := func(name, http, repl string) *membership.Membership {
		cfg := membership.DefaultLocalConfig()
		cfg.Name, cfg.HTTPAddr, cfg.ReplAddr, cfg.Key = name, http, repl, key
		m, err := membership.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		return m
	}
	n1 := start("n1", "127.0.0.1:8081", "127.0.0.1:7071")
	defer n1.Close()
	n2 := start("n2", "127.0.0.1:8082", "127.0.0.1:7072")
	defer n2.Close()

	if _, err := n2.Join(context.Background(), []string{n1.Self().Gossip}); err != nil {
		log.Fatal(err)
	}
	if err := n2.SetState(membership.StateReady); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ms := n1.Members(); len(ms) == 2 && ms[1].State == membership.StateReady {
			break
		}
	}
	for _, m := range n1.Members() {
		fmt.Println(m.Name, m.State, m.HTTPAddr)
	}
	// Output:
	// n1 joining 127.0.0.1:8081
	// n2 ready 127.0.0.1:8082
}
