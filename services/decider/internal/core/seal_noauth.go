//go:build assentbench_noauth

package core

import (
	"fmt"
	"os"
)

// sealing is false in the benchmark build only: Txn.Seal writes no seal,
// so the decider neither signs nor writes the seal record, the decider's
// share of what authentication costs. Only scripts/bench --auth builds it.
const sealing = false

// NoAuthBanner is printed at start by the benchmark build; a test checks
// that the production binaries do not contain it.
const NoAuthBanner = "assentbench_noauth: a benchmark build whose decider writes no seals; never run it in production"

func init() { _, _ = fmt.Fprintln(os.Stderr, NoAuthBanner) }
