package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/test/fakeoidc"
	"github.com/assent-dev/assent/test/slackfake"
	"github.com/assent-dev/assent/test/systest"
)

// service is how to start one Assent service on the scratch topics: its
// binary, its Kafka role (its principal is assent-<role>, as scripts/up
// runs it) and the settings its README requires beyond the common ones
// (brokers, topics, partitions, published keys, data directory, address).
type service struct {
	bin  string
	args []string
	role logadmin.Role
	env  func(b *bench, p *proc) ([]string, error)
}

// serviceOrder is the order the services are measured in: the api first,
// whose replica the bootstrap then copies.
var serviceOrder = []string{"api", "decider", "slack-gateway", "notifier", "auditor", "console"}

var services = map[string]service{
	"api": {bin: "api", role: logadmin.RoleAPI, env: func(b *bench, p *proc) ([]string, error) {
		snap, err := systest.UniqueAddr()
		if err != nil {
			return nil, err
		}
		p.snapAddr = snap
		token := filepath.Join(b.dir, "snapshot.token")
		if err := os.WriteFile(token, []byte("rebuild-bench-snapshot-token\n"), 0o600); err != nil {
			return nil, err
		}
		return []string{
			"ASSENT_TOKENS_FILE=" + filepath.Join(b.o.root, "infra/tokens/demo-tokens.yaml"),
			"ASSENT_COMMAND_KEY_FILE=" + filepath.Join(b.o.root, "infra/keys/demo-api.key.pem"), "ASSENT_COMMAND_KEY_ID=demo-api-2026-01",
			"ASSENT_SNAPSHOT_ADDR=" + snap, "ASSENT_SNAPSHOT_TOKEN_FILE=" + token, "ASSENT_SNAPSHOT_INTERVAL=24h",
		}, nil
	}},
	// The decider joins a group of its own on the scratch commands topic
	// (empty: it decides nothing); its projection reads the scratch
	// events topic like any other. It seals with the demo key, which
	// signs nothing here.
	"decider": {bin: "decider", role: logadmin.RoleDecider, env: func(b *bench, _ *proc) ([]string, error) {
		return []string{
			"ASSENT_DECIDER_GROUP=" + logadmin.DeciderGroupPrefix + "-rebuild-bench-" + b.stamp,
			"ASSENT_POLICY_FILE=" + filepath.Join(b.o.root, "infra/policies/example.yaml"),
			"ASSENT_SIGNING_KEY_FILE=" + filepath.Join(b.o.root, "infra/keys/demo-decider.key.pem"), "ASSENT_SIGNING_KEY_ID=demo-2026-01",
			"ASSENT_SERVICE_KEYS_FILE=" + filepath.Join(b.o.root, "infra/keys/service-keys.json"),
		}, nil
	}},
	// The generated policy names no channel: the gateway posts nothing.
	"slack-gateway": {bin: "slack-gateway", role: logadmin.RoleSlackGateway, env: func(b *bench, _ *proc) ([]string, error) {
		if b.slack == nil {
			b.slack = slackfake.Start(nil, nil)
		}
		return []string{
			"ASSENT_SLACK_GROUP=" + logadmin.SlackGatewayGroupPrefix + "-rebuild-bench-" + b.stamp,
			"ASSENT_SLACK_API_URL=" + b.slack.URL(), "ASSENT_SLACK_BOT_TOKEN=" + slackfake.Token,
			"ASSENT_SLACK_SIGNING_SECRET=rebuild-bench-signing-secret", "ASSENT_SLACK_RATE_SCALE=1000",
			"ASSENT_COMMAND_KEY_FILE=" + filepath.Join(b.o.root, "infra/keys/demo-slack-gateway.key.pem"),
			"ASSENT_COMMAND_KEY_ID=demo-slack-gateway-2026-01",
		}, nil
	}},
	// The generated policy has no notify targets: it delivers nothing.
	"notifier": {bin: "notifier", role: logadmin.RoleNotifier, env: func(b *bench, _ *proc) ([]string, error) {
		return []string{
			"ASSENT_NOTIFIER_GROUP=" + logadmin.NotifierGroupPrefix + "-rebuild-bench-" + b.stamp,
			"ASSENT_NOTIFIER_SECRETS_FILE=" + filepath.Join(b.o.root, "infra/notifier/demo-secrets.yaml"),
			"ASSENT_COMMAND_KEY_FILE=" + filepath.Join(b.o.root, "infra/keys/demo-notifier.key.pem"),
			"ASSENT_COMMAND_KEY_ID=demo-notifier-2026-01",
		}, nil
	}},
	"auditor": {bin: "auditor", args: []string{"serve"}, role: logadmin.RoleAuditor, env: func(*bench, *proc) ([]string, error) {
		return nil, nil
	}},
	"console": {bin: "console", role: logadmin.RoleConsole, env: func(b *bench, p *proc) ([]string, error) {
		secretFile, keyFile := filepath.Join(b.dir, "oidc-secret"), filepath.Join(b.dir, "session-keys")
		if b.oidc == nil {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			var rnd [16]byte
			_, _ = rand.Read(rnd[:])
			secret := hex.EncodeToString(rnd[:])
			if b.oidc, err = fakeoidc.Start(ln, "assent-console", secret, fakeoidc.DemoUsers()); err != nil {
				return nil, err
			}
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
				return nil, err
			}
			if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
				return nil, err
			}
		}
		return []string{
			"ASSENT_CONSOLE_PUBLIC_URL=" + p.base, "ASSENT_OIDC_ISSUER=" + b.oidc.Issuer(), "ASSENT_OIDC_CLIENT_ID=assent-console",
			"ASSENT_OIDC_CLIENT_SECRET_FILE=" + secretFile, "ASSENT_CONSOLE_SESSION_KEY_FILE=" + keyFile,
			"ASSENT_POLICY_FILE=" + filepath.Join(b.o.root, "infra/policies/example.yaml"),
			"ASSENT_COMMAND_KEY_FILE=" + filepath.Join(b.o.root, "infra/keys/demo-console.key.pem"),
			"ASSENT_COMMAND_KEY_ID=demo-console-2026-01",
		}, nil
	}},
}

