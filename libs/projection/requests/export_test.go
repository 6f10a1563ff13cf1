package requests

// HeldKeys is how many keys of the last batch ApplyBatch wrote into the
// store still holds.
func HeldKeys(s *Store) int { return len(s.written) }
