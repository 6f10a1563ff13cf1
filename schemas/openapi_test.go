package schemas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/schemas"
)

const openapiURL = schemas.BaseURL + "openapi.yaml"

// openapi parses openapi.yaml into JSON values, the way a JSON Schema
// validator sees them (OpenAPI 3.1 schemas are JSON Schema 2020-12).
func openapi(t *testing.T) map[string]any {
	t.Helper()
	var doc any
	require.NoError(t, yaml.Unmarshal(schemas.OpenAPI(), &doc))
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return v.(map[string]any)
}

// pointer resolves a local JSON pointer such as #/components/schemas/X.
func pointer(doc any, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	cur := doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// walk calls fn on every object in v with its JSON pointer.
func walk(v any, ptr string, fn func(ptr string, obj map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(ptr, v)
		for k, c := range v {
			walk(c, ptr+"/"+escape(k), fn)
		}
	case []any:
		for i, c := range v {
			walk(c, fmt.Sprintf("%s/%d", ptr, i), fn)
		}
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	t.Parallel()
	doc := openapi(t)
	require.Equal(t, "3.1.0", doc["openapi"])
	n := 0
	walk(doc, "#", func(ptr string, obj map[string]any) {
		ref, ok := obj["$ref"].(string)
		if !ok {
			return
		}
		n++
		_, ok = pointer(doc, ref)
		require.True(t, ok, "%s: $ref %s does not resolve", ptr, ref)
	})
	require.Greater(t, n, 50)
}

// compiler returns a compiler that knows openapi.yaml as a resource, so that
// any schema in it can be compiled by its pointer.
func openapiCompiler(t *testing.T, doc map[string]any) *jsonschema.Compiler {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	require.NoError(t, c.AddResource(openapiURL, doc))
	return c
}

// Every example in openapi.yaml, of a body or a parameter, is valid against
// its schema.
func TestOpenAPIExamplesValidate(t *testing.T) {
	t.Parallel()
	doc := openapi(t)
	c := openapiCompiler(t, doc)
	deref := func(v any) any {
		if m, ok := v.(map[string]any); ok {
			if ref, ok := m["$ref"].(string); ok {
				r, found := pointer(doc, ref)
				require.True(t, found, ref)
				return r
			}
		}
		return v
	}
	checked := 0
	walk(doc, "#", func(ptr string, obj map[string]any) {
		if _, ok := obj["schema"]; !ok || strings.HasPrefix(ptr, "#/components/schemas") {
			return
		}
		var values map[string]any
		if ex, ok := obj["example"]; ok {
			values = map[string]any{"example": ex}
		}
		if exs, ok := obj["examples"].(map[string]any); ok {
			values = map[string]any{}
			for name, ex := range exs {
				values[name] = deref(ex).(map[string]any)["value"]
			}
		}
		if len(values) == 0 {
			return
		}
		sch, err := c.Compile(openapiURL + ptr + "/schema")
		require.NoError(t, err, ptr)
		for name, value := range values {
			require.NoError(t, sch.Validate(value), "%s example %s", ptr, name)
			checked++
		}
	})
	require.Greater(t, checked, 25)
}

func TestOpenAPIMatchesContract(t *testing.T) {
	t.Parallel()
	doc := openapi(t)

	// The endpoints of docs/architecture.md ("HTTP API"), and no others.
	want := []string{
		"GET /healthz", "GET /metrics", "GET /readyz",
		"GET /v1/requests", "GET /v1/requests/{id}", "GET /v1/requests/{id}/events",
		"POST /v1/requests", "POST /v1/requests/{id}/cancel", "POST /v1/requests/{id}/votes",
	}
	var got, ids []string
	for p, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			got = append(got, strings.ToUpper(method)+" "+p)
			op := op.(map[string]any)
			ids = append(ids, op["operationId"].(string))

			for status, resp := range op["responses"].(map[string]any) {
				// Every error on the API is a problem.
				if !strings.HasPrefix(p, "/v1/") || status < "400" {
					continue
				}
				r := resp.(map[string]any)
				if ref, ok := r["$ref"].(string); ok {
					v, _ := pointer(doc, ref)
					r = v.(map[string]any)
				}
				content := r["content"].(map[string]any)
				require.Contains(t, content, "application/problem+json", "%s %s %s", method, p, status)
				require.Len(t, content, 1)
			}
			if strings.HasPrefix(p, "/v1/") {
				require.NotContains(t, op, "security", "%s %s uses the global bearer auth", method, p)
				// Any /v1 call may meet a bad token, a projection that is
				// catching up, or a bug; a write also a body the HTTP layer
				// refuses, and it takes an Idempotency-Key.
				want := []string{"401", "500", "503"}
				if method == "post" {
					want = append(want, "202", "400", "413", "415", "422")
					require.Contains(t, op["parameters"], map[string]any{"$ref": "#/components/parameters/IdempotencyKey"}, "%s %s", method, p)
				}
				require.Subset(t, keys(op["responses"].(map[string]any)), want, "%s %s", method, p)
			} else {
				require.Equal(t, []any{}, op["security"], "%s %s needs no auth", method, p)
			}
		}
	}
	slices.Sort(got)
	require.Equal(t, want, got)
	slices.Sort(ids)
	require.Equal(t, len(ids), len(slices.Compact(ids)), "operationIds are unique")

	schemasOf := doc["components"].(map[string]any)["schemas"].(map[string]any)
	enum := func(name string) []string {
		var out []string
		for _, v := range schemasOf[name].(map[string]any)["enum"].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	var codes []string
	for _, c := range approval.ReasonCodes() {
		codes = append(codes, string(c))
	}
	require.Equal(t, codes, enum("ReasonCode"))
	statuses := []string{
		string(approval.StatusPending), string(approval.StatusApproved), string(approval.StatusRejected),
		string(approval.StatusExpired), string(approval.StatusCancelled),
	}
	require.Equal(t, statuses, enum("RequestStatus"))
	require.Equal(t, append(statuses, "accepted"), enum("Status"))

	// Request bodies carry the command's fields, plus what only HTTP has.
	props := func(name string) []string {
		return keys(schemasOf[name].(map[string]any)["properties"].(map[string]any))
	}
	fields := func(typ reflect.Type, extra ...string) []string {
		names, _ := jsonFields(typ)
		return append(names, extra...)
	}
	require.ElementsMatch(t, fields(reflect.TypeFor[approval.Submit](), "request_id"), props("SubmitRequest"))
	require.ElementsMatch(t, fields(reflect.TypeFor[approval.Vote](), "voter"), props("VoteRequest"))
	require.ElementsMatch(t, fields(reflect.TypeFor[approval.Cancel]()), props("CancelRequest"))
	require.ElementsMatch(t, fields(reflect.TypeFor[approval.Action]()), props("Action"))
	require.ElementsMatch(t, fields(reflect.TypeFor[approval.VoteView]()), props("Vote"))
	snapshot, _ := jsonFields(reflect.TypeFor[approval.PolicySnapshot]())
	snapshot = slices.DeleteFunc(snapshot, func(s string) bool { return s == "notify" }) // targets may be private
	require.ElementsMatch(t, snapshot, props("PolicySnapshot"))
}

// Every problem example has the status and type its code has on the API:
// one status per code, except invalid, and about:blank only for the HTTP
// layer's own problems and for 5xx, which carry no code.
func TestOpenAPIProblemExamplesKeepTheirStatus(t *testing.T) {
	t.Parallel()
	doc := openapi(t)
	statusOf := map[string]int64{
		"unauthenticated": 401, "forbidden": 403, "not_eligible": 403, "self_approval": 403,
		"not_found": 404, "duplicate_vote": 409, "already_decided": 409, "conflict": 409, "expired": 409,
		"no_policy": 422, "invalid": 422,
		// The HTTP API's own codes (ProblemCode), which no event carries.
		"idempotency_key_reused": 422, "outcome_unknown": 503, "writes_unavailable": 503,
	}
	httpLayer := map[string][]int64{"not_found": {404}, "invalid": {405, 413, 415}, "rate_limited": {429}}
	for _, c := range approval.ReasonCodes() {
		require.Contains(t, statusOf, string(c), "a new reason code needs its status here and in openapi.yaml")
	}
	n := 0
	walk(doc, "#", func(ptr string, obj map[string]any) {
		typ, ok1 := obj["type"].(string)
		status, ok2 := obj["status"].(json.Number)
		if !ok1 || !ok2 || obj["title"] == nil {
			return
		}
		n++
		st := jsonInt(t, status)
		code, hasCode := obj["code"].(string)
		switch {
		case !hasCode:
			require.GreaterOrEqual(t, st, int64(500), "%s: a 4xx has a code", ptr)
			require.Equal(t, "about:blank", typ, ptr)
		case typ == "about:blank":
			require.Contains(t, httpLayer[code], st, "%s: %s is not a problem of the HTTP layer", ptr, code)
		default:
			require.Equal(t, "https://github.com/assent-dev/assent/blob/main/schemas/README.md#"+code, typ, ptr)
			if code == "invalid" && st == 400 {
				break // could not be parsed
			}
			require.Equal(t, statusOf[code], st, "%s: %s", ptr, code)
		}
	})
	require.Greater(t, n, 15)
}

// The history example holds the event examples verbatim, and each is a
// valid event.
func TestOpenAPIHistoryExampleIsTheLog(t *testing.T) {
	t.Parallel()
	doc := openapi(t)
	v := newValidator(t)
	items, ok := pointer(doc, "#/paths/~1v1~1requests~1{id}~1events/get/responses/200/content/application~1json/examples/approved/value/items")
	require.True(t, ok)
	require.Len(t, items, 5)
	for i, item := range items.([]any) {
		event := item.(map[string]any)["event"]
		raw, err := json.Marshal(event)
		require.NoError(t, err)
		require.NoError(t, v.Validate(raw), "item %d", i)

		require.Equal(t, int64(chain[i].offset), jsonInt(t, item.(map[string]any)["offset"]))
		stored := decodeObject(t, readFile(t, "examples/"+chain[i].file))
		var got map[string]any
		require.NoError(t, json.Unmarshal(raw, &got))
		require.Equal(t, stored, got, "item %d is %s", i, chain[i].file)
	}
}

func jsonInt(t *testing.T, v any) int64 {
	t.Helper()
	n, err := v.(json.Number).Int64()
	require.NoError(t, err)
	return n
}

// The OpenAPI document repeats some definitions of common.schema.json, so
// that it stands alone; they must accept and refuse the same values.
func TestOpenAPIAgreesWithCommonSchema(t *testing.T) {
	t.Parallel()
	doc := openapi(t)
	oc := openapiCompiler(t, doc)
	cc := jsonschema.NewCompiler()
	cc.DefaultDraft(jsonschema.Draft2020)
	cc.AssertFormat()
	common, err := jsonschema.UnmarshalJSON(bytes.NewReader(readFile(t, "common.schema.json")))
	require.NoError(t, err)
	require.NoError(t, cc.AddResource(schemas.BaseURL+"common.schema.json", common))

	samples := []string{
		`""`, `"x"`, `"a b"`, `"a/b"`, `"a,b"`, "\"\\u0007\"", `"\ufffd"`, `"€"`, `42`, `null`, `{}`, `[]`,
		`"user:alice@example.com"`, `"service:billing"`, `"system:decider"`, `"group:sre"`, `"user:"`, `"user:a b"`, `"user:a,b"`,
		`"01a1fd8c-6a8e-7209-ae83-0d3e3096123f"`, `"01A1FD8C-6A8E-7209-AE83-0D3E3096123F"`, `"01a1fd8c-6a8e-4209-ae83-0d3e3096123f"`,
		`"15m"`, `"15m0s"`, `"1h30m"`, `"0"`, `"0s"`, `"-5m"`, `"1.5h"`, `".5s"`, `"5µs"`, `"5 m"`, `"m"`,
		`"2026-11-21T10:00:00Z"`, `"2026-11-21T10:00:00.412730118Z"`, `"2026-11-21T10:00:00+02:00"`, `"2026-11-21t10:00:00z"`, `"2026-13-21T10:00:00Z"`,
		`"sha256:` + strings.Repeat("0", 64) + `"`, `"sha256:` + strings.Repeat("A", 64) + `"`,
		`"` + strings.Repeat("x", 128) + `"`, `"` + strings.Repeat("x", 129) + `"`, `"` + strings.Repeat("x", 257) + `"`,
		`"approve"`, `"reject"`, `"no_policy"`, `"denied"`,
		`{"type":"deploy","resource":"payments/api","environment":"production"}`,
		`{"type":"deploy","resource":"payments/api","environment":"production","details":null,"digest":"sha256:1"}`,
		`{"type":"deploy","resource":"payments/api","environment":"production","details":[1]}`,
		`{"type":"deploy","resource":"payments/api","environment":"production","digest":""}`,
		`{"type":"deploy","resource":"payments/api"}`,
		`{"type":"deploy","resource":"payments/api","environment":"production","region":"eu"}`,
	}
	for api, def := range map[string]string{
		"Action": "action", "Principal": "principal", "Duration": "duration", "RequestId": "requestId",
		"CommandId": "commandId", "Time": "utcTime", "Hash": "sha256", "Field": "field", "Text": "text",
		"ReasonCode": "reasonCode", "VoteDecision": "voteDecision",
	} {
		a, err := oc.Compile(openapiURL + "#/components/schemas/" + api)
		require.NoError(t, err, api)
		b, err := cc.Compile(schemas.BaseURL + "common.schema.json#/$defs/" + def)
		require.NoError(t, err, def)
		for _, s := range samples {
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(s))
			require.NoError(t, err, s)
			require.Equal(t, b.Validate(inst) == nil, a.Validate(inst) == nil, "%s and %s disagree on %s", api, def, s)
		}
	}
}