// parseServices reads --services.
func parseServices(list string) ([]string, error) {
	var out []string
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := services[name]; !ok {
			return nil, fmt.Errorf("--services: unknown service %q; the services are %s", name, strings.Join(serviceOrder, ","))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	// Measured in serviceOrder, whatever the order given.
	slices.SortFunc(out, func(a, c string) int { return slices.Index(serviceOrder, a) - slices.Index(serviceOrder, c) })
	return out, nil
}

// credentials are the Kafka settings of role's own principal,
// assent-<role>, whose password file scripts/kafka keeps beside the
// admin's; without one (a cluster without per-service users) the
// service runs with the bench's own credentials.
func (b *bench) credentials(role logadmin.Role) []string {
	if b.o.kafka.SCRAM == nil {
		return nil
	}
	user := "assent-" + string(role)
	file := filepath.Join(filepath.Dir(b.o.kafka.SCRAM.PasswordFile), user+".password")
	if _, err := os.Stat(file); err != nil {
		return nil
	}
	return []string{eventlog.EnvUser + "=" + user, eventlog.EnvPasswordFile + "=" + file}
}

// grant gives each measured service's principal its role's ACLs on the
// scratch topics (logadmin.Grants: what provisioning grants on the real
// ones); revoke takes them back.
func (b *bench) grant(ctx context.Context) error {
	if b.o.kafka.SCRAM == nil {
		return nil
	}
	for _, svc := range b.o.services {
		role := services[svc].role
		if b.credentials(role) == nil {
			continue
		}
		if err := logadmin.GrantACLs(ctx, b.adm, "User:assent-"+string(role), role, b.spec); err != nil {
			return err
		}
		b.granted = true
	}
	return nil
}

func (b *bench) revoke(ctx context.Context) {
	if !b.granted {
		return
	}
	filter := kadm.NewACLs().Topics(b.spec.Events, b.spec.Commands).ResourcePatternType(kadm.ACLPatternLiteral).
		Allow().AllowHosts().Operations(kadm.OpAny)
	res, err := b.adm.DeleteACLs(ctx, filter)
	if err == nil {
		for _, r := range res {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		b.say("deleting the ACLs of %s: %v", b.spec.Events, err)
	}
}

// deleteGroups deletes the consumer groups the services joined.
func (b *bench) deleteGroups(ctx context.Context) {
	groups := []string{
		logadmin.DeciderGroupPrefix + "-rebuild-bench-" + b.stamp,
		logadmin.SlackGatewayGroupPrefix + "-rebuild-bench-" + b.stamp,
		logadmin.NotifierGroupPrefix + "-rebuild-bench-" + b.stamp,
	}
	res, err := b.adm.DeleteGroups(ctx, groups...)
	if err != nil {
		b.say("deleting the consumer groups: %v", err)
		return
	}
	for _, r := range res {
		if r.Err != nil && !strings.Contains(r.Err.Error(), "GROUP_ID_NOT_FOUND") {
			b.say("deleting group %s: %v", r.Group, r.Err)
		}
	}
}
