package hub

import (
	"context"
	"testing"
	"time"
)

// testContext bounds an internal test: it ends after d or with the test.
// (The external tests, package hub_test, have their own in server_test.go.)
func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
