package logadmin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/eventlog"
)

// Role is what a Kafka principal does for Assent. Each service runs as a
// principal of its own, holding only the ACLs its role needs
// (docs/architecture.md, "Kafka authentication and ACLs"): with
// allow.everyone.if.no.acl.found=false the cluster refuses everything else.
type Role string

// The roles, one per service.
const (
	RoleDecider      Role = "decider"       // reads commands, writes events (transactions), sends its timers as commands
	RoleAPI          Role = "api"           // writes commands, reads events
	RoleSlackGateway Role = "slack-gateway" // writes commands, reads events, one consumer group
	RoleNotifier     Role = "notifier"      // writes commands, reads events, one consumer group
	RoleConsole      Role = "console"       // writes commands, reads events
	RoleAuditor      Role = "auditor"       // reads events
	RoleKafkaHealth  Role = "kafka-health"  // describes the cluster, the topics and the groups
)

// Roles lists every role, in a stable order.
func Roles() []Role {
	return []Role{RoleDecider, RoleAPI, RoleSlackGateway, RoleNotifier, RoleConsole, RoleAuditor, RoleKafkaHealth}
}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if slices.Contains(Roles(), r) {
		return r, nil
	}
	names := make([]string, 0, len(Roles()))
	for _, r := range Roles() {
		names = append(names, string(r))
	}
	return "", fmt.Errorf("unknown role %q; the roles are %s", s, strings.Join(names, ", "))
}

// Prefixes of the consumer groups and transactional ids the roles use.
// They are the services' defaults (ASSENT_DECIDER_GROUP, ASSENT_SLACK_GROUP,
// ASSENT_NOTIFIER_GROUP; the decider's transactional id is "assent-" and
// its instance id): a deployment that renames a group keeps the prefix, or
// grants its own.
const (
	DeciderGroupPrefix      = "assent-decider"
	DeciderTxnPrefix        = "assent-"
	SlackGatewayGroupPrefix = "assent-slack-gateway"
	NotifierGroupPrefix     = "assent-notifier"
	// GroupsPrefix covers every group above, for the health exporter.
	GroupsPrefix = "assent-"
)

// Grant is one ACL: a principal may do Ops on a resource.
type Grant struct {
	Resource string // "topic", "group", "transactional-id" or "cluster"
	Name     string // the resource's name, or its prefix if Prefixed
	Prefixed bool
	Ops      []kadm.ACLOperation
}

func (g Grant) String() string {
	ops := make([]string, 0, len(g.Ops))
	for _, op := range g.Ops {
		ops = append(ops, op.String())
	}
	name := g.Name
	if g.Prefixed {
		name += "*"
	}
	return fmt.Sprintf("%s %s: %s", g.Resource, name, strings.Join(ops, ","))
}

// Grants returns the least-privilege ACLs of role on spec's topics.
// Reading a topic includes describing it and its configs (every service
// checks its topics at start, logadmin.Connect); writing includes
// describing it too.
func Grants(role Role, spec eventlog.TopicSpec) ([]Grant, error) {
	read := []kadm.ACLOperation{kadm.OpRead, kadm.OpDescribe, kadm.OpDescribeConfigs}
	write := []kadm.ACLOperation{kadm.OpWrite, kadm.OpDescribe, kadm.OpDescribeConfigs}
	readWrite := []kadm.ACLOperation{kadm.OpRead, kadm.OpWrite, kadm.OpDescribe, kadm.OpDescribeConfigs}
	topic := func(name string, ops []kadm.ACLOperation) Grant {
		return Grant{Resource: "topic", Name: name, Ops: ops}
	}
	group := func(prefix string) Grant {
		return Grant{Resource: "group", Name: prefix, Prefixed: true, Ops: []kadm.ACLOperation{kadm.OpRead, kadm.OpDescribe}}
	}
	switch role {
	case RoleDecider:
		return []Grant{
			topic(spec.Commands, readWrite), // its timers are commands it sends itself
			topic(spec.Events, readWrite),   // it catches up on the events it wrote
			group(DeciderGroupPrefix),
			{Resource: "transactional-id", Name: DeciderTxnPrefix, Prefixed: true, Ops: []kadm.ACLOperation{kadm.OpWrite, kadm.OpDescribe}},
		}, nil
	case RoleAPI, RoleConsole:
		return []Grant{topic(spec.Commands, write), topic(spec.Events, read)}, nil
	case RoleSlackGateway:
		return []Grant{topic(spec.Commands, write), topic(spec.Events, read), group(SlackGatewayGroupPrefix)}, nil
	case RoleNotifier:
		return []Grant{topic(spec.Commands, write), topic(spec.Events, read), group(NotifierGroupPrefix)}, nil
	case RoleAuditor:
		return []Grant{topic(spec.Events, read)}, nil
	case RoleKafkaHealth:
		describe := []kadm.ACLOperation{kadm.OpDescribe, kadm.OpDescribeConfigs}
		return []Grant{
			topic(spec.Commands, describe), topic(spec.Events, describe),
			{Resource: "group", Name: GroupsPrefix, Prefixed: true, Ops: []kadm.ACLOperation{kadm.OpDescribe}},
			{Resource: "cluster", Name: "kafka-cluster", Ops: []kadm.ACLOperation{kadm.OpDescribe}},
		}, nil
	}
	return nil, fmt.Errorf("logadmin: unknown role %q", role)
}

// GrantACLs creates role's ACLs for the principal ("User:name"). Creating
// an ACL that exists is a no-op, so it is safe to run at every start.
func GrantACLs(ctx context.Context, adm *kadm.Client, principal string, role Role, spec eventlog.TopicSpec) error {
	if !strings.HasPrefix(principal, "User:") {
		return fmt.Errorf("logadmin: principal %q: want User:<name>", principal)
	}
	grants, err := Grants(role, spec)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range grants {
		b := kadm.NewACLs().Allow(principal).AllowHosts("*").Operations(g.Ops...)
		switch g.Resource {
		case "topic":
			b.Topics(g.Name)
		case "group":
			b.Groups(g.Name)
		case "transactional-id":
			b.TransactionalIDs(g.Name)
		case "cluster":
			b.Clusters()
		}
		if g.Prefixed {
			b.ResourcePatternType(kadm.ACLPatternPrefixed)
		}
		res, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return fmt.Errorf("logadmin: grant %s to %s: %w", g, principal, err)
		}
		for _, r := range res {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("grant %s %s to %s: %w (%s)", r.Operation, g, principal, r.Err, r.ErrMessage))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("logadmin: %w", errors.Join(errs...))
	}
	return nil
}

// UpsertUser creates the SCRAM-SHA-512 credential of user, or replaces
// its password. The password never leaves this call except to the broker,
// salted.
func UpsertUser(ctx context.Context, adm *kadm.Client, user, password string) error {
	if user == "" || password == "" {
		return errors.New("logadmin: a SCRAM user needs a name and a password")
	}
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: user, Mechanism: kadm.ScramSha512, Iterations: 8192, Password: password,
	}})
	if err != nil {
		return fmt.Errorf("logadmin: SCRAM user %s: %w", user, err)
	}
	if err := res.Error(); err != nil {
		return fmt.Errorf("logadmin: SCRAM user %s: %w", user, err)
	}
	return nil
}
