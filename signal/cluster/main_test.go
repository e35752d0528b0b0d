package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// registries' loops, watchers, NATS connections and embedded servers must
// all be gone once their cleanups ran.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
