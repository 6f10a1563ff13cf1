package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sampleEnvelope() Envelope {
	return Envelope{
		SpecVersion:     "1.0",
		ID:              "01936f6e-1a2b-7c3d-8e4f-0123456789ab",
		Source:          "assent/decider",
		Type:            "dev.assent.request.approved",
		Subject:         "req-42",
		Time:            time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC),
		DataContentType: "application/json",
		Actor:           "system:decider",
		CommandID:       "01936f6e-0000-7000-8000-000000000001",
		Sequence:        "3",
		PrevHash:        GenesisHash,
		Data:            json.RawMessage(`{"quorum":2,"note":"<a&b>"}`),
	}
}

func TestMarshalGolden(t *testing.T) {
	t.Parallel()
	b, err := Marshal(sampleEnvelope())
	require.NoError(t, err)
	// Attribute order is fixed, the time is UTC with "Z", HTML is not escaped.
	want := `{"specversion":"1.0","id":"01936f6e-1a2b-7c3d-8e4f-0123456789ab","source":"assent/decider",` +
		`"type":"dev.assent.request.approved","subject":"req-42","time":"2025-03-04T05:06:07.123456789Z",` +
		`"datacontenttype":"application/json","actor":"system:decider","commandid":"01936f6e-0000-7000-8000-000000000001",` +
		`"sequence":"3","prevhash":"sha256:0000000000000000000000000000000000000000000000000000000000000000",` +
		`"data":{"quorum":2,"note":"<a&b>"}}`
	require.Equal(t, want, string(b))
}

func TestMarshalUnmarshalRoundTrip(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]Envelope{
		"full":    sampleEnvelope(),
		"minimal": {SpecVersion: "1.0", ID: "x", Source: "assent/api", Type: "t", Time: time.Unix(1700000000, 0).UTC()},
		"data null": {SpecVersion: "1.0", ID: "x", Source: "s", Type: "t", Time: time.Unix(1, 0).UTC(),
			DataContentType: "application/json", Data: json.RawMessage(`null`)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := Marshal(env)
			require.NoError(t, err)
			got, err := Unmarshal(b)
			require.NoError(t, err)
			require.Equal(t, env, got)
			again, err := Marshal(got)
			require.NoError(t, err)
			require.Equal(t, b, again, "re-marshaling must give the same bytes")
		})
	}
}

func TestMarshalDefaultsAndUTC(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	env := Envelope{ID: "x", Source: "s", Type: "t", Time: time.Date(2025, 1, 1, 13, 0, 0, 0, paris), Data: json.RawMessage(` { "a" : 1 } `)}
	b, err := Marshal(env)
	require.NoError(t, err)
	require.JSONEq(t, `{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T12:00:00Z","datacontenttype":"application/json","data":{"a":1}}`, string(b))
	require.Contains(t, string(b), `"data":{"a":1}`, "data is compacted")

	got, err := Unmarshal(b)
	require.NoError(t, err)
	require.True(t, got.Time.Equal(env.Time))
	require.Equal(t, time.UTC, got.Time.Location())
}

func TestEnvelopeThroughEncodingJSON(t *testing.T) {
	t.Parallel()
	env := sampleEnvelope()
	env.Time = env.Time.In(time.FixedZone("X", -7*3600))
	b, err := json.Marshal(struct {
		Event Envelope `json:"event"`
	}{env})
	require.NoError(t, err)
	require.Contains(t, string(b), `"time":"2025-03-04T05:06:07.123456789Z"`)

	var back struct {
		Event Envelope `json:"event"`
	}
	require.NoError(t, json.Unmarshal(b, &back))
	// The outer encoder escapes HTML inside data ("<" as "\u003c"): the
	// same JSON value, other bytes. Records are written with Marshal.
	want := sampleEnvelope()
	require.JSONEq(t, string(want.Data), string(back.Event.Data))
	back.Event.Data = want.Data
	require.Equal(t, want, back.Event)

	require.ErrorIs(t, json.Unmarshal([]byte(`{"event":{"specversion":"0.3"}}`), &back), ErrInvalidEnvelope)
}

func TestUnmarshalToleratesUnknownExtensions(t *testing.T) {
	t.Parallel()
	in := `{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T00:00:00Z",` +
		`"traceparent":"00-abc-def-01","partitionkey":"k","dataschema":"https://example.com/s.json","rank":3,"flag":true}`
	env, err := Unmarshal([]byte(in))
	require.NoError(t, err)
	require.Equal(t, "x", env.ID)
}

