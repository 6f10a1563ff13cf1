package policy

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/assent-dev/assent/libs/approval"
)

// rule is one policy as read, with what the cross-policy checks need.
type rule struct {
	policy  approval.Policy
	label   string // `"prod-deploy"`, or `policies[3]` when the name is unusable
	line    int
	nameIt  item
	nameOK  bool
	matchOK bool
}

var ruleKeys = []string{"name", "match", "approvers", "min_approvals", "reject_threshold", "ttl", "notify"}

// requiredExample shows how to write each required key in messages.
var requiredExample = map[string]string{
	"match":         "match: {action: [deploy], environment: [production]}",
	"approvers":     "approvers: {groups: [sre]}",
	"min_approvals": "min_approvals: 1",
	"ttl":           "ttl: 1h",
}

// rules reads the policies list and runs the checks across policies.
func (p *parser) rules(n *yaml.Node, topLine int) []approval.Policy {
	switch {
	case n == nil:
		p.errorf(topLine, "policies is required; list at least one policy")
		return nil
	case n.Kind != yaml.SequenceNode:
		p.errorf(n.Line, "policies: want a list of policies, got %s", describe(n))
		return nil
	case len(n.Content) == 0:
		p.errorf(n.Line, "policies is empty; list at least one policy")
		return nil
	}
	rs := make([]rule, 0, len(n.Content))
	for i, e := range n.Content {
		if r, ok := p.rule(i, resolve(e)); ok {
			rs = append(rs, r)
		}
	}
	p.checkNames(rs)
	p.checkShadowed(rs)
	out := make([]approval.Policy, len(rs))
	for i, r := range rs {
		out[i] = r.policy
	}
	return out
}

func (p *parser) checkNames(rs []rule) {
	seen := map[string]int{}
	for _, r := range rs {
		if !r.nameOK {
			continue
		}
		if line, dup := seen[r.nameIt.v]; dup {
			p.errorf(r.nameIt.line, "name %q is already used by the policy at line %d; names must be unique", r.nameIt.v, line)
			continue
		}
		seen[r.nameIt.v] = r.nameIt.line
	}
}

// rule reads the i-th policy. It returns ok=false only when the entry is
// not a mapping at all; otherwise its errors are recorded and the partial
// rule still takes part in the checks across policies.
func (p *parser) rule(i int, n *yaml.Node) (rule, bool) {
	r := rule{label: fmt.Sprintf("policies[%d]", i), line: n.Line}
	f, ok := p.fields(n, r.label, ruleKeys...)
	if !ok {
		return r, false
	}
	if v, ok := f["name"]; !ok {
		p.errorf(n.Line, "%s: name is required, as in \"name: prod-deploy\"", r.label)
	} else if it, ok := p.str(v, "name"); ok {
		if validName(it.v) {
			r.policy.Name, r.nameIt, r.nameOK = it.v, it, true
			r.label = fmt.Sprintf("policy %q", it.v)
		} else {
			p.errorf(it.line, "name %q: use lowercase letters, digits and dashes, such as prod-deploy", it.v)
		}
	}
	required := func(key string) (*yaml.Node, bool) {
		v, ok := f[key]
		if !ok {
			p.errorf(n.Line, "%s: %s is required, as in %q", r.label, key, requiredExample[key])
		}
		return v, ok
	}

	if v, ok := required("match"); ok {
		r.policy.Match, r.matchOK = p.match(v)
	}

	var approvers []string
	approversOK := false
	if v, ok := required("approvers"); ok {
		approvers, approversOK = p.approvers(v)
		r.policy.Approvers = approvers
	}

	if v, ok := required("min_approvals"); ok {
		if it, m, ok := p.integer(v, "min_approvals"); ok {
			r.policy.MinApprovals = m
			switch {
			case m < 1:
				p.errorf(it.line, "min_approvals is %d; it must be at least 1", m)
			case approversOK && m > len(approvers):
				p.errorf(it.line, "min_approvals is %d but only %d approvers are listed (%s); add approvers or lower min_approvals",
					m, len(approvers), strings.Join(approvers, ", "))
			}
		}
	}

	r.policy.RejectThreshold = 1
	if v, ok := f["reject_threshold"]; ok {
		if it, t, ok := p.integer(v, "reject_threshold"); ok {
			r.policy.RejectThreshold = t
			switch {
			case t < 1:
				p.errorf(it.line, "reject_threshold is %d; it must be at least 1 (omit it for the default of 1)", t)
			case approversOK && t > len(approvers):
				p.errorf(it.line, "reject_threshold is %d but only %d approvers are listed, so no request could ever be rejected; lower it", t, len(approvers))
			}
		}
	}

	if v, ok := required("ttl"); ok {
		r.policy.TTL = p.ttl(v)
	}

	if v, ok := f["notify"]; ok {
		r.policy.Notify = p.notify(v)
	}
	return r, true
}

