package wire

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fastSeeds are envelopes as Marshal writes them and near misses of them.
func fastSeeds(t testing.TB) [][]byte {
	full, err := Marshal(sampleEnvelope())
	require.NoError(t, err)
	seal, err := Marshal(Envelope{ID: "x", Source: "assent/decider", Type: TypeSeal, Time: time.Unix(1700000000, 5).UTC(),
		PrevHash: GenesisHash, Data: json.RawMessage(`{"partition":3,"from":"a\"b","head":"é","count":2}`)})
	require.NoError(t, err)
	return [][]byte{
		full, seal,
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z"}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","data":null}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","data":-1.5e3}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","data":"s\"}"}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","data":[1,{"a":"]"}]}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","data":[1}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","data":{"a":1} }`),
		[]byte(`{"specversion":"1.0","id":"x","id":"y","source":"s","type":"t","time":"2025-01-01T12:00:00Z"}`),
		[]byte(`{"specversion":"1.0","id":"\u0078","source":"s","type":"t","time":"2025-01-01T12:00:00Z"}`),
		[]byte(`{"specversion":"1.0","id":"x\xff","source":"s","type":"t","time":"2025-01-01T12:00:00Z"}`),
		[]byte(`{"specversion":"1.0","id":"é","source":"s","type":"t","time":"2025-01-01T12:00:00+01:00"}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","ext1":"v"}`),
		[]byte(`{"specversion":"1.0","id":"","source":"s","type":"t","time":"2025-01-01T12:00:00Z"}`),
		[]byte(`{"specversion":"1.0","id":7,"source":"s","type":"t","time":"2025-01-01T12:00:00Z"}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","sequence":"01"}`),
		[]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z"}{}`),
		[]byte(`{}`),
		[]byte(` {"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z"}`),
	}
}

// FuzzUnmarshalFastAgrees: whatever the fast path accepts, the general
// decoder accepts too, and decodes to the same Envelope.
func FuzzUnmarshalFastAgrees(f *testing.F) {
	for _, s := range fastSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := unmarshalFast(b)
		general, err := unmarshalGeneral(b)
		if !ok {
			got, gerr := Unmarshal(b)
			require.Equal(t, general, got)
			require.Equal(t, err, gerr)
			return
		}
		require.NoError(t, err, "the fast path accepted %q, which the general decoder refuses", b)
		require.Equal(t, general, fast, "%q", b)
	})
}

// TestUnmarshalFastTakesWhatMarshalWrites: the fast path is the one taken
// for what the deciders write (else it would only cost time).
func TestUnmarshalFastTakesWhatMarshalWrites(t *testing.T) {
	t.Parallel()
	for _, b := range fastSeeds(t)[:2] {
		_, ok := unmarshalFast(b)
		require.True(t, ok, "%s", b)
	}
}

// TestDecodeRecordAllocations: decoding an event record as the deciders
// write it allocates little (issue 14, item 6: a rebuild decodes every
// record of the log). With json.Decoder's tokens it took 191 allocations.
func TestDecodeRecordAllocations(t *testing.T) {
	env := sampleEnvelope()
	env.Data = json.RawMessage(`{"action":{"type":"deploy","resource":"services/web","environment":"production"},"reason":"release 9",` +
		`"requester":"service:svc-9","policy":{"name":"prod","approvers":["user:a@example.com","user:b@example.com","user:c@example.com"],"min_approvals":2}}`)
	value, err := Marshal(env)
	require.NoError(t, err)
	rec := Record{Topic: "events", Key: []byte(env.Subject), Value: value, Headers: []Header{{Key: HeaderContentType, Value: []byte(ContentType)}}}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := DecodeRecord(rec); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations a record", allocs)
	require.LessOrEqual(t, allocs, 20.0)
}
