package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The helpers in this file read yaml.Node trees by hand instead of decoding
// into structs, because a struct decoder stops at the first problem and
// loses the line of every value that is merely invalid rather than
// malformed. Each helper reports through the parser and returns ok=false
// when the value is unusable, so the caller skips the checks that depend on
// it instead of piling up follow-on errors.

// item is one scalar from a list, with the line it was written on.
type item struct {
	v    string
	line int
}

// resolve follows an alias to its anchored node, so anchors work wherever a
// value is expected. The parser refuses an anchor that contains its own
// alias, and an alias can never carry an anchor, so one step is enough; the
// loop only guards against a hand-built tree.
func resolve(n *yaml.Node) *yaml.Node {
	for range 8 {
		if n == nil || n.Kind != yaml.AliasNode || n.Alias == nil {
			return n
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the shape of a node for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.ScalarNode:
		return strconv.Quote(n.Value)
	default:
		return "an unexpected YAML node"
	}
}

// fields checks that n is a mapping whose keys are all known and written
// once, and returns the value nodes by key. what prefixes messages ("match",
// "approvers"); it is empty at the top of a policy or the file.
func (p *parser) fields(n *yaml.Node, what string, known ...string) (map[string]*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%swant a mapping with %s, got %s", prefix(what), strings.Join(known, ", "), describe(n))
		return nil, false
	}
	out := make(map[string]*yaml.Node, len(known))
	first := make(map[string]int, len(known))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.errorf(k.Line, "%skeys must be plain words, got %s", prefix(what), describe(k))
			continue
		case k.ShortTag() == "!!merge":
			p.errorf(k.Line, "%smerge keys (<<) are not supported; write the keys out, or share approvers through a group", prefix(what))
			continue
		case !slices.Contains(known, k.Value):
			p.errorf(k.Line, "%sunknown key %q %s", prefix(what), k.Value, hint(k.Value, known))
			continue
		}
		if line, dup := first[k.Value]; dup {
			p.errorf(k.Line, "%s%s is written twice (first at line %d); keep one", prefix(what), k.Value, line)
			continue
		}
		first[k.Value] = k.Line
		out[k.Value] = resolve(v)
	}
	return out, true
}

// hint suggests the known key closest to a misspelt one, or lists them all.
func hint(got string, known []string) string {
	best, dist := "", 3 // suggest only within two edits
	for _, k := range known {
		if d := editDistance(got, k); d < dist {
			best, dist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("(did you mean %q?)", best)
	}
	return "(valid keys: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance, enough for key typos.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func prefix(what string) string {
	if what == "" {
		return ""
	}
	return what + ": "
}

// str reads a scalar that must have a value.
func (p *parser) str(n *yaml.Node, what string) (item, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n.Line, "%s: want a value, got %s", what, describe(n))
		return item{}, false
	}
	return item{v: n.Value, line: n.Line}, true
}

// list reads a list of scalars. A single scalar is taken as a list of one,
// so "environment: production" reads like "environment: [production]".
// An empty list is returned as such; callers decide whether it is allowed.
func (p *parser) list(n *yaml.Node, what string) ([]item, bool) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return []item{{v: n.Value, line: n.Line}}, true
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "%s: want a list, got %s", what, describe(n))
		return nil, false
	}
	out := make([]item, 0, len(n.Content))
	ok := true
	for i, e := range n.Content {
		e = resolve(e)
		it, good := p.str(e, fmt.Sprintf("%s[%d]", what, i))
		if !good {
			ok = false
			continue
		}
		out = append(out, it)
	}
	return out, ok
}

// integer reads a whole number.
func (p *parser) integer(n *yaml.Node, what string) (item, int, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.errorf(n.Line, "%s: want a whole number, got %s", what, describe(n))
		return item{}, 0, false
	}
	v, err := strconv.ParseInt(n.Value, 0, 32)
	if err != nil {
		p.errorf(n.Line, "%s: %q is out of range", what, n.Value)
		return item{}, 0, false
	}
	return item{v: n.Value, line: n.Line}, int(v), true
}
