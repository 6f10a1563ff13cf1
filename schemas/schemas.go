// Package schemas is Assent's wire contract as data: the JSON Schemas
// (draft 2020-12) of every command and event on the Kafka topics, an
// example of each, and the OpenAPI 3.1 description of HTTP API v1. The
// files are embedded, so that any service or test can check a message
// against the contract without reading the repository.
//
// # Validating messages
//
// [NewValidator] compiles every schema once; [Validator.Validate] checks one
// record value, a CloudEvents 1.0 JSON object, against the schema its type
// attribute names. [Validate] does the same with a validator compiled on
// first use. Tests of every producer call it on what they produce.
//
// A document that breaks its schema fails with an error that wraps
// [ErrInvalid] and a *jsonschema.ValidationError (errors.As gives the
// details); a type without a schema fails with [ErrUnknownType].
//
// # What a schema cannot say
//
// The domain's length limits count UTF-8 bytes, and details may hold at
// most 16 KiB of JSON; JSON Schema counts characters and cannot measure
// encoded size. The domain (libs/approval) stays the authority on those.
// Duplicate object keys, which JSON Schema cannot see, are refused by
// Validate itself, as the event log's decoder refuses them.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed cloudevent.schema.json common.schema.json commands events examples openapi.yaml
var files embed.FS

// BaseURL is the prefix of every schema's $id; the rest is the file's
// path in this directory.
const BaseURL = "https://raw.githubusercontent.com/assent-dev/assent/main/schemas/"

// SealType is the CloudEvents type of a seal. It belongs to an events
// partition, not to a request, so libs/approval does not define it.
const SealType = "dev.assent.log.seal"

// The errors Validate wraps.
var (
	// ErrInvalid means the document is not a valid Assent message.
	ErrInvalid = errors.New("schemas: invalid message")
	// ErrUnknownType means no schema exists for the document's type.
	ErrUnknownType = errors.New("schemas: unknown message type")
)

// FS returns the embedded files: cloudevent.schema.json,
// common.schema.json, commands/, events/, examples/ and openapi.yaml.
func FS() fs.FS { return files }

// OpenAPI returns openapi.yaml, the description of HTTP API v1.
func OpenAPI() []byte {
	b, err := files.ReadFile("openapi.yaml")
	if err != nil {
		panic("schemas: openapi.yaml is not embedded: " + err.Error()) // a build mistake, caught by every test
	}
	return b
}

// Validator checks messages against their schemas. It is safe for
// concurrent use.
type Validator struct {
	envelope *jsonschema.Schema
	byType   map[string]*jsonschema.Schema
}

// NewValidator compiles the envelope and every command and event schema,
// with formats such as date-time asserted.
func NewValidator() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(nowhere{}) // every $ref resolves inside the embedded files

	var typed []string
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".schema.json") {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := c.AddResource(BaseURL+p, doc); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if dir := path.Dir(p); dir == "commands" || dir == "events" {
			typed = append(typed, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("schemas: load: %w", err)
	}

	v := &Validator{byType: make(map[string]*jsonschema.Schema, len(typed))}
	if v.envelope, err = c.Compile(BaseURL + "cloudevent.schema.json"); err != nil {
		return nil, fmt.Errorf("schemas: compile the envelope: %w", err)
	}
	for _, p := range typed {
		sch, err := c.Compile(BaseURL + p)
		if err != nil {
			return nil, fmt.Errorf("schemas: compile %s: %w", p, err)
		}
		v.byType[strings.TrimSuffix(path.Base(p), ".schema.json")] = sch
	}
	return v, nil
}

// Types returns the message types the validator knows, sorted.
func (v *Validator) Types() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for t := range v.byType {
			if !yield(t) {
				return
			}
		}
	})
}

// Validate checks one record value against the schema of its type
// attribute. It returns nil, or an error wrapping ErrInvalid or
// ErrUnknownType.
func (v *Validator) Validate(doc []byte) error {
	if err := checkDuplicateKeys(doc); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("%w: not JSON: %w", ErrInvalid, err)
	}
	obj, ok := inst.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: a CloudEvent is a JSON object", ErrInvalid)
	}
	typ, ok := obj["type"].(string)
	if !ok {
		// The envelope says what is wrong: type missing or not a string.
		if err := v.envelope.Validate(inst); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return fmt.Errorf("%w: type is required", ErrInvalid)
	}
	sch, ok := v.byType[typ]
	if !ok {
		return fmt.Errorf("%w: %q; known types: %s", ErrUnknownType, typ, strings.Join(v.Types(), ", "))
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, typ, err)
	}
	return nil
}

var defaultValidator = sync.OnceValues(NewValidator)

// Validate checks doc with a Validator compiled on first use.
func Validate(doc []byte) error {
	v, err := defaultValidator()
	if err != nil {
		return err
	}
	return v.Validate(doc)
}

// checkDuplicateKeys refuses an object with the same key twice, anywhere in
// the document: JSON Schema sees only the last value, and readers disagree
// on which one counts.
func checkDuplicateKeys(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // not JSON: the parser that follows reports it better
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return fmt.Errorf("key %q appears twice in one object", k)
				}
				top.keys[k] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object, a key comes next.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

// nowhere refuses to load anything: a $ref that leaves the embedded files is
// a mistake in the schemas, not a reason to reach for the network.
type nowhere struct{}

func (nowhere) Load(url string) (any, error) {
	return nil, fmt.Errorf("schemas: %s is not embedded", url)
}
