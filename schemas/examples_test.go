package schemas_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/schemas"
)

var relink = flag.Bool("relink", false, "rewrite the prevhash links and the checkpoint of examples/ after editing an example")

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(schemas.FS(), name)
	require.NoError(t, err)
	return b
}

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// envelope is a record value with data kept as bytes.
type envelope struct {
	Type      string          `json:"type"`
	Subject   string          `json:"subject"`
	ID        string          `json:"id"`
	Time      string          `json:"time"`
	Actor     string          `json:"actor"`
	CommandID string          `json:"commandid"`
	Sequence  string          `json:"sequence"`
	PrevHash  string          `json:"prevhash"`
	Data      json.RawMessage `json:"data"`
}

func decodeEnvelope(t *testing.T, b []byte) envelope {
	t.Helper()
	var e envelope
	require.NoError(t, json.Unmarshal(b, &e))
	return e
}

// seal is the data of dev.assent.log.seal, which libs/approval does not
// define (libs/wire does; the schemas are checked against their own copy).
type seal struct {
	Partition int32  `json:"partition"`
	From      string `json:"from"`
	Head      string `json:"head"`
	Count     int    `json:"count"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
	Algorithm string `json:"algorithm"`
}

// Every example's data decodes strictly into its Go type, and encoding that
// value again gives the same bytes: the examples are exactly what the Go
// code writes.
func TestExamplesDecodeStrictly(t *testing.T) {
	t.Parallel()
	for _, ex := range examples(t, "examples") {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			env := decodeEnvelope(t, ex.raw)
			var (
				body any
				err  error
			)
			switch {
			case slices.Contains(approval.CommandTypes(), env.Type):
				body, err = approval.DecodeCommandBody(env.Type, env.Data)
			case slices.Contains(approval.EventTypes(), env.Type):
				body, err = approval.DecodeEventBody(env.Type, env.Data)
			case env.Type == schemas.SealType:
				var c seal
				dec := json.NewDecoder(bytes.NewReader(env.Data))
				dec.DisallowUnknownFields()
				err = dec.Decode(&c)
				body = c
			default:
				t.Fatalf("no Go type for %s", env.Type)
			}
			require.NoError(t, err)
			again, err := json.Marshal(body)
			require.NoError(t, err)
			require.Equal(t, string(env.Data), string(again))
		})
	}
}

// attributeOrder is the order in which libs/eventlog writes attributes.
var attributeOrder = []string{
	"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
	"actor", "commandid", "sequence", "prevhash", "authkeyid", "authsig", "data",
}

// The examples are record values byte for byte: compact JSON, attributes
// in the writer's order, no trailing newline.
func TestExamplesAreRecordValues(t *testing.T) {
	t.Parallel()
	for _, ex := range examples(t, "examples") {
		var compact bytes.Buffer
		require.NoError(t, json.Compact(&compact, ex.raw))
		require.Equal(t, compact.String(), string(ex.raw), "%s is not compact", ex.name)

		dec := json.NewDecoder(bytes.NewReader(ex.raw))
		_, err := dec.Token()
		require.NoError(t, err)
		last := -1
		for dec.More() {
			tok, err := dec.Token()
			require.NoError(t, err)
			i := slices.Index(attributeOrder, tok.(string))
			require.Greater(t, i, last, "%s: %s is out of order", ex.name, tok)
			last = i
			var skip json.RawMessage
			require.NoError(t, dec.Decode(&skip))
		}
	}
}

// The event examples are consecutive records of events partition 7, each
// linked to the one before, and the seal signs the run of the last
// transaction (the expiry).
var chain = []struct {
	file   string
	offset int64
}{
	{"dev.assent.request.submitted.json", 1042},
	{"dev.assent.notification.recorded.json", 1044},
	{"dev.assent.command.rejected.json", 1046},
	{"dev.assent.vote.recorded.json", 1048},
	{"dev.assent.request.approved.json", 1049},
	{"dev.assent.vote.recorded.reject.json", 1051},
	{"dev.assent.request.rejected.json", 1052},
	{"dev.assent.request.cancelled.json", 1054},
	{"dev.assent.request.expired.json", 1056},
	{"dev.assent.log.seal.json", 1057},
}

const (
	exampleTopic     = "assent.events.v1"
	examplePartition = 7
	// ExamplePublicKey verifies the example seal; its private key is
	// derived from exampleKeySeed and is for documentation and tests only.
	examplePublicKey = "zSlMapBgYN8iNPnUS4iojTC8Aoxfp/3rZN5A59yVlQk="
	exampleKeySeed   = "assent example checkpoint key: for documentation and tests only"
)

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// signingString is what a seal signs; see README.md.
func signingString(topic string, partition int32, from, head string, count int, time string) string {
	return fmt.Sprintf("assent-seal-v1\n%s\n%d\n%s\n%s\n%d\n%s", topic, partition, from, head, count, time)
}

func TestExampleChain(t *testing.T) {
	if *relink {
		relinkExamples(t)
		return
	}
	var prev []byte
	var prevLink string // the prevhash of the record before
	sequences := map[string]int{}
	for i, link := range chain {
		raw := readFile(t, "examples/"+link.file)
		env := decodeEnvelope(t, raw)
		if i > 0 {
			require.Equal(t, hashOf(prev), env.PrevHash, "%s does not link to the record before it; run go test -run TestExampleChain -relink", link.file)
		}
		if env.Type == schemas.SealType {
			var c seal
			require.NoError(t, json.Unmarshal(env.Data, &c))
			require.Equal(t, env.PrevHash, c.Head)
			require.Equal(t, 1, c.Count, "the seal signs the last transaction's run: the expiry")
			require.Equal(t, prevLink, c.From, "the run extends the head before it")
			require.EqualValues(t, examplePartition, c.Partition)
			pub, err := base64.StdEncoding.DecodeString(examplePublicKey)
			require.NoError(t, err)
			sig, err := base64.StdEncoding.DecodeString(c.Signature)
			require.NoError(t, err)
			msg := signingString(exampleTopic, c.Partition, c.From, c.Head, c.Count, env.Time)
			require.True(t, ed25519.Verify(pub, []byte(msg), sig), "the example seal signature does not verify")
			continue
		}
		// Each request's events are numbered without gaps.
		seq, err := strconv.Atoi(env.Sequence)
		require.NoError(t, err)
		if last, ok := sequences[env.Subject]; ok {
			require.Equal(t, last+1, seq, link.file)
		}
		sequences[env.Subject] = seq
		prev, prevLink = raw, env.PrevHash
	}
}

// relinkExamples rewrites prevhash along the chain and re-signs the seal,
// after an example was edited.
func relinkExamples(t *testing.T) {
	var prev []byte
	for i, link := range chain {
		name := "examples/" + link.file
		raw, err := os.ReadFile(name)
		require.NoError(t, err)
		env := decodeEnvelope(t, raw)
		if i > 0 {
			head := hashOf(prev)
			raw = bytes.ReplaceAll(raw, []byte(env.PrevHash), []byte(head))
			if env.Type == schemas.SealType {
				var c seal
				require.NoError(t, json.Unmarshal(env.Data, &c))
				from := decodeEnvelope(t, prev).PrevHash
				seed := sha256.Sum256([]byte(exampleKeySeed))
				sig := ed25519.Sign(ed25519.NewKeyFromSeed(seed[:]), []byte(signingString(exampleTopic, c.Partition, from, head, 1, env.Time)))
				raw = bytes.Replace(raw, []byte(`"from":"`+c.From+`"`), []byte(`"from":"`+from+`"`), 1)
				raw = bytes.Replace(raw, []byte(c.Signature), []byte(base64.StdEncoding.EncodeToString(sig)), 1)
			}
			require.NoError(t, os.WriteFile(name, raw, 0o600))
		}
		relinkOpenAPI(t, env.ID, raw)
		prev = raw
	}
	t.Log("relinked examples/ and openapi.yaml; run the tests again")
}

// relinkOpenAPI replaces the event with the given id in the history example
// of openapi.yaml, a line of the form `- {"partition": 7, "offset": 1042,
// "event": {...}}`, with its new bytes.
func relinkOpenAPI(t *testing.T, id string, raw []byte) {
	doc, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	lines := bytes.Split(doc, []byte("\n"))
	for i, line := range lines {
		before, _, ok := bytes.Cut(line, []byte(`"event": `))
		if ok && bytes.Contains(line, []byte(`"id":"`+id+`"`)) {
			lines[i] = slices.Concat(before, []byte(`"event": `), raw, []byte("}"))
		}
	}
	require.NoError(t, os.WriteFile("openapi.yaml", bytes.Join(lines, []byte("\n")), 0o600))
}

func TestExampleStoryIsConsistent(t *testing.T) {
	t.Parallel()
	// Every command example caused one of the event examples.
	causes := map[string]bool{}
	for _, ex := range examples(t, "examples") {
		causes[decodeEnvelope(t, ex.raw).CommandID] = true
	}
	for _, typ := range approval.CommandTypes() {
		env := decodeEnvelope(t, readFile(t, "examples/"+typ+".json"))
		id := env.CommandID
		if id == "" {
			id = env.ID
		}
		require.True(t, causes[id], "no event example was caused by the %s example", typ)
	}

	// The submitted event's content hash is the submit's.
	cmd := decodeEnvelope(t, readFile(t, "examples/"+approval.TypeSubmit+".json"))
	body, err := approval.DecodeCommandBody(cmd.Type, cmd.Data)
	require.NoError(t, err)
	ev := decodeEnvelope(t, readFile(t, "examples/"+approval.TypeRequestSubmitted+".json"))
	sub, err := approval.DecodeEventBody(ev.Type, ev.Data)
	require.NoError(t, err)
	require.Equal(t, approval.ContentHash(body.(approval.Submit)), sub.(approval.RequestSubmitted).ContentHash)
	require.Equal(t, cmd.Subject, ev.Subject)
}
