package policy_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/policy"
)

var examplePath = filepath.Join("..", "..", "infra", "policies", "example.yaml")

func users(emails ...string) []string {
	out := make([]string, len(emails))
	for i, e := range emails {
		out[i] = "user:" + e + "@example.com"
	}
	return out
}

// TestExampleFile keeps the shipped example valid and checks that it says
// what its comments claim: which policy each kind of action lands on, with
// groups expanded into principals.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	ps, err := policy.Load(examplePath)
	require.NoError(t, err)

	require.Equal(t, []string{"service:request-janitor", "user:judy@example.com", "user:mallory@example.com"}, ps.Admins)
	names := make([]string, len(ps.Rules))
	for i, r := range ps.Rules {
		names[i] = r.Name
	}
	require.Equal(t, []string{"prod-admin-access", "prod-sql-write", "prod-deploy-payments", "prod-deploy", "prod-config", "staging-any"}, names)

	tests := []struct {
		name   string
		action approval.Action
		want   string // policy name; "" for no policy
	}{
		{"prod deploy", approval.Action{Type: "deploy", Environment: "production", Resource: "services/search/api"}, "prod-deploy"},
		{"prod rollback", approval.Action{Type: "rollback", Environment: "production", Resource: "services/search"}, "prod-deploy"},
		{"prod payments deploy", approval.Action{Type: "deploy", Environment: "production", Resource: "services/payments/ledger"}, "prod-deploy-payments"},
		{"prod deploy outside services", approval.Action{Type: "deploy", Environment: "production", Resource: "jobs/nightly"}, ""},
		{"prod sql write", approval.Action{Type: "sql_write", Environment: "production", Resource: "databases/orders/main"}, "prod-sql-write"},
		{"prod migration", approval.Action{Type: "schema_migration", Environment: "production", Resource: "databases/orders"}, "prod-sql-write"},
		{"prod config", approval.Action{Type: "feature_flag", Environment: "production", Resource: "flags/new-checkout"}, "prod-config"},
		{"prod admin", approval.Action{Type: "grant_admin", Environment: "production", Resource: "clusters/eu-1"}, "prod-admin-access"},
		{"staging anything", approval.Action{Type: "grant_admin", Environment: "staging", Resource: "clusters/eu-1"}, "staging-any"},
		{"unknown prod action", approval.Action{Type: "reboot", Environment: "production", Resource: "hosts/db-1"}, ""},
		{"dev", approval.Action{Type: "deploy", Environment: "dev", Resource: "services/search"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, ok := ps.Find(tt.action)
			if tt.want == "" {
				require.False(t, ok, "matched %q", p.Name)
				return
			}
			require.True(t, ok)
			require.Equal(t, tt.want, p.Name)
		})
	}

	deploy, ok := ps.Find(approval.Action{Type: "deploy", Environment: "production", Resource: "services/search/api"})
	require.True(t, ok)
	require.Equal(t, approval.Policy{
		Name: "prod-deploy",
		Match: approval.Match{
			ActionTypes:  []string{"deploy", "rollback"},
			Environments: []string{"production"},
			Resource:     "services/**",
		},
		Approvers:       users("alice", "bob", "carol", "dana"),
		MinApprovals:    1,
		RejectThreshold: 1,
		TTL:             approval.Duration(time.Hour),
		Notify: []approval.NotifyTarget{
			{Kind: "slack_channel", Target: "#deploys"},
			{Kind: "webhook", Target: "https://hooks.example.com/assent/deploys"},
		},
	}, deploy)

	admin, ok := ps.Find(approval.Action{Type: "break_glass", Environment: "production", Resource: "x"})
	require.True(t, ok)
	require.Equal(t, users("heidi", "ivan", "judy", "mallory"), admin.Approvers)
	require.Equal(t, 2, admin.MinApprovals)
	require.Equal(t, approval.Duration(15*time.Minute), admin.TTL)
	require.Equal(t, []approval.NotifyTarget{
		{Kind: "slack_channel", Target: "#security-alerts"},
		{Kind: "slack_dm_approvers"},
		{Kind: "email", Target: "security@example.com"},
	}, admin.Notify)
}

