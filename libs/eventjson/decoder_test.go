package eventjson_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/eventjson"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/loggen"
	"github.com/assent-dev/assent/test/systest"
)

// generated returns the records of a small generated log, one partition.
func generated(t testing.TB, requests int) []*kgo.Record {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	signer, err := wire.NewSigner("k", key)
	require.NoError(t, err)
	log, err := loggen.Build(loggen.Options{Topic: "t", Partitions: 1, Requests: requests, Signer: signer, SealEvery: 10,
		Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 10 * time.Millisecond})
	require.NoError(t, err)
	return log[0]
}

// sameAsTheFullDecoders decodes value (with key, and the content-type
// header unless headers are given) with the fast decoder and, when it
// says it can, requires the full decoders to return exactly the same
// envelope, body and hash. It reports whether the fast decoder decoded it.
func sameAsTheFullDecoders(t testing.TB, d *eventjson.Decoder, key, value []byte, headers ...kgo.RecordHeader) bool {
	t.Helper()
	if headers == nil {
		headers = []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}}
	}
	r := &kgo.Record{Topic: "t", Key: key, Value: value, Headers: headers}
	sum := sha256.Sum256(value)
	hash := d.HashString(&sum)
	env, body, ok := d.Event(r)
	d.Last = hash
	if !ok {
		return false
	}
	want, err := eventlog.DecodeRecord(r)
	require.NoError(t, err, "the fast decoder read what the full decoder refuses: %s", value)
	require.Equal(t, want, env, "%s", value)
	if want.Type == wire.TypeSeal {
		require.Nil(t, body, "a seal has no domain body")
		return true
	}
	wantBody, err := approval.DecodeEventBody(want.Type, want.Data)
	require.NoError(t, err, "the fast decoder read data the domain's decoder refuses: %s", value)
	require.Equal(t, wantBody, body, "%s", value)
	require.Equal(t, wire.Hash(value), hash)
	return true
}

// The fast decoder reads every record of a generated log, seals
// included, to exactly what the full decoders return.
func TestFastDecoderIsTheFullDecoder(t *testing.T) {
	t.Parallel()
	var d eventjson.Decoder
	seals := 0
	recs := generated(t, 600)
	for _, r := range recs {
		require.True(t, sameAsTheFullDecoders(t, &d, r.Key, r.Value), "%s", r.Value)
		if r.Key == nil {
			seals++
		}
	}
	require.Positive(t, seals)
}