func (p *parser) ttl(n *yaml.Node) approval.Duration {
	it, ok := p.str(n, "ttl")
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(it.v)
	switch {
	case err != nil:
		p.errorf(it.line, "ttl %q is not a Go duration; write it with h, m or s, such as 1h, 90m or 168h (there is no d unit)", it.v)
	case d <= 0:
		p.errorf(it.line, "ttl is %s; it must be positive", d)
	case d > MaxTTL:
		p.errorf(it.line, "ttl is %s; it must be at most %s (30 days)", d, MaxTTL)
	}
	return approval.Duration(d)
}

// match reads a match block. Lists are sorted and de-duplicated and "*" is
// folded into the empty list, and a resource of "**" into the empty glob,
// so that matches that mean the same thing hash the same.
func (p *parser) match(n *yaml.Node) (approval.Match, bool) {
	f, ok := p.fields(n, "match", "action", "environment", "resource")
	if !ok {
		return approval.Match{}, false
	}
	var m approval.Match
	actionsOK, envsOK, resourceOK := true, true, true
	if v, ok := f["action"]; ok {
		m.ActionTypes, actionsOK = p.matchList(v, "match.action", "action type")
	}
	if v, ok := f["environment"]; ok {
		m.Environments, envsOK = p.matchList(v, "match.environment", "environment")
	}
	if v, ok := f["resource"]; ok {
		m.Resource, resourceOK = p.resource(v)
	}
	return m, actionsOK && envsOK && resourceOK
}

func (p *parser) matchList(n *yaml.Node, what, noun string) ([]string, bool) {
	items, ok := p.list(n, what)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		p.errorf(n.Line, `%s: an empty list would match any %s; omit the key or write "*" to say so`, what, noun)
		return nil, false
	}
	var out []string
	star := false
	for _, it := range items {
		switch {
		case it.v == "*":
			star = true
		case it.v == "" || strings.TrimSpace(it.v) != it.v:
			p.errorf(it.line, "%s: %q: want a non-empty %s without surrounding spaces", what, it.v, noun)
			ok = false
		case strings.ContainsAny(it.v, "*?["):
			p.errorf(it.line, `%s: %q: only match.resource takes a glob; list each %s, or write "*" for any`, what, it.v, noun)
			ok = false
		default:
			out = append(out, it.v)
		}
	}
	if star && len(items) > 1 {
		p.errorf(n.Line, `%s: "*" matches any %s, so the other entries do nothing; keep only "*"`, what, noun)
		return nil, false
	}
	return slices.Compact(slices.Sorted(slices.Values(out))), ok
}

func (p *parser) resource(n *yaml.Node) (string, bool) {
	it, ok := p.str(n, "match.resource")
	if !ok {
		return "", false
	}
	switch {
	case it.v == "":
		p.errorf(it.line, `match.resource is empty; omit it or write "**" to match every resource`)
		return "", false
	case strings.TrimSpace(it.v) != it.v:
		p.errorf(it.line, "match.resource %q has surrounding spaces, which no resource name has", it.v)
		return "", false
	case it.v == "**":
		return "", true
	}
	return it.v, true
}

// approvers expands groups and normalizes users. ok is false when a group or
// user is unusable, so the count of approvers is not known.
func (p *parser) approvers(n *yaml.Node) ([]string, bool) {
	f, ok := p.fields(n, "approvers", "groups", "users")
	if !ok {
		return nil, false
	}
	var out []string
	if v, present := f["groups"]; present {
		items, good := p.list(v, "approvers.groups")
		ok = ok && good
		for _, it := range items {
			if name, isGroup := strings.CutPrefix(it.v, groupPrefix); isGroup {
				p.errorf(it.line, "approvers.groups: write %q without the group: prefix, which only admins need", name)
				ok = false
				continue
			}
			g, good := p.group(it, "approvers.groups")
			if !good || g.broken {
				ok = false
				continue
			}
			out = append(out, g.members...)
		}
	}
	if v, present := f["users"]; present {
		items, good := p.list(v, "approvers.users")
		ok = ok && good
		for _, it := range items {
			if name, isGroup := strings.CutPrefix(it.v, groupPrefix); isGroup {
				p.errorf(it.line, "approvers.users: %q is a group; list %q under approvers.groups", it.v, name)
				ok = false
				continue
			}
			pr, good := p.principal(it, "approvers.users")
			if !good {
				ok = false
				continue
			}
			out = append(out, pr)
		}
	}
	if ok && len(out) == 0 {
		p.errorf(n.Line, "approvers: list at least one group or user")
		return nil, false
	}
	return slices.Compact(slices.Sorted(slices.Values(out))), ok
}

// Notification kinds as written in the file. slack_dm takes the value
// "approvers" and becomes the domain's "slack_dm_approvers".
var notifyKeys = []string{"slack_channel", "slack_dm", "webhook", "email"}

var (
	channelName = regexp.MustCompile(`^#[a-z0-9][a-z0-9_-]{0,79}$`)
	channelID   = regexp.MustCompile(`^[CG][A-Z0-9]{8,20}$`)
)

