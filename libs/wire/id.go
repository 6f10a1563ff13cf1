package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewID returns a new UUIDv7 (RFC 9562) for the time now, in the canonical
// lowercase 8-4-4-4-12 form.
//
// The first 48 bits are the Unix time in milliseconds. The 12 bits after
// the version hold the fraction of the millisecond (RFC 9562 section 6.2,
// method 3), so ids made for later times sort later as strings down to about
// a quarter of a microsecond. The remaining 62 bits are random.
//
// The time is a parameter, not read from a clock, so that callers decide
// which clock counts and tests are deterministic in everything but the
// random bits. Times before 1970 are not supported.
func NewID(now time.Time) string {
	var u [16]byte
	_, _ = rand.Read(u[8:]) // crypto/rand.Read never fails (Go 1.24+)

	ns := now.UnixNano()
	ms := uint64(ns / int64(time.Millisecond))
	frac := uint64(ns%int64(time.Millisecond)) * 4096 / uint64(time.Millisecond) // 12 bits

	// 48 bits of milliseconds, version 7, 12 bits of fraction.
	binary.BigEndian.PutUint64(u[:8], ms<<16|0x7000|frac)
	u[8] = 0x80 | u[8]&0x3f // variant 10

	return formatUUID(u)
}

// DerivedID returns a name-based UUIDv8 (RFC 9562, section 5.8) from
// SHA-256 over the parts, so that the same parts (an Idempotency-Key and
// its caller, say) always name the same command.
func DerivedID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = 0x80 | u[6]&0x0f // version 8
	u[8] = 0x80 | u[8]&0x3f // variant 10
	return formatUUID(u)
}

func formatUUID(u [16]byte) string {
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
