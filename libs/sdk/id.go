package assent

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewRequestID returns a new UUIDv7 (RFC 9562) in canonical lowercase
// form, the kind of request id Assent makes when a client sends none.
// Choose the id before the first Submit when retries may come from
// another call or process: the id is what makes them idempotent.
func NewRequestID() string { return newUUIDv7(time.Now()) }

// newUUIDv7 is wire.NewID without its dependencies: 48 bits of Unix
// milliseconds, 12 bits of sub-millisecond fraction, 62 random bits.
func newUUIDv7(now time.Time) string {
	var u [16]byte
	_, _ = rand.Read(u[8:]) // crypto/rand.Read never fails (Go 1.24+)
	ns := now.UnixNano()
	ms := uint64(ns / int64(time.Millisecond))
	frac := uint64(ns%int64(time.Millisecond)) * 4096 / uint64(time.Millisecond)
	binary.BigEndian.PutUint64(u[:8], ms<<16|0x7000|frac) // version 7
	u[8] = 0x80 | u[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
