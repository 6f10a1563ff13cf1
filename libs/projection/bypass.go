//go:build !assentbench_noauth

package projection

import "github.com/assent-dev/assent/libs/wire"

// bypass never bypasses the authenticator: every record goes through
// wire.Authenticator and only what a valid seal covers is applied
// (docs/architecture.md, "Seals"). Its twin in bypass_noauth.go exists
// only in binaries built with the assentbench_noauth tag, which
// scripts/bench --auth builds for the "without authentication" arm of the
// benchmark; no production build has it, and nothing read at run time
// (no setting, no flag) selects it.
func bypass(wire.Item, error) (wire.Result, bool) { return wire.Result{}, false }