// Records the full decoders would read differently, or refuse, are left
// to them; records they read the same way, unusual as they are, are read
// alike.
func TestFastDecoderLeavesTheUnusualToTheFullDecoder(t *testing.T) {
	t.Parallel()
	const vote = `{"specversion":"1.0","id":"019b76da-a800-7000-8c16-8779e3b3e9fe","source":"assent/decider","type":"dev.assent.vote.recorded","subject":"req-1","time":"2026-01-01T00:00:01Z","datacontenttype":"application/json","actor":"user:alice@example.com","commandid":"c-1","sequence":"2","prevhash":"sha256:0000000000000000000000000000000000000000000000000000000000000000","data":{"voter":"user:alice@example.com","decision":"approve","comment":"lgtm"}}`
	var d eventjson.Decoder
	require.True(t, sameAsTheFullDecoders(t, &d, []byte("req-1"), []byte(vote)))
	for name, tc := range map[string]struct {
		edit    func(string) string
		key     string
		headers []kgo.RecordHeader
	}{
		"no content-type":      {headers: []kgo.RecordHeader{{Key: "x", Value: []byte("y")}}},
		"two content-types":    {headers: []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}, {Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}}},
		"content-type charset": {headers: []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType + "; charset=utf-8")}}},
		"key differs":          {key: "req-2"},
		"no key":               {key: "-"},
		"escaped comment":      {edit: func(v string) string { return strings.Replace(v, `"lgtm"`, `"l\"g\\t\/m\n"`, 1) }},
		"unicode escape":       {edit: func(v string) string { return strings.Replace(v, `"lgtm"`, `"l\u00e9"`, 1) }},
		"lone surrogate":       {edit: func(v string) string { return strings.Replace(v, `"lgtm"`, `"\ud800"`, 1) }},
		"bad escape":           {edit: func(v string) string { return strings.Replace(v, `"lgtm"`, `"\x"`, 1) }},
		"invalid UTF-8":        {edit: func(v string) string { return strings.Replace(v, `"lgtm"`, "\"l\xffm\"", 1) }},
		"valid UTF-8":          {edit: func(v string) string { return strings.Replace(v, `"lgtm"`, `"très bien ✓"`, 1) }},
		"control character":    {edit: func(v string) string { return strings.Replace(v, `"lgtm"`, "\"l\tm\"", 1) }},
		"spaces": {edit: func(v string) string {
			return strings.ReplaceAll(strings.ReplaceAll(v, `,"`, " ,\n\t\""), `":`, `" : `)
		}},
		"trailing space":     {edit: func(v string) string { return v + " \n" }},
		"trailing data":      {edit: func(v string) string { return v + "{}" }},
		"repeated attribute": {edit: func(v string) string { return strings.Replace(v, `"sequence":"2"`, `"sequence":"2","sequence":"3"`, 1) }},
		"repeated field": {edit: func(v string) string {
			return strings.Replace(v, `"comment":"lgtm"`, `"comment":"lgtm","comment":"no"`, 1)
		}},
		"field in other case": {edit: func(v string) string { return strings.Replace(v, `"comment":"lgtm"`, `"Comment":"lgtm"`, 1) }},
		"both cases": {edit: func(v string) string {
			return strings.Replace(v, `"comment":"lgtm"`, `"comment":"lgtm","Comment":"no"`, 1)
		}},
		"unknown field":   {edit: func(v string) string { return strings.Replace(v, `"comment":"lgtm"`, `"comment":"lgtm","x":1`, 1) }},
		"null field":      {edit: func(v string) string { return strings.Replace(v, `"comment":"lgtm"`, `"comment":null`, 1) }},
		"extension":       {edit: func(v string) string { return strings.Replace(v, `"actor"`, `"traceparent":"x","actor"`, 1) }},
		"bad extension":   {edit: func(v string) string { return strings.Replace(v, `"actor"`, `"Trace":"x","actor"`, 1) }},
		"specversion 0.3": {edit: func(v string) string { return strings.Replace(v, `"1.0"`, `"0.3"`, 1) }},
		"no specversion":  {edit: func(v string) string { return strings.Replace(v, `"specversion":"1.0",`, ``, 1) }},
		"empty actor": {edit: func(v string) string {
			return strings.Replace(v, `"user:alice@example.com","commandid"`, `"","commandid"`, 1)
		}},
		"sequence 02": {edit: func(v string) string { return strings.Replace(v, `"sequence":"2"`, `"sequence":"02"`, 1) }},
		"sequence too large": {edit: func(v string) string {
			return strings.Replace(v, `"sequence":"2"`, `"sequence":"99999999999999999999"`, 1)
		}},
		"prevhash uppercase":    {edit: func(v string) string { return strings.Replace(v, `sha256:0000`, `sha256:000A`, 1) }},
		"time with offset":      {edit: func(v string) string { return strings.Replace(v, `01Z"`, `01+00:00"`, 1) }},
		"time not UTC":          {edit: func(v string) string { return strings.Replace(v, `01Z"`, `01+01:00"`, 1) }},
		"time zero":             {edit: func(v string) string { return strings.Replace(v, `2026-01-01T00:00:01Z`, `0001-01-01T00:00:00Z`, 1) }},
		"time fraction":         {edit: func(v string) string { return strings.Replace(v, `01Z"`, `01.123456789Z"`, 1) }},
		"time bad":              {edit: func(v string) string { return strings.Replace(v, `01Z"`, `61Z"`, 1) }},
		"datacontenttype other": {edit: func(v string) string { return strings.Replace(v, `"application/json"`, `"application/vnd.x+json"`, 1) }},
		"no datacontenttype":    {edit: func(v string) string { return strings.Replace(v, `"datacontenttype":"application/json",`, ``, 1) }},
		"data first": {edit: func(v string) string {
			return strings.Replace(v, `{"specversion"`, `{"data":{"voter":"x"},"specversion"`, 1)
		}},
		"no data":        {edit: func(v string) string { return v[:strings.Index(v, `,"data"`)] + "}" }},
		"empty data":     {edit: func(v string) string { return v[:strings.Index(v, `"data"`)] + `"data":{}}` }},
		"data null":      {edit: func(v string) string { return v[:strings.Index(v, `"data"`)] + `"data":null}` }},
		"decision other": {edit: func(v string) string { return strings.Replace(v, `"approve"`, `"maybe"`, 1) }},
		"seal type":      {edit: func(v string) string { return strings.Replace(v, `dev.assent.vote.recorded`, wire.TypeSeal, 1) }},
		"unknown type": {edit: func(v string) string {
			return strings.Replace(v, `dev.assent.vote.recorded`, `dev.assent.vote.other`, 1)
		}},
		"truncated":     {edit: func(v string) string { return v[:len(v)-2] }},
		"not an object": {edit: func(v string) string { return "[" + v + "]" }},
	} {
		v := vote
		if tc.edit != nil {
			v = tc.edit(v)
		}
		key := []byte("req-1")
		switch tc.key {
		case "":
		case "-":
			key = nil
		default:
			key = []byte(tc.key)
		}
		// Whatever it decides, what it reads is what the full decoders read.
		got := sameAsTheFullDecoders(t, &d, key, []byte(v), tc.headers...)
		switch name {
		case "escaped comment", "valid UTF-8", "spaces", "trailing space", "time fraction", "no datacontenttype":
			require.True(t, got, "%s: the fast decoder reads it", name)
		default:
			require.False(t, got, "%s: left to the full decoders", name)
		}
	}
}

