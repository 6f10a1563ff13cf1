//go:build assent_broken_dedupe

package approval

// replayed, in this deliberately broken build, never recognises a command
// id: a redelivered or duplicated command is decided again. Only the
// fault-injection suite builds it (go build -tags assent_broken_dedupe), to
// prove that its checker reports the duplicate decisions (I2). Never ship
// it.
func replayed(State, Command) (Outcome, bool) { return Outcome{}, false }

// Recall, in this deliberately broken build, never recalls anything
// either (see replayed).
func Recall(State, string, func(string) (Outcome, bool, error)) (Outcome, bool, error) {
	return Outcome{}, false, nil
}
