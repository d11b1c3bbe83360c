package balancer

import "errors"

var (
	// ErrInvalidConfig is wrapped by every error New returns for a Config
	// it refuses; the message says which setting and why.
	ErrInvalidConfig = errors.New("invalid balancer config")

	// errFailOnStatus is what ModifyResponse returns for a response whose
	// status is in FailOnStatus when the request will be retried: the
	// ReverseProxy then discards the response instead of sending it.
	errFailOnStatus = errors.New("status in failonstatus")
)
