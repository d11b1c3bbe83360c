package replication

import "context"

// SendStraysForTest runs one stray-copy pass now.
func (n *Node) SendStraysForTest() {
	n.unsettledUntil.Store(0)
	n.sendStrays(context.Background())
}

// InboundForTest counts the connections that peers dialed to t and that
// are still open.
func (t *TCPTransport) InboundForTest() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.inbound)
}
