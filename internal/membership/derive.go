package membership

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
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
