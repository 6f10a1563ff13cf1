package projection

// Test hooks: the runner's own keys, so that a test can tamper with a
// closed store the way a truncated log would leave it.
var (
	KeyOffset   = keyOffset
	EncodeInt64 = encodeInt64
)

// LagPeriod is how often the runner reads the end offsets for Lag.
const LagPeriod = lagPeriod
