package requests

import "github.com/assent-dev/assent/libs/approval"

// HeldKeys is how many keys of the last batch ApplyBatch wrote into the
// store still holds.
func HeldKeys(s *Store) int { return s.reads.Held() }

// AppendState is appendState, for the tests.
func AppendState(b []byte, s *approval.State) ([]byte, bool) { return appendState(b, s) }
