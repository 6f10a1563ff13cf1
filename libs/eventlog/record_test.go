package eventlog

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
)

func TestNewRecordAndDecodeRecord(t *testing.T) {
	t.Parallel()
	env := sampleEnvelope()
	r, err := NewRecord("assent.events.v1", env)
	require.NoError(t, err)
	require.Equal(t, "assent.events.v1", r.Topic)
	require.Equal(t, []byte("req-42"), r.Key)
	require.Equal(t, []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}, r.Headers)
	value, err := wire.Marshal(env)
	require.NoError(t, err)
	require.Equal(t, value, r.Value)

	got, err := DecodeRecord(r)
	require.NoError(t, err)
	require.Equal(t, env, got)
}

func TestNewRecordWithoutSubjectHasNilKey(t *testing.T) {
	t.Parallel()
	env := sampleEnvelope()
	env.Subject = ""
	r, err := NewRecord("t", env)
	require.NoError(t, err)
	require.Nil(t, r.Key)
	_, err = DecodeRecord(r)
	require.NoError(t, err)
}

func TestNewRecordRefusesInvalidEnvelope(t *testing.T) {
	t.Parallel()
	env := sampleEnvelope()
	env.Type = ""
	_, err := NewRecord("t", env)
	require.ErrorIs(t, err, wire.ErrInvalidEnvelope)
}

func TestDecodeRecordRefuses(t *testing.T) {
	t.Parallel()
	good, err := NewRecord("topic", sampleEnvelope())
	require.NoError(t, err)
	good.Partition, good.Offset = 3, 42

	for _, tc := range []struct {
		name    string
		mutate  func(*kgo.Record)
		wantErr error
		want    string
	}{
		{"no header", func(r *kgo.Record) { r.Headers = nil }, wire.ErrContentType, "topic/3@42 has no content-type header; want application/cloudevents+json (structured mode)"},
		{"binary mode", func(r *kgo.Record) {
			r.Headers = []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}
		}, wire.ErrContentType, `content-type "application/json"`},
		{"two headers", func(r *kgo.Record) { r.Headers = append(r.Headers, r.Headers[0]) }, wire.ErrContentType, "2 content-type headers"},
		{"ce_ header case", func(r *kgo.Record) { r.Headers[0].Key = "Content-Type" }, wire.ErrContentType, "no content-type header"},
		{"bad value", func(r *kgo.Record) { r.Value = []byte(`{}`) }, wire.ErrInvalidEnvelope, "topic/3@42"},
		{"key differs", func(r *kgo.Record) { r.Key = []byte("other") }, wire.ErrInvalidEnvelope, `key "other" differs from subject "req-42"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := *good
			r.Headers = append([]kgo.RecordHeader(nil), good.Headers...)
			tc.mutate(&r)
			_, err := DecodeRecord(&r)
			require.ErrorIs(t, err, tc.wantErr)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDecodeRecordAcceptsMediaTypeParameters(t *testing.T) {
	t.Parallel()
	r, err := NewRecord("t", sampleEnvelope())
	require.NoError(t, err)
	r.Headers[0].Value = []byte("application/cloudevents+json; charset=UTF-8")
	_, err = DecodeRecord(r)
	require.NoError(t, err)
}

func sampleEnvelope() wire.Envelope {
	return wire.Envelope{
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
		PrevHash:        wire.GenesisHash,
		Data:            json.RawMessage(`{"quorum":2}`),
	}
}
