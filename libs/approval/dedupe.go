//go:build !assent_broken_dedupe

package approval

// replayed reports whether the command id was already decided, and how:
// the command-id dedupe that exactly-once decisions rest on (I2).
//
// Its twin in dedupe_broken.go, built only with the assent_broken_dedupe
// tag, forgets every command id: the deliberately broken build with which
// the fault-injection suite (test/chaos) shows that its checker catches a
// decider without dedupe.
func replayed(s State, c Command) (Outcome, bool) {
	o, seen := s.Outcomes[c.ID]
	return o, seen && c.ID != ""
}

// Recall returns the outcome of command id if it was already decided: from
// s, or, for an id s does not hold while s has forgotten refusals (beyond
// MaxRefusedOutcomes, see State.Forgot), from older, which looks the
// refusal up where every refusal of the request is kept (the decider asks
// its projection). older is not called otherwise. A decider that calls
// Recall before Decide decides every command id once, however many
// refusals came after it (I2).
func Recall(s State, id string, older func(id string) (Outcome, bool, error)) (Outcome, bool, error) {
	if id == "" {
		return Outcome{}, false, nil
	}
	if o, seen := s.Outcomes[id]; seen {
		return o, true, nil
	}
	if !s.Forgot() {
		return Outcome{}, false, nil
	}
	return older(id)
}
