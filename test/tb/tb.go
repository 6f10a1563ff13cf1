// Package tb names the part of testing.TB that the rigs under test/ use, so
// that they take a *testing.T or *testing.B without importing testing
// themselves: no file outside a _test.go file imports testing (the depguard
// rule "no-testing" in .golangci.yml holds every package to that), and a
// rig that did could not be linked into a tool either.
package tb

import "context"

// TB is satisfied by *testing.T, *testing.B and *testing.F.
type TB interface {
	Cleanup(func())
	Context() context.Context
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Helper()
	Logf(format string, args ...any)
	Name() string
	Skip(args ...any)
	Skipf(format string, args ...any)
	TempDir() string
}
