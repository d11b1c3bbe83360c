package balancerconf

import (
	"crypto/tls"
	"path/filepath"
)

// relativeTo returns name relative to the directory of the config file
// file, unless it is absolute or empty.
func relativeTo(file, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(filepath.Dir(file), name)
}

// tlsLoad loads a certificate and its key as the balancer will.
func tlsLoad(cert, key string) (tls.Certificate, error) {
	return tls.LoadX509KeyPair(cert, key)
}