// FuzzFastDecoder: whatever the fast decoder reads, the full decoders read
// the same way.
func FuzzFastDecoder(f *testing.F) {
	for _, r := range generated(f, 12) {
		f.Add(r.Key, r.Value)
	}
	var d eventjson.Decoder
	f.Fuzz(func(t *testing.T, key, value []byte) {
		sameAsTheFullDecoders(t, &d, key, value)
	})
}

// BenchmarkFastDecoder times the fast decoder alone on a generated log.
func BenchmarkFastDecoder(b *testing.B) {
	recs := generated(b, 3000)
	sums := make([][32]byte, len(recs))
	for i, r := range recs {
		sums[i] = sha256.Sum256(r.Value)
	}
	var d eventjson.Decoder
	b.ReportAllocs()
	b.ResetTimer()
	var decode, hash time.Duration // CPU time, interleaved: the hash is the yardstick
	for range b.N {
		cpu := systest.CPUTime()
		for i, r := range recs {
			h := d.HashString(&sums[i])
			d.Event(r)
			d.Last = h
		}
		decode += systest.CPUTime() - cpu
		cpu = systest.CPUTime()
		for i, r := range recs {
			sums[i] = sha256.Sum256(r.Value)
		}
		hash += systest.CPUTime() - cpu
	}
	b.ReportMetric(float64(decode)/float64(b.N*len(recs)), "cpu-ns/record")
	b.ReportMetric(float64(decode)/float64(hash), "x-sha256")
}

// sameBodyAsTheDomainDecoder decodes data of type typ with Body and, when
// it says it can, requires approval.DecodeEventBody to return exactly the
// same body. It reports whether Body decoded it.
func sameBodyAsTheDomainDecoder(t testing.TB, d *eventjson.Decoder, typ string, data []byte) bool {
	t.Helper()
	body, ok := d.Body(typ, data)
	if !ok {
		return false
	}
	want, err := approval.DecodeEventBody(typ, data)
	require.NoError(t, err, "Body read data the domain's decoder refuses: %s %s", typ, data)
	require.Equal(t, want, body, "%s %s", typ, data)
	return true
}

// Body reads the data of every event of a generated log to exactly what
// the domain's decoder returns, and what it returns is the caller's: it
// shares neither the data nor another body's approvers.
func TestBodyIsTheDomainDecoder(t *testing.T) {
	t.Parallel()
	var d eventjson.Decoder
	submits := 0
	for _, r := range generated(t, 600) {
		env, err := eventlog.DecodeRecord(r)
		require.NoError(t, err)
		if env.Type == wire.TypeSeal {
			_, ok := d.Body(env.Type, env.Data)
			require.False(t, ok, "a seal's data is wire.VerifySeal's")
			continue
		}
		require.True(t, sameBodyAsTheDomainDecoder(t, &d, env.Type, env.Data), "%s", env.Data)
		if env.Type != approval.TypeRequestSubmitted {
			continue
		}
		submits++
		data := bytes.Clone(env.Data)
		first, ok := d.Body(env.Type, data)
		require.True(t, ok)
		second, ok := d.Body(env.Type, data)
		require.True(t, ok)
		a, b := first.(approval.RequestSubmitted), second.(approval.RequestSubmitted)
		want := slices.Clone(b.Policy.Approvers)
		a.Policy.Approvers[0] = "changed"
		wantNotify := slices.Clone(b.Policy.Notify)
		for i := range a.Policy.Notify {
			a.Policy.Notify[i].Target = "changed"
		}
		clear(data) // the caller's buffer, reused
		require.Equal(t, want, b.Policy.Approvers, "two bodies share their approvers")
		require.Equal(t, wantNotify, b.Policy.Notify, "two bodies share their notify targets")
		require.NotEmpty(t, b.Requester)
		require.NotContains(t, b.Requester, "\x00", "a body's strings share the caller's data")
	}
	require.Positive(t, submits)
}

