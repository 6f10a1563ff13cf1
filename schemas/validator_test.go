package schemas_test

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/schemas"
	"github.com/assent-dev/assent/test/systest"
)

func newValidator(t *testing.T) *schemas.Validator {
	t.Helper()
	v, err := schemas.NewValidator()
	require.NoError(t, err)
	return v
}

// example is one file of examples/: a record value.
type example struct {
	name string // the file name
	typ  string // the type attribute
	raw  []byte
}

func examples(t *testing.T, dir string) []example {
	t.Helper()
	entries, err := fs.ReadDir(schemas.FS(), dir)
	require.NoError(t, err)
	var out []example
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		raw, err := fs.ReadFile(schemas.FS(), path.Join(dir, e.Name()))
		require.NoError(t, err)
		env := decodeObject(t, raw)
		typ, _ := env["type"].(string)
		out = append(out, example{name: e.Name(), typ: typ, raw: raw})
	}
	require.NotEmpty(t, out, dir)
	return out
}

// domainTypes is every type on the wire: the commands and request events
// the domain defines, and the checkpoint.
func domainTypes() []string {
	types := slices.Concat(approval.CommandTypes(), approval.EventTypes(), []string{schemas.SealType})
	slices.Sort(types)
	return types
}

func TestEveryTypeHasSchemaAndExample(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	require.Equal(t, domainTypes(), v.Types(), "one schema per domain type, and no other")

	for _, typ := range domainTypes() {
		dir := "events"
		if slices.Contains(approval.CommandTypes(), typ) {
			dir = "commands"
		}
		_, err := fs.Stat(schemas.FS(), path.Join(dir, typ+".schema.json"))
		require.NoError(t, err, "schema of %s", typ)
		_, err = fs.Stat(schemas.FS(), path.Join("examples", typ+".json"))
		require.NoError(t, err, "example of %s", typ)
	}
}

func TestExamplesValidate(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	for _, ex := range examples(t, "examples") {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, v.Validate(ex.raw))
			require.NoError(t, schemas.Validate(ex.raw))
			// examples/<type>.json, or examples/<type>.<variant>.json
			require.True(t, ex.name == ex.typ+".json" || strings.HasPrefix(ex.name, ex.typ+"."),
				"%s holds a %s", ex.name, ex.typ)
		})
	}
}

// The invalid examples are named <what>__<keyword>.json: each breaks
// exactly one rule, and every error the validator reports is that keyword
// at the location listed here.
func TestInvalidExamplesFail(t *testing.T) {
	t.Parallel()
	locations := map[string]string{
		"wrong-specversion__const.json":               "/specversion",
		"missing-subject__required.json":              "",
		"bad-reason-code__enum.json":                  "/data/code",
		"extra-data-field__additionalProperties.json": "/data",
		"oversize-reason__maxLength.json":             "/data/reason",
		"time-not-utc__pattern.json":                  "/time",
		"details-not-object__type.json":               "/data/action/details",
		"bad-duration__pattern.json":                  "/data/ttl",
		"event-without-prevhash__required.json":       "",
		"prevhash-on-command__false.json":             "/prevhash",
		"system-actor-on-command__pattern.json":       "/actor",
		"seal-with-subject__false.json":               "/subject",
		"short-signature__pattern.json":               "/data/signature",
		"delivery-without-outcome__required.json":     "/data",
		"card-with-outcome__false.json":               "/data/outcome",
		"unsigned-command__required.json":             "",
	}
	v := newValidator(t)
	seen := map[string]bool{}
	for _, ex := range examples(t, "examples/invalid") {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			loc, ok := locations[ex.name]
			require.True(t, ok, "add %s to the table", ex.name)
			keyword := strings.TrimSuffix(ex.name[strings.LastIndex(ex.name, "__")+2:], ".json")

			err := v.Validate(ex.raw)
			require.ErrorIs(t, err, schemas.ErrInvalid)
			var verr *jsonschema.ValidationError
			require.ErrorAs(t, err, &verr)
			got := leaves(verr)
			require.NotEmpty(t, got)
			for _, l := range got {
				require.Equal(t, leaf{keyword, loc}, l, "%s:\n%v", ex.name, err)
			}
		})
		seen[ex.name] = true
	}
	for name := range locations {
		require.True(t, seen[name], "%s is missing from examples/invalid", name)
	}
}

type leaf struct {
	keyword  string // the failing keyword; "false" for a false schema
	location string // JSON pointer into the document
}