// TestParse covers what valid files turn into: defaults, shorthand and the
// canonical form that makes equal policies hash equally.
func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want approval.Policies
	}{
		{
			name: "defaults and shorthand",
			yaml: `
version: 1
policies:
  - name: deploy
    match: {action: deploy, environment: production}
    approvers: {users: alice@example.com}
    min_approvals: 1
    ttl: 90m
`,
			want: approval.Policies{Rules: []approval.Policy{{
				Name:            "deploy",
				Match:           approval.Match{ActionTypes: []string{"deploy"}, Environments: []string{"production"}},
				Approvers:       users("alice"),
				MinApprovals:    1,
				RejectThreshold: 1,
				TTL:             approval.Duration(90 * time.Minute),
			}}},
		},
		{
			name: "star and double star mean any",
			yaml: `
version: 1
policies:
  - name: everything
    match: {action: "*", environment: ["*"], resource: "**"}
    approvers: {users: [alice@example.com]}
    min_approvals: 1
    ttl: 1h
`,
			want: approval.Policies{Rules: []approval.Policy{{
				Name:            "everything",
				Approvers:       users("alice"),
				MinApprovals:    1,
				RejectThreshold: 1,
				TTL:             approval.Duration(time.Hour),
			}}},
		},
		{
			name: "groups expanded, principals normalized, sorted and distinct",
			yaml: `
version: 1
admins: [group:leads, root@example.com, user:judy@example.com]
groups:
  sre: [bob@example.com, " alice@example.com", service:oncall-bot, bob@example.com]
  leads: [judy@example.com]
policies:
  - name: deploy
    match: {environment: [prod, prod, dev]}
    approvers:
      groups: [sre, leads, sre]
      users: [user:alice@example.com, carol@example.com]
    min_approvals: 5
    reject_threshold: 2
    ttl: 720h
`,
			want: approval.Policies{
				Admins: users("judy", "root"),
				Rules: []approval.Policy{{
					Name:            "deploy",
					Match:           approval.Match{Environments: []string{"dev", "prod"}},
					Approvers:       append([]string{"service:oncall-bot"}, users("alice", "bob", "carol", "judy")...),
					MinApprovals:    5,
					RejectThreshold: 2,
					TTL:             approval.Duration(policy.MaxTTL),
				}},
			},
		},
		{
			name: "notify kinds, webhooks on loopback",
			yaml: `
version: 1
policies:
  - name: deploy
    match: {environment: [prod]}
    approvers: {users: [alice@example.com]}
    min_approvals: 1
    ttl: 1h
    notify:
      - slack_channel: C0DEPLOYS
      - slack_channel: "#deploys"
      - slack_dm: approvers
      - webhook: http://localhost:8080/hook
      - webhook: http://127.0.0.1/hook
      - webhook: https://hooks.example.com/assent?team=sre
      - email: sre@example.com
`,
			want: approval.Policies{Rules: []approval.Policy{{
				Name:            "deploy",
				Match:           approval.Match{Environments: []string{"prod"}},
				Approvers:       users("alice"),
				MinApprovals:    1,
				RejectThreshold: 1,
				TTL:             approval.Duration(time.Hour),
				Notify: []approval.NotifyTarget{
					{Kind: "slack_channel", Target: "C0DEPLOYS"},
					{Kind: "slack_channel", Target: "#deploys"},
					{Kind: "slack_dm_approvers"},
					{Kind: "webhook", Target: "http://localhost:8080/hook"},
					{Kind: "webhook", Target: "http://127.0.0.1/hook"},
					{Kind: "webhook", Target: "https://hooks.example.com/assent?team=sre"},
					{Kind: "email", Target: "sre@example.com"},
				},
			}}},
		},
		{
			name: "webhook and email targets choose their events",
			yaml: `
version: 1
policies:
  - name: deploy
    match: {environment: [prod]}
    approvers: {users: [alice@example.com]}
    min_approvals: 1
    ttl: 1h
    notify:
      - webhook: https://hooks.example.com/all
        events: [cancelled, submitted, voted, approved, rejected, expired]
      - email: approvers
      - email: requester
      - {email: audit@example.com, events: approved}
`,
			want: approval.Policies{Rules: []approval.Policy{{
				Name:            "deploy",
				Match:           approval.Match{Environments: []string{"prod"}},
				Approvers:       users("alice"),
				MinApprovals:    1,
				RejectThreshold: 1,
				TTL:             approval.Duration(time.Hour),
				Notify: []approval.NotifyTarget{
					{Kind: "webhook", Target: "https://hooks.example.com/all", Events: approval.NotifyEvents()},
					{Kind: "email", Target: "approvers"},
					{Kind: "email", Target: "requester"},
					{Kind: "email", Target: "audit@example.com", Events: []string{"approved"}},
				},
			}}},
		},
		{
			// Only a plainly broader earlier match shadows a later one. A glob
			// that happens to cover another ("services/*" over "services/a")
			// is not judged, and a narrower earlier policy shadows nothing.
			name: "not shadowed",
			yaml: `
version: 1
policies:
  - name: api
    match: {action: [deploy], resource: "services/api"}
    approvers: {users: [alice@example.com]}
    min_approvals: 1
    ttl: 1h
  - name: services
    match: {action: [deploy], resource: "services/*"}
    approvers: {users: [alice@example.com]}
    min_approvals: 1
    ttl: 1h
  - name: services-api-again
    match: {action: [deploy], resource: "services/api/**"}
    approvers: {users: [alice@example.com]}
    min_approvals: 1
    ttl: 1h
  - name: more-actions
    match: {action: [deploy, rollback]}
    approvers: {users: [alice@example.com]}
    min_approvals: 1
    ttl: 1h
`,
			want: approval.Policies{Rules: []approval.Policy{
				{Name: "api", Match: approval.Match{ActionTypes: []string{"deploy"}, Resource: "services/api"}, Approvers: users("alice"), MinApprovals: 1, RejectThreshold: 1, TTL: approval.Duration(time.Hour)},
				{Name: "services", Match: approval.Match{ActionTypes: []string{"deploy"}, Resource: "services/*"}, Approvers: users("alice"), MinApprovals: 1, RejectThreshold: 1, TTL: approval.Duration(time.Hour)},
				{Name: "services-api-again", Match: approval.Match{ActionTypes: []string{"deploy"}, Resource: "services/api/**"}, Approvers: users("alice"), MinApprovals: 1, RejectThreshold: 1, TTL: approval.Duration(time.Hour)},
				{Name: "more-actions", Match: approval.Match{ActionTypes: []string{"deploy", "rollback"}}, Approvers: users("alice"), MinApprovals: 1, RejectThreshold: 1, TTL: approval.Duration(time.Hour)},
			}},
		},
		{
			name: "anchors and aliases",
			yaml: `
version: 1
policies:
  - name: prod
    match: {environment: [production]}
    approvers: &both {users: [alice@example.com, bob@example.com]}
    min_approvals: 2
    ttl: &ttl 1h
  - name: staging
    match: {environment: [staging]}
    approvers: *both
    min_approvals: 1
    ttl: *ttl
`,
			want: approval.Policies{Rules: []approval.Policy{
				{Name: "prod", Match: approval.Match{Environments: []string{"production"}}, Approvers: users("alice", "bob"), MinApprovals: 2, RejectThreshold: 1, TTL: approval.Duration(time.Hour)},
				{Name: "staging", Match: approval.Match{Environments: []string{"staging"}}, Approvers: users("alice", "bob"), MinApprovals: 1, RejectThreshold: 1, TTL: approval.Duration(time.Hour)},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := policy.Parse("test.yaml", []byte(tt.yaml))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestHash checks that the content hash snapshotted into every request
// depends on what a policy means, not on how its YAML happens to be laid
// out, and that it moves when the quorum does.
func TestHash(t *testing.T) {
	t.Parallel()
	const tmpl = `
version: 1
groups:
  sre: [alice@example.com, bob@example.com]
policies:
  - name: deploy
    match: {action: %s, environment: [production]}
    approvers: %s
    min_approvals: %d
    ttl: 1h
`
	hash := func(t *testing.T, actions, approvers string, minApprovals int) string {
		t.Helper()
		ps, err := policy.Parse("hash.yaml", fmt.Appendf(nil, tmpl, actions, approvers, minApprovals))
		require.NoError(t, err)
		require.Len(t, ps.Rules, 1)
		return ps.Rules[0].Hash()
	}
	base := hash(t, "[deploy, rollback]", "{users: [alice@example.com, bob@example.com]}", 2)

	tests := []struct {
		name         string
		actions      string
		approvers    string
		minApprovals int
		same         bool
	}{
		{"approvers reordered", "[deploy, rollback]", "{users: [bob@example.com, alice@example.com]}", 2, true},
		{"approvers through a group", "[deploy, rollback]", "{groups: [sre]}", 2, true},
		{"approvers repeated, kind spelled out", "[deploy, rollback]", "{groups: [sre], users: [user:bob@example.com]}", 2, true},
		{"actions reordered", "[rollback, deploy]", "{users: [alice@example.com, bob@example.com]}", 2, true},
		{"min_approvals changed", "[deploy, rollback]", "{users: [alice@example.com, bob@example.com]}", 1, false},
		{"approver added", "[deploy, rollback]", "{users: [alice@example.com, bob@example.com, carol@example.com]}", 2, false},
		{"action removed", "[deploy]", "{users: [alice@example.com, bob@example.com]}", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := hash(t, tt.actions, tt.approvers, tt.minApprovals)
			if tt.same {
				require.Equal(t, base, got)
			} else {
				require.NotEqual(t, base, got)
			}
		})
	}
}
