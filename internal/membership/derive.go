package membership

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"time"
)

// GossipKey derives the gossip encryption key from a cluster key: one
// cluster key serves gossip and replication, each with a key of its own.
// Every member (node or observer) must derive it the same way.
func GossipKey(clusterKey []byte) ([]byte, error) {
	if len(clusterKey) != KeySize {
		return nil, fmt.Errorf("%w: cluster key is %d bytes, want %d", ErrInvalidKey, len(clusterKey), KeySize)
	}
	return hkdf.Key(sha256.New, clusterKey, nil, "shoal gossip v1", KeySize)
}

// SetDeadAfter tunes c so that a member that stops answering is declared
// dead after about d: ProbeInterval·(2 + SuspicionMult) with SuspicionMult
// 4. d <= 0 leaves c as it is.
func (c *Config) SetDeadAfter(d time.Duration) {
	if d <= 0 {
		return
	}
	c.ProbeInterval = max(d/6, 10*time.Millisecond)
	c.ProbeTimeout = c.ProbeInterval * 2 / 5
	c.GossipInterval = c.ProbeInterval / 2
	c.SuspicionMult = 4
}
