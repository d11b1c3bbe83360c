package replication

import "context"

// SendStraysForTest runs one stray-copy pass now.
func (n *Node) SendStraysForTest() {
	n.unsettledUntil.Store(0)
	n.sendStrays(context.Background())
}
