package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/assent-dev/assent/libs/approval"
)

// Version is the only file format version this package reads.
const Version = 1

// MaxTTL bounds a policy's ttl. A just-in-time approval that stays open for
// longer than a month is standing access in disguise.
const MaxTTL = 30 * 24 * time.Hour

// Error is one problem in a policy file. Parse and Load join every Error
// they find with [errors.Join], sorted by line; use errors.As on each of the
// joined errors (the result's Unwrap() []error) to get at them one by one.
type Error struct {
	File string
	Line int // 1-based; 0 when the problem has no position
	Msg  string
}

// Error formats the problem as "policy: file:line: message", the form
// editors and terminals turn into a link.
func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("policy: %s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("policy: %s:%d: %s", e.File, e.Line, e.Msg)
}

// Load reads and validates the policy file at path. See [Parse].
func Load(path string) (approval.Policies, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the path comes from the operator's configuration
	if err != nil {
		return approval.Policies{}, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Parse validates the policy YAML in data and returns the rule book with
// groups expanded and principals normalized. filename is used only in
// error messages. It returns every problem it finds, never a partial
// result: the Policies are zero whenever the error is not nil.
func Parse(filename string, data []byte) (approval.Policies, error) {
	p := &parser{file: filename}
	var ps approval.Policies
	if root := p.decode(data); root != nil {
		ps = p.top(root)
	}
	if err := p.err(); err != nil {
		return approval.Policies{}, err
	}
	return ps, nil
}

// parser collects errors while it walks one file.
type parser struct {
	file   string
	errs   []*Error
	groups map[string]*group
}

type group struct {
	line    int
	members []string // normalized, sorted, distinct
	broken  bool     // a member was invalid, so its size is not known
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// err sorts the errors by line, drops repeats (an anchored value that is
// used twice is checked twice) and joins them, one per line.
func (p *parser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *Error) int { return a.Line - b.Line })
	p.errs = slices.CompactFunc(p.errs, func(a, b *Error) bool { return *a == *b })
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// decode parses the YAML into a node tree, or records why it cannot.
func (p *parser) decode(data []byte) (root *yaml.Node) {
	defer func() {
		// The YAML library is third-party code reading untrusted bytes; a
		// bug there must surface as a bad policy file, not a crashed service.
		if r := recover(); r != nil {
			p.errorf(0, "the YAML parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(1, "the file is empty; want a mapping with version, groups and policies")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.yamlError(err)
		return nil
	default:
		p.errorf(next.Line, "a second YAML document starts here; keep every policy in one document")
		return nil
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return &doc
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a syntax error from the YAML library into an Error with
// the line it names.
func (p *parser) yamlError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		// The library names the line where the enclosing block or flow
		// collection began, which is often a line or two before the slip.
		line, _ = strconv.Atoi(m[1])
		msg = "invalid YAML at or after this line: " + m[2]
	}
	if strings.Contains(msg, "did not find expected alphabetic or numeric character") {
		// An unquoted * starts an alias: the commonest slip in this format.
		msg += `; a value that starts with * must be quoted, as in "*" or "**/prod"`
	}
	p.errorf(line, "%s", msg)
}

// top reads the file's top-level mapping.
func (p *parser) top(root *yaml.Node) approval.Policies {
	root = resolve(root)
	f, ok := p.fields(root, "", "version", "admins", "groups", "policies")
	if !ok {
		return approval.Policies{}
	}
	if n, ok := f["version"]; !ok {
		p.errorf(root.Line, "version is required; add \"version: %d\" at the top", Version)
	} else if it, v, ok := p.integer(n, "version"); ok && v != Version {
		p.errorf(it.line, "version %d is not supported; this build reads version %d", v, Version)
	}
	// Groups first: admins and policies refer to them wherever they are
	// written in the file.
	p.readGroups(f["groups"])
	admins := p.admins(f["admins"])
	return approval.Policies{Admins: admins, Rules: p.rules(f["policies"], root.Line)}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

const maxNameLen = 63

func validName(s string) bool { return len(s) <= maxNameLen && nameRE.MatchString(s) }

// readGroups fills p.groups. An omitted or null groups key means none.
func (p *parser) readGroups(n *yaml.Node) {
	p.groups = map[string]*group{}
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "groups: want a mapping from group name to members, got %s", describe(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		name := k.Value
		if g, dup := p.groups[name]; dup {
			p.errorf(k.Line, "group %q is defined twice (first at line %d); merge the two lists", name, g.line)
			continue
		}
		g := &group{line: k.Line}
		p.groups[name] = g
		if k.Kind != yaml.ScalarNode || !validName(name) {
			p.errorf(k.Line, "group name %s: use lowercase letters, digits and dashes, such as platform-leads", describe(k))
			g.broken = true
			continue
		}
		what := "groups." + name
		items, ok := p.list(v, what)
		g.broken = !ok
		if ok && len(items) == 0 {
			p.errorf(v.Line, "%s: the group is empty; list at least one member or remove the group", what)
			g.broken = true
			continue
		}
		for _, it := range items {
			if strings.HasPrefix(it.v, groupPrefix) {
				p.errorf(it.line, "%s: %q: groups cannot contain groups; list its members here", what, it.v)
				g.broken = true
				continue
			}
			pr, ok := p.principal(it, what)
			if !ok {
				g.broken = true
				continue
			}
			g.members = append(g.members, pr)
		}
		g.members = slices.Compact(slices.Sorted(slices.Values(g.members)))
	}
}

// groupPrefix marks a group where a principal could also be written.
const groupPrefix = "group:"

// admins reads the principals who may cancel any request.
func (p *parser) admins(n *yaml.Node) []string {
	if n == nil || isNull(n) {
		return nil
	}
	items, _ := p.list(n, "admins")
	var out []string
	for _, it := range items {
		if name, ok := strings.CutPrefix(it.v, groupPrefix); ok {
			if g, ok := p.group(item{v: name, line: it.line}, "admins"); ok {
				out = append(out, g.members...)
			}
			continue
		}
		if pr, ok := p.principal(it, "admins"); ok {
			out = append(out, pr)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(out)))
}

// group looks up a group by name for a reference at it.line.
func (p *parser) group(it item, what string) (*group, bool) {
	g, ok := p.groups[it.v]
	if !ok {
		p.errorf(it.line, "%s: unknown group %q %s", what, it.v, p.definedGroups())
		return nil, false
	}
	return g, true
}

func (p *parser) definedGroups() string {
	if len(p.groups) == 0 {
		return "(no groups are defined; define it under groups: at the top)"
	}
	names := make([]string, 0, len(p.groups))
	for name := range p.groups {
		names = append(names, name)
	}
	slices.Sort(names)
	return "(defined groups: " + strings.Join(names, ", ") + ")"
}

// principal normalizes a user or service principal. System principals are
// refused: the decider acts as one only to expire requests, so one listed
// as an approver or admin could never vote or cancel.
func (p *parser) principal(it item, what string) (string, bool) {
	pr, err := approval.NormalizePrincipal(it.v)
	if err != nil {
		if !strings.Contains(it.v, ":") {
			p.errorf(it.line, "%s: %q is not a principal; write an email address or kind:id, such as alice@example.com or service:oncall-bot", what, it.v)
		} else {
			p.errorf(it.line, "%s: %s", what, strings.TrimPrefix(err.Error(), "approval: "))
		}
		return "", false
	}
	if kind, _, _ := approval.ParsePrincipal(pr); kind == approval.KindSystem {
		p.errorf(it.line, "%s: %q is a system principal; only users and services may approve or cancel", what, it.v)
		return "", false
	}
	return pr, true
}