func (p *parser) notify(n *yaml.Node) []approval.NotifyTarget {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "notify: want a list such as [{slack_channel: C0DEPLOYS}, {slack_dm: approvers}], got %s", describe(n))
		return nil
	}
	var out []approval.NotifyTarget
	seen := map[[2]string]int{}
	for i, e := range n.Content {
		e = resolve(e)
		what := fmt.Sprintf("notify[%d]", i)
		var events *yaml.Node
		if e.Kind == yaml.MappingNode && len(e.Content) == 4 && e.Content[2].Value == "events" {
			events = resolve(e.Content[3])
			e = &yaml.Node{Kind: yaml.MappingNode, Line: e.Line, Content: e.Content[:2]}
		}
		if e.Kind == yaml.MappingNode && len(e.Content) > 2 {
			p.errorf(e.Line, "%s: an entry has exactly one key; write each target as its own \"- kind: value\" entry", what)
			continue
		}
		if e.Kind != yaml.MappingNode || len(e.Content) != 2 {
			p.errorf(e.Line, "%s: want one of %s with its value, such as \"- email: sre@example.com\", got %s",
				what, strings.Join(notifyKeys, ", "), describe(e))
			continue
		}
		f, ok := p.fields(e, what, notifyKeys...)
		if !ok {
			continue
		}
		for kind, v := range f { // exactly one entry
			t, ok := p.notifyTarget(what+"."+kind, kind, v)
			if !ok {
				continue
			}
			if events != nil {
				if t.Events, ok = p.notifyEvents(what, kind, events); !ok {
					continue
				}
			}
			key := [2]string{t.Kind, t.Target}
			if line, dup := seen[key]; dup {
				p.errorf(v.Line, "%s: repeats the target at line %d; remove one", what, line)
				continue
			}
			seen[key] = v.Line
			out = append(out, t)
		}
	}
	return out
}

// notifyEvents reads the events a webhook or email target gets, in
// lifecycle order.
func (p *parser) notifyEvents(what, kind string, n *yaml.Node) ([]string, bool) {
	if kind != "webhook" && kind != "email" {
		p.errorf(n.Line, "%s: events are for webhook and email targets; Slack cards follow the request", what)
		return nil, false
	}
	items, ok := p.list(n, what+".events")
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		p.errorf(n.Line, "%s.events: list at least one of %s, or leave events out for the default", what, strings.Join(approval.NotifyEvents(), ", "))
		return nil, false
	}
	var out []string
	for _, it := range items {
		if !slices.Contains(approval.NotifyEvents(), it.v) {
			p.errorf(it.line, "%s.events: unknown event %q %s", what, it.v, hint(it.v, approval.NotifyEvents()))
			ok = false
			continue
		}
		out = append(out, it.v)
	}
	out = slices.DeleteFunc(approval.NotifyEvents(), func(e string) bool { return !slices.Contains(out, e) })
	return out, ok
}

func (p *parser) notifyTarget(what, kind string, n *yaml.Node) (approval.NotifyTarget, bool) {
	if isNull(n) && kind == "slack_channel" {
		p.errorf(n.Line, `%s has no value; if you wrote #channel, quote it, as in "#deploys": YAML reads # as a comment`, what)
		return approval.NotifyTarget{}, false
	}
	it, ok := p.str(n, what)
	if !ok {
		return approval.NotifyTarget{}, false
	}
	switch kind {
	case "slack_channel":
		if !channelName.MatchString(it.v) && !channelID.MatchString(it.v) {
			p.errorf(it.line, `%s %q: want a channel id such as C0123ABCD or a quoted name such as "#deploys"`, what, it.v)
			return approval.NotifyTarget{}, false
		}
		return approval.NotifyTarget{Kind: "slack_channel", Target: it.v}, true
	case "slack_dm":
		if it.v != "approvers" {
			p.errorf(it.line, `%s %q: the only recipients are "approvers"`, what, it.v)
			return approval.NotifyTarget{}, false
		}
		return approval.NotifyTarget{Kind: "slack_dm_approvers"}, true
	case "webhook":
		if msg := checkWebhook(it.v); msg != "" {
			p.errorf(it.line, "%s %q: %s", what, it.v, msg)
			return approval.NotifyTarget{}, false
		}
		return approval.NotifyTarget{Kind: "webhook", Target: it.v}, true
	case "email":
		if it.v == "approvers" || it.v == "requester" {
			return approval.NotifyTarget{Kind: "email", Target: it.v}, true
		}
		a, err := mail.ParseAddress(it.v)
		if err != nil || a.Name != "" || a.Address != it.v {
			p.errorf(it.line, "%s %q: want a bare address such as sre@example.com, or approvers, or requester", what, it.v)
			return approval.NotifyTarget{}, false
		}
		return approval.NotifyTarget{Kind: "email", Target: it.v}, true
	default:
		// fields has already refused any other key.
		return approval.NotifyTarget{}, false
	}
}

// checkWebhook returns what is wrong with a webhook URL, or "".
func checkWebhook(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return "want an absolute URL such as https://hooks.example.com/assent"
	case u.User != nil:
		return "remove the credentials from the URL; a policy file is not a secret store"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return ""
	case u.Scheme == "http":
		return "use https://; plain http:// is allowed only for localhost"
	default:
		return "want an https:// URL"
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
