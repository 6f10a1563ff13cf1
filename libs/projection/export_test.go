package projection

import (
	"context"

	"github.com/assent-dev/assent/libs/wire"
)

// Test hooks: the runner's own keys, so that a test can tamper with a
// closed store the way a truncated log would leave it.
var (
	KeyOffset   = keyOffset
	EncodeInt64 = encodeInt64
)

// LagPeriod is how often the runner reads the end offsets for Lag.
const LagPeriod = lagPeriod

// ApplyRecords applies one poll's records, as consume does, without Kafka.
func (r *Runner) ApplyRecords(recs []wire.Record) (map[int32]string, error) { return r.apply(recs) }

// ApplyPolls applies polls as the consumer does (decoding one while the
// one before is committed), without Kafka.
func (r *Runner) ApplyPolls(polls [][]wire.Record) error {
	r.applyMu.Lock()
	st := r.decodeState()
	r.applyMu.Unlock()
	i := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return r.pipeline(ctx, st, func(context.Context) ([]wire.Record, error) {
		if i == len(polls) {
			cancel()
			return nil, nil
		}
		i++
		return polls[i-1], nil
	}, func(map[int32]string) {})
}
