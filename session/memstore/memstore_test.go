package memstore_test

import (
	"testing"

	"github.com/shoal-go/shoal/session"
	"github.com/shoal-go/shoal/session/memstore"
	"github.com/shoal-go/shoal/session/sessiontest"
)

func TestStore(t *testing.T) {
	sessiontest.RunStoreTests(t, func(*testing.T) session.Store { return memstore.New() })
}