func TestUnmarshalAcceptsZeroOffsetAndNoFraction(t *testing.T) {
	t.Parallel()
	for _, ts := range []string{"2025-01-01T00:00:00Z", "2025-01-01T00:00:00+00:00", "2025-01-01T00:00:00.5Z"} {
		env, err := Unmarshal([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"t","time":"` + ts + `"}`))
		require.NoError(t, err, ts)
		require.Equal(t, time.UTC, env.Time.Location())
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	t.Parallel()
	const base = `"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T00:00:00Z"`
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not an object", `[1]`, "not a JSON object"},
		{"empty", ``, "not a JSON object"},
		{"truncated", `{` + base, "unexpected end of JSON"},
		{"truncated value", `{"specversion":"1.0","id":`, `attribute "id": unexpected end of JSON`},
		{"trailing data", `{` + base + `} {}`, "trailing data"},
		{"specversion missing", `{"id":"x","source":"s","type":"t","time":"2025-01-01T00:00:00Z"}`, "specversion is required"},
		{"specversion 0.3", `{"specversion":"0.3","id":"x","source":"s","type":"t","time":"2025-01-01T00:00:00Z"}`, `specversion is "0.3"`},
		{"specversion number", `{"specversion":1.0,"id":"x","source":"s","type":"t","time":"2025-01-01T00:00:00Z"}`, `"specversion" must be a string`},
		{"id missing", `{"specversion":"1.0","source":"s","type":"t","time":"2025-01-01T00:00:00Z"}`, "id is required"},
		{"id empty", `{"specversion":"1.0","id":"","source":"s","type":"t","time":"2025-01-01T00:00:00Z"}`, `"id" is present but empty`},
		{"source missing", `{"specversion":"1.0","id":"x","type":"t","time":"2025-01-01T00:00:00Z"}`, "source is required"},
		{"type missing", `{"specversion":"1.0","id":"x","source":"s","time":"2025-01-01T00:00:00Z"}`, "type is required"},
		{"time missing", `{"specversion":"1.0","id":"x","source":"s","type":"t"}`, "time is required"},
		{"time not RFC 3339", `{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01 00:00:00"}`, "not RFC 3339"},
		{"time not UTC", `{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2025-01-01T01:00:00+01:00"}`, "not in UTC"},
		{"subject null", `{` + base + `,"subject":null}`, `"subject" must be a string`},
		{"subject empty", `{` + base + `,"subject":""}`, `"subject" is present but empty`},
		{"duplicate", `{` + base + `,"id":"y"}`, `"id" appears twice`},
		{"wrong case", `{` + base + `,"Subject":"r"}`, `attribute "Subject"`},
		{"bad extension name", `{` + base + `,"my_ext":1}`, `attribute "my_ext"`},
		{"data_base64", `{` + base + `,"data_base64":"AAAA"}`, "data_base64 is not supported"},
		{"sequence zero", `{` + base + `,"sequence":"0"}`, "sequence"},
		{"sequence leading zero", `{` + base + `,"sequence":"01"}`, "sequence"},
		{"sequence negative", `{` + base + `,"sequence":"-1"}`, "sequence"},
		{"sequence number", `{` + base + `,"sequence":1}`, `"sequence" must be a string`},
		{"prevhash short", `{` + base + `,"prevhash":"sha256:abc"}`, "prevhash"},
		{"prevhash upper", `{` + base + `,"prevhash":"sha256:` + strings.Repeat("A", 64) + `"}`, "prevhash"},
		{"prevhash algorithm", `{` + base + `,"prevhash":"md5:` + strings.Repeat("a", 64) + `"}`, "prevhash"},
		{"datacontenttype not JSON", `{` + base + `,"datacontenttype":"text/plain","data":"x"}`, "datacontenttype"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Unmarshal([]byte(tc.in))
			require.ErrorIs(t, err, ErrInvalidEnvelope)
			require.ErrorContains(t, err, tc.want)
			require.True(t, strings.HasPrefix(err.Error(), "eventlog: "), err.Error())
		})
	}
}

func TestMarshalRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*Envelope)
		want   string
	}{
		{"specversion", func(e *Envelope) { e.SpecVersion = "0.3" }, "specversion"},
		{"id", func(e *Envelope) { e.ID = "" }, "id is required"},
		{"source", func(e *Envelope) { e.Source = "" }, "source is required"},
		{"type", func(e *Envelope) { e.Type = "" }, "type is required"},
		{"time", func(e *Envelope) { e.Time = time.Time{} }, "time is required"},
		{"year 10000", func(e *Envelope) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "outside RFC 3339"},
		{"sequence", func(e *Envelope) { e.Sequence = "x" }, "sequence"},
		{"prevhash", func(e *Envelope) { e.PrevHash = "abc" }, "prevhash"},
		{"data", func(e *Envelope) { e.Data = json.RawMessage(`{"a":`) }, "data is not valid JSON"},
		{"datacontenttype", func(e *Envelope) { e.DataContentType = "application/xml" }, "datacontenttype"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := sampleEnvelope()
			tc.mutate(&env)
			_, err := Marshal(env)
			require.ErrorIs(t, err, ErrInvalidEnvelope)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDataContentTypeVariants(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/problem+json"} {
		env := sampleEnvelope()
		env.DataContentType = ct
		b, err := Marshal(env)
		require.NoError(t, err, ct)
		_, err = Unmarshal(b)
		require.NoError(t, err, ct)
	}
	require.False(t, errors.Is(nil, ErrInvalidEnvelope))
}
