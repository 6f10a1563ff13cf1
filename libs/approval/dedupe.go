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