// leaves flattens a validation error to the keywords that failed, without
// the allOf and $ref nodes above them.
func leaves(e *jsonschema.ValidationError) []leaf {
	if len(e.Causes) > 0 {
		var out []leaf
		for _, c := range e.Causes {
			out = append(out, leaves(c)...)
		}
		return out
	}
	kw := "false"
	if p := e.ErrorKind.KeywordPath(); len(p) > 0 {
		kw = p[len(p)-1]
	}
	loc := ""
	for _, tok := range e.InstanceLocation {
		loc += "/" + tok
	}
	return []leaf{{kw, loc}}
}

func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	vote := string(readFile(t, "examples/dev.assent.command.vote.json"))
	for _, tc := range []struct {
		name, doc string
		want      error
		contains  string
	}{
		{"not JSON", `{"specversion":`, schemas.ErrInvalid, "not JSON"},
		{"trailing data", vote + ` {}`, schemas.ErrInvalid, "not JSON"},
		{"not an object", `["dev.assent.command.vote"]`, schemas.ErrInvalid, "JSON object"},
		{"no type", strings.Replace(vote, `"type":"dev.assent.command.vote",`, "", 1), schemas.ErrInvalid, "type"},
		{"type not a string", strings.Replace(vote, `"type":"dev.assent.command.vote"`, `"type":7`, 1), schemas.ErrInvalid, "type"},
		{"unknown type", strings.Replace(vote, "command.vote", "command.veto", 1), schemas.ErrUnknownType, `"dev.assent.command.veto"; known types: dev.assent.command.cancel`},
		{"expire from a user", strings.Replace(vote, "command.vote", "command.expire", 1), schemas.ErrInvalid, "value must be 'system:decider'"},
		{"duplicate attribute", strings.Replace(vote, `"actor":"user:alice@example.com"`, `"actor":"user:alice@example.com","actor":"user:root@example.com"`, 1), schemas.ErrInvalid, `key "actor" appears twice`},
		{"duplicate data field", strings.Replace(vote, `"decision":"approve"`, `"decision":"reject","decision":"approve"`, 1), schemas.ErrInvalid, `key "decision" appears twice`},
		{"data_base64", strings.Replace(vote, `"data":`, `"data_base64":"e30=","data":`, 1), schemas.ErrInvalid, "data_base64"},
		{"uppercase extension", strings.Replace(vote, `"data":`, `"Trace":"x","data":`, 1), schemas.ErrInvalid, "Trace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := v.Validate([]byte(tc.doc))
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.contains)
			require.False(t, errors.Is(err, schemas.ErrInvalid) && errors.Is(err, schemas.ErrUnknownType))
		})
	}
}

func TestValidateToleratesUnknownExtensions(t *testing.T) {
	t.Parallel()
	vote := string(readFile(t, "examples/dev.assent.command.vote.json"))
	doc := strings.Replace(vote, `"data":`, `"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data":`, 1)
	require.NoError(t, schemas.Validate([]byte(doc)))
}

func TestSchemaIdentities(t *testing.T) {
	t.Parallel()
	err := fs.WalkDir(schemas.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".schema.json") {
			return err
		}
		s := decodeObject(t, readFile(t, p))
		require.Equal(t, "https://json-schema.org/draft/2020-12/schema", s["$schema"], p)
		require.Equal(t, schemas.BaseURL+p, s["$id"], p)
		if dir := path.Dir(p); dir == "commands" || dir == "events" {
			typ := strings.TrimSuffix(path.Base(p), ".schema.json")
			require.Equal(t, typ, s["title"], p)
			props := s["properties"].(map[string]any)
			require.Equal(t, map[string]any{"const": typ}, props["type"], p)
		}
		return nil
	})
	require.NoError(t, err)
}

// TestCommandExamplesAreSigned: every command example carries a signature
// (schemas/README.md, "Command signatures") that the decider would accept:
// by a published demo key (infra/keys) that may speak for its actor.
func TestCommandExamplesAreSigned(t *testing.T) {
	t.Parallel()
	keys := systest.DemoCommandKeys(t)
	files, err := filepath.Glob("examples/dev.assent.command.*.json")
	require.NoError(t, err)
	n := 0
	for _, f := range files {
		if strings.Contains(f, "command.rejected") {
			continue // an event
		}
		env, err := wire.Unmarshal(readFile(t, f))
		require.NoError(t, err, f)
		_, err = keys.Verify(env)
		require.NoError(t, err, f)
		n++
	}
	require.Equal(t, 6, n)
}