// Data the domain's decoder reads differently, or refuses, is left to it.
func TestBodyLeavesTheUnusualToTheDomainDecoder(t *testing.T) {
	t.Parallel()
	const vote = `{"voter":"user:alice@example.com","decision":"approve","comment":"lgtm"}`
	var d eventjson.Decoder
	for name, tc := range map[string]struct {
		typ, data string
		fast      bool
	}{
		"vote":                {data: vote, fast: true},
		"spaces":              {data: " \n" + strings.ReplaceAll(vote, `,"`, ` , "`) + "\t", fast: true},
		"empty":               {data: ``},
		"empty object":        {data: `{}`},
		"null":                {data: `null`},
		"trailing data":       {data: vote + `{}`},
		"trailing garbage":    {data: vote + `x`},
		"unknown field":       {data: strings.Replace(vote, `}`, `,"x":1}`, 1)},
		"repeated field":      {data: strings.Replace(vote, `}`, `,"comment":"no"}`, 1)},
		"field in other case": {data: strings.Replace(vote, `"comment"`, `"Comment"`, 1)},
		"unicode escape":      {data: strings.Replace(vote, `lgtm`, `l\u00e9`, 1)},
		"escaped comment":     {data: strings.Replace(vote, `lgtm`, `l\"g\n`, 1), fast: true},
		"decision other":      {data: strings.Replace(vote, `approve`, `maybe`, 1)},
		"unknown type":        {typ: "dev.assent.vote.other", data: vote},
		"notification":        {typ: approval.TypeNotificationRecorded, data: `{}`},
	} {
		typ := tc.typ
		if typ == "" {
			typ = approval.TypeVoteRecorded
		}
		got := sameBodyAsTheDomainDecoder(t, &d, typ, []byte(tc.data))
		require.Equal(t, tc.fast, got, "%s: read by Body (true) or left to the domain's decoder (false)", name)
	}
}

// FuzzBody: whatever Body reads, the domain's decoder reads the same way.
func FuzzBody(f *testing.F) {
	types := approval.EventTypes()
	for _, r := range generated(f, 12) {
		env, err := eventlog.DecodeRecord(r)
		require.NoError(f, err)
		if k := slices.Index(types, env.Type); k >= 0 { // not a seal
			f.Add(uint8(k), []byte(env.Data)) //nolint:gosec // G115: k < len(types), a handful
		}
	}
	var d eventjson.Decoder
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		sameBodyAsTheDomainDecoder(t, &d, types[int(typ)%len(types)], data)
	})
}

// A request.submitted whose policy notifies: each body has its own
// notify targets, though the decoder keeps the snapshot they came from.
func TestBodyGivesEachSubmitItsOwnNotifyTargets(t *testing.T) {
	t.Parallel()
	body := approval.RequestSubmitted{
		Action: approval.Action{Type: "deploy", Resource: "payments/api", Environment: "production"}, Requester: "svc:ci",
		Policy: approval.PolicySnapshot{Name: "p", Hash: "sha256:x", Approvers: []string{"user:a@example.com"}, MinApprovals: 1,
			RejectThreshold: 1, TTL: approval.Duration(time.Hour), ExpiresAt: time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC),
			Notify: []approval.NotifyTarget{{Kind: "webhook", Target: "https://example.com/h", Events: []string{"request.submitted"}}}},
	}
	data, err := wire.MarshalData(body)
	require.NoError(t, err)
	var d eventjson.Decoder
	require.True(t, sameBodyAsTheDomainDecoder(t, &d, approval.TypeRequestSubmitted, data))
	first, ok := d.Body(approval.TypeRequestSubmitted, data)
	require.True(t, ok, "%s", data)
	second, ok := d.Body(approval.TypeRequestSubmitted, data)
	require.True(t, ok)
	a := first.(approval.RequestSubmitted)
	a.Policy.Notify[0].Target = "changed"
	a.Policy.Notify[0].Events[0] = "changed"
	require.Equal(t, body.Policy.Notify, second.(approval.RequestSubmitted).Policy.Notify)
}
