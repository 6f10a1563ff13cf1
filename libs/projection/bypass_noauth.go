//go:build assentbench_noauth

package projection

import (
	"fmt"
	"os"

	"github.com/assent-dev/assent/libs/wire"
)

// NoAuthBanner is printed at start by every binary built with the
// assentbench_noauth tag. Only scripts/bench --auth builds one, for the
// "without authentication" arm of the benchmark; a test builds the
// production binaries and checks that this text is not in them.
const NoAuthBanner = "assentbench_noauth: a benchmark build that applies records without authenticating them; never run it in production"

func init() { _, _ = fmt.Fprintln(os.Stderr, NoAuthBanner) }

// bypass, in the benchmark build only, applies every record that decodes
// at once, without waiting for or verifying a seal: the reader's share of
// what authentication costs. A record that does not decode is rejected
// as invalid, as in the production build.
func bypass(it wire.Item, decodeErr error) (wire.Result, bool) {
	switch {
	case it.Record.Control:
		return wire.Result{}, true
	case decodeErr != nil:
		return wire.Result{Rejected: []wire.Rejection{{Item: it, Kind: wire.KindInvalid, Reason: decodeErr.Error()}}}, true
	}
	return wire.Result{Apply: []wire.Item{it}}, true
}
