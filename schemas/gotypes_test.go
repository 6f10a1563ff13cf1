package schemas_test

import (
	"encoding/json"
	"io/fs"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/schemas"
)

// schemaSet resolves $ref between the schema files, by hand, so that tests
// can compare the schemas' structure with the Go types.
type schemaSet map[string]any // $id -> document

func loadSchemas(t *testing.T) schemaSet {
	t.Helper()
	set := schemaSet{}
	err := fs.WalkDir(schemas.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".schema.json") {
			return err
		}
		set[schemas.BaseURL+p] = decodeObject(t, readFile(t, p))
		return nil
	})
	require.NoError(t, err)
	return set
}

// resolve follows $ref until it reaches a schema without one, and returns it
// with the URL of the document it is in.
func (s schemaSet) resolve(t *testing.T, node map[string]any, base string) (map[string]any, string) {
	t.Helper()
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node, base
		}
		b, err := url.Parse(base)
		require.NoError(t, err)
		r, err := url.Parse(ref)
		require.NoError(t, err)
		abs := b.ResolveReference(r)
		frag := abs.Fragment
		abs.Fragment = ""
		base = abs.String()
		cur := s[base]
		require.NotNil(t, cur, "%s does not resolve", ref)
		for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
			if tok == "" {
				continue
			}
			cur = cur.(map[string]any)[tok]
			require.NotNil(t, cur, "%s does not resolve", ref)
		}
		node = cur.(map[string]any)
	}
}

// jsonFields lists the JSON names of a struct's fields, and which of them Go
// always writes (no omitempty).
func jsonFields(typ reflect.Type) (names, always []string) {
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			always = append(always, name)
		}
	}
	slices.Sort(names)
	slices.Sort(always)
	return names, always
}

var timeType = reflect.TypeFor[time.Time]()

