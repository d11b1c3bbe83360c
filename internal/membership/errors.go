package membership

import "errors"

var (
	// ErrClosed is returned by the methods of a Membership that was closed
	// (or that left the cluster).
	ErrClosed = errors.New("closed")

	// ErrInvalidConfig is wrapped by every error New returns for a Config
	// it refuses; the message says which field and why.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrInsecureNotLoopback is returned by New when Config.Insecure is set
	// but the gossip listener (BindAddr) or the advertised address is not a
	// loopback address: unencrypted gossip never leaves the machine.
	ErrInsecureNotLoopback = errors.New("insecure (unencrypted) gossip is only allowed on loopback addresses")

	// ErrKeyMismatch is returned by Join when the members it reached use a
	// different cluster key (or none, or we have none and they have one).
	ErrKeyMismatch = errors.New("cluster key mismatch")

	// ErrNotShoalCluster is returned by Join when the address answered but
	// the exchange failed in a way that only says "this is not a shoal
	// cluster with our key": another memberlist cluster (wrong gossip
	// label), another protocol, or a key mismatch we cannot tell apart.
	ErrNotShoalCluster = errors.New("not a shoal cluster, or key mismatch")

	// ErrDuplicateName is returned by Join when a member with our Name is
	// already alive in the cluster at another address.
	ErrDuplicateName = errors.New("duplicate node name")

	// ErrBroadcastTimeout is returned by Leave when memberlist did not
	// confirm, within Leave's timeout, that it sent the leave out: the
	// others may then report us as dead rather than left.
	ErrBroadcastTimeout = errors.New("broadcast not confirmed in time")

	// ErrInvalidKey is wrapped by ParseKey and LoadKeyFile when the key
	// text is not base64 of exactly KeySize bytes.
	ErrInvalidKey = errors.New("invalid cluster key")

	// ErrKeyFileMode is returned by LoadKeyFile when the key file can be
	// read by others or written by its group.
	ErrKeyFileMode = errors.New("cluster key file permissions too open")

	// ErrInvalidMeta is wrapped by the metadata decoder when a peer's
	// memberlist node metadata is not a shoal member description.
	ErrInvalidMeta = errors.New("invalid member metadata")
)