// matchGoType checks that the schema of a JSON object has exactly the
// properties of the Go struct, requires exactly those Go always writes, and
// allows nothing else; and so on down every nested struct.
func (s schemaSet) matchGoType(t *testing.T, typ reflect.Type, node map[string]any, base, where string) {
	t.Helper()
	node, base = s.resolve(t, node, base)
	switch {
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Struct:
		items, ok := node["items"].(map[string]any)
		require.True(t, ok, "%s: an array schema with items", where)
		s.matchGoType(t, typ.Elem(), items, base, where+"[]")
		return
	case typ.Kind() != reflect.Struct || typ == timeType:
		return
	}
	props, ok := node["properties"].(map[string]any)
	require.True(t, ok, "%s: an object schema with properties", where)
	names, always := jsonFields(typ)
	require.ElementsMatch(t, names, keys(props), "%s: the properties are the fields of %s", where, typ)
	var required []string
	req, _ := node["required"].([]any) // absent: nothing required
	for _, r := range req {
		required = append(required, r.(string))
	}
	require.ElementsMatch(t, always, required, "%s: required are the fields %s always writes (no omitempty)", where, typ)
	require.Equal(t, false, node["additionalProperties"], "%s: the Go decoder refuses unknown fields", where)
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if p, ok := props[name].(map[string]any); ok {
			s.matchGoType(t, f.Type, p, base, where+"."+name)
		}
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSchemaFieldsMatchGoTypes(t *testing.T) {
	t.Parallel()
	set := loadSchemas(t)
	goType := func(typ string) reflect.Type {
		if typ == schemas.SealType {
			return reflect.TypeFor[seal]()
		}
		if slices.Contains(approval.CommandTypes(), typ) {
			b, err := approval.DecodeCommandBody(typ, nil)
			require.NoError(t, err)
			return reflect.TypeOf(b)
		}
		b, err := approval.DecodeEventBody(typ, nil)
		require.NoError(t, err)
		return reflect.TypeOf(b)
	}
	for _, typ := range domainTypes() {
		dir := "events/"
		if slices.Contains(approval.CommandTypes(), typ) {
			dir = "commands/"
		}
		id := schemas.BaseURL + dir + typ + ".schema.json"
		doc, ok := set[id].(map[string]any)
		require.True(t, ok, id)
		data := doc["properties"].(map[string]any)["data"].(map[string]any)
		set.matchGoType(t, goType(typ), data, id, typ+" data")
	}
}

func enumOf(t *testing.T, set schemaSet, def string) []string {
	t.Helper()
	node := set[schemas.BaseURL+"common.schema.json"].(map[string]any)["$defs"].(map[string]any)[def].(map[string]any)
	var out []string
	for _, v := range node["enum"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

func TestEnumsMatchDomain(t *testing.T) {
	t.Parallel()
	set := loadSchemas(t)
	var codes []string
	for _, c := range approval.ReasonCodes() {
		codes = append(codes, string(c))
	}
	require.Equal(t, codes, enumOf(t, set, "reasonCode"))
	require.Equal(t, []string{string(approval.Approve), string(approval.Reject)}, enumOf(t, set, "voteDecision"))
	require.Equal(t, []string{string(approval.NotifyCard), string(approval.NotifyDM)}, enumOf(t, set, "notificationKind"))
}

// The schemas and the domain agree on what is valid input, except where a
// difference is deliberate (the schema is stricter) or cannot be helped
// (JSON Schema counts characters, the domain bytes).
func TestSchemaAgreesWithDomain(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	now := time.Date(2026, 11, 21, 10, 0, 1, 0, time.UTC)
	policies := approval.Policies{Rules: []approval.Policy{{
		Name: "anything", Approvers: []string{"user:alice@example.com", "user:bob@example.com"},
		MinApprovals: 1, RejectThreshold: 1, TTL: approval.Duration(time.Hour),
	}}}

	// A pending request to vote on, cancel and notify about.
	submit := decodeEnvelope(t, readFile(t, "examples/"+approval.TypeSubmit+".json"))
	body, err := approval.DecodeCommandBody(submit.Type, submit.Data)
	require.NoError(t, err)
	d := approval.Decide(approval.State{}, approval.Command{ID: submit.ID, RequestID: submit.Subject, Actor: submit.Actor, Body: body}, policies, now)
	require.Nil(t, d.Refusal)
	pending := approval.Fold(d.Events)

	// domainOK reports whether the domain takes the command's data as valid:
	// it decodes, and Decide does not refuse it as invalid.
	domainOK := func(env envelope) bool {
		b, err := approval.DecodeCommandBody(env.Type, env.Data)
		if err != nil {
			return false
		}
		s := pending
		if env.Type == approval.TypeSubmit {
			s = approval.State{}
		}
		d := approval.Decide(s, approval.Command{ID: env.ID, RequestID: env.Subject, Actor: env.Actor, Body: b}, policies, now)
		return d.Refusal == nil || d.Refusal.Code != approval.ReasonInvalid
	}

	long := func(s string, n int) string { return strings.Repeat(s, n) }
	for _, tc := range []struct {
		name     string
		typ      string
		set      map[string]any // data fields to set; nil deletes
		schemaOK bool
		domainOK bool
		why      string // why they differ
	}{
		{"example submit", approval.TypeSubmit, nil, true, true, ""},
		{"reason of 2000", approval.TypeSubmit, map[string]any{"reason": long("r", 2000)}, true, true, ""},
		{"reason of 2001", approval.TypeSubmit, map[string]any{"reason": long("r", 2001)}, false, false, ""},
		{"reason empty", approval.TypeSubmit, map[string]any{"reason": ""}, false, false, ""},
		{"reason missing", approval.TypeSubmit, map[string]any{"reason": nil}, false, false, ""},
		{"reason with lines", approval.TypeSubmit, map[string]any{"reason": "one\ntwo\ttabbed"}, true, true, ""},
		{"reason of 2100 bytes in 700 characters", approval.TypeSubmit, map[string]any{"reason": long("€", 700)}, true, false,
			"maxLength counts characters; the domain counts bytes"},
		{"action missing", approval.TypeSubmit, map[string]any{"action": nil}, false, false, ""},
		{"action type of 256", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": long("t", 256), "resource": "r", "environment": "e"}}, true, true, ""},
		{"action type of 257", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": long("t", 257), "resource": "r", "environment": "e"}}, false, false, ""},
		{"resource empty", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": "t", "resource": "", "environment": "e"}}, false, false, ""},
		{"resource with a control character", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": "t", "resource": "db/\u0007", "environment": "e"}}, false, false, ""},
		{"action with an unknown field", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": "t", "resource": "r", "environment": "e", "region": "eu"}}, false, false, ""},
		{"details null", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": "t", "resource": "r", "environment": "e", "details": nil}}, true, true, ""},
		{"details an array", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": "t", "resource": "r", "environment": "e", "details": []any{1}}}, false, false, ""},
		{"details a string", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": "t", "resource": "r", "environment": "e", "details": "v1"}}, false, false, ""},
		{"digest empty", approval.TypeSubmit, map[string]any{"action": map[string]any{"type": "t", "resource": "r", "environment": "e", "digest": ""}}, false, true,
			"optional fields are omitted, never empty"},
		{"ttl short form", approval.TypeSubmit, map[string]any{"ttl": "15m"}, true, true, ""},
		{"ttl compound", approval.TypeSubmit, map[string]any{"ttl": "1h30m0.5s"}, true, true, ""},
		{"ttl negative", approval.TypeSubmit, map[string]any{"ttl": "-5m"}, false, false, ""},
		{"ttl in words", approval.TypeSubmit, map[string]any{"ttl": "30 minutes"}, false, false, ""},
		{"ttl a number", approval.TypeSubmit, map[string]any{"ttl": 1800}, false, false, ""},
		{"requester not a principal", approval.TypeSubmit, map[string]any{"requester": "dave"}, false, false, ""},
		{"requester of an unknown kind", approval.TypeSubmit, map[string]any{"requester": "group:sre"}, false, false, ""},
		{"requester with a space", approval.TypeSubmit, map[string]any{"requester": "user:dave smith"}, false, false, ""},
		{"requester with a comma", approval.TypeSubmit, map[string]any{"requester": "user:dave,bob"}, false, false, ""},
		{"unknown field", approval.TypeSubmit, map[string]any{"priority": "high"}, false, false, ""},
		{"field name in another case", approval.TypeSubmit, map[string]any{"reason": nil, "Reason": "why"}, false, true,
			"encoding/json matches field names case-insensitively"},

		{"example vote", approval.TypeVote, nil, true, true, ""},
		{"decision maybe", approval.TypeVote, map[string]any{"decision": "maybe"}, false, false, ""},
		{"decision missing", approval.TypeVote, map[string]any{"decision": nil}, false, false, ""},
		{"comment of 2001", approval.TypeVote, map[string]any{"comment": long("c", 2001)}, false, false, ""},

		{"example cancel", approval.TypeCancel, nil, true, true, ""},
		{"cancel reason of 2001", approval.TypeCancel, map[string]any{"reason": long("c", 2001)}, false, false, ""},

		{"example notification", approval.TypeRecordNotification, nil, true, true, ""},
		{"kind thread", approval.TypeRecordNotification, map[string]any{"kind": "thread"}, false, false, ""},
		{"channel empty", approval.TypeRecordNotification, map[string]any{"channel": ""}, false, false, ""},
		{"ts missing", approval.TypeRecordNotification, map[string]any{"ts": nil}, false, false, ""},
		{"recipient a principal", approval.TypeRecordNotification, map[string]any{"kind": "dm", "recipient": "user:alice@example.com"}, true, true, ""},
		{"recipient not a principal", approval.TypeRecordNotification, map[string]any{"recipient": "alice"}, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := decodeObject(t, readFile(t, "examples/"+tc.typ+".json"))
			data := doc["data"].(map[string]any)
			for k, val := range tc.set {
				if val == nil {
					delete(data, k)
					continue
				}
				data[k] = val
			}
			raw, err := json.Marshal(doc)
			require.NoError(t, err)

			schemaErr := v.Validate(raw)
			require.Equal(t, tc.schemaOK, schemaErr == nil, "schema: %v", schemaErr)
			require.Equal(t, tc.domainOK, domainOK(decodeEnvelope(t, raw)), "domain")
			require.Equal(t, tc.schemaOK != tc.domainOK, tc.why != "", "a difference must say why")
		})
	}
}
