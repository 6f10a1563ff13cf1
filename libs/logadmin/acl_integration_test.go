package logadmin_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/test/kafkatest"
)

// aclRig holds a test spec's topics and a user per role, each granted only
// its role's ACLs on those topics (as assent-kafka provision grants them).
type aclRig struct {
	t     *testing.T
	spec  eventlog.TopicSpec
	users map[logadmin.Role]eventlog.Config
	tag   string
}

func newACLRig(t *testing.T) *aclRig {
	t.Helper()
	admin := kafkatest.Config(t, "acl-admin")
	if admin.SCRAM == nil {
		t.Fatal("the test cluster must authenticate clients: run it with scripts/kafka up (ASSENT_KAFKA_USER is not set)")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &aclRig{t: t, spec: kafkatest.NewTopics(t, 3), users: map[logadmin.Role]eventlog.Config{}, tag: hex.EncodeToString(b[:])}
	adm := kafkatest.NewAdmin(t)
	dir := t.TempDir()
	for _, role := range logadmin.Roles() {
		user := "test-" + r.tag + "-" + string(role)
		password := hex.EncodeToString(b[:]) + "-" + string(role) + "-secret"
		file := filepath.Join(dir, user+".password")
		require.NoError(t, os.WriteFile(file, []byte(password), 0o600))
		require.NoError(t, logadmin.UpsertUser(t.Context(), adm, user, password))
		require.NoError(t, logadmin.GrantACLs(t.Context(), adm, "User:"+user, role, r.spec))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:"+user).AnyResource().Operations(kadm.OpAny).
				ResourcePatternType(kadm.ACLPatternAny).AllowHosts())
			_, _ = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: user, Mechanism: kadm.ScramSha512}}, nil)
		})
		r.users[role] = eventlog.Config{Brokers: admin.Brokers, ClientID: user, SCRAM: &eventlog.SCRAM{User: user, PasswordFile: file}}
	}
	// A new SCRAM credential reaches every broker through the metadata
	// log, a moment after the controller accepts it.
	require.Eventually(t, func() bool {
		for _, cfg := range r.users {
			if err := ping(t, cfg); err != nil {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "every user can authenticate on every broker")
	return r
}

func ping(t *testing.T, cfg eventlog.Config) error {
	cl, err := eventlog.NewClient(cfg)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// produce writes one record to topic as the role, in a transaction when
// txnID is set, and returns the broker's answer.
func (r *aclRig) produce(role logadmin.Role, topic, txnID string) error {
	r.t.Helper()
	var opts []kgo.Opt
	if txnID != "" {
		opts = append(opts, kgo.TransactionalID(txnID))
	}
	cl, err := eventlog.NewClient(r.users[role], opts...)
	require.NoError(r.t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(r.t.Context(), 15*time.Second)
	defer cancel()
	if txnID != "" {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
	}
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("v")}).FirstErr()
	if txnID != "" {
		commit := kgo.TryCommit
		if err != nil {
			commit = kgo.TryAbort
		}
		if endErr := cl.EndTransaction(ctx, commit); err == nil {
			err = endErr
		}
	}
	return err
}

// consume fetches topic from the start as the role, in group when set,
// and returns the first error a fetch or the group join reports, or nil
// once a record arrived.
func (r *aclRig) consume(role logadmin.Role, topic, group string) error {
	r.t.Helper()
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if group != "" {
		opts = append(opts, kgo.ConsumerGroup(group))
	}
	cl, err := eventlog.NewClient(r.users[role], opts...)
	require.NoError(r.t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(r.t.Context(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if fs.NumRecords() > 0 {
			return nil
		}
	}
	return ctx.Err()
}

// TestIntegrationACLs checks on the real cluster that every client
// authenticates, that each role may do its job with only its ACLs, and
// that it is refused what it must not do, with the errors Kafka names.
func TestIntegrationACLs(t *testing.T) {
	t.Parallel()
	r := newACLRig(t)
	cmds, evts := r.spec.Commands, r.spec.Events

	t.Run("anonymous and wrong password are refused", func(t *testing.T) {
		anon := kafkatest.Config(t, "anonymous")
		anon.SCRAM = nil
		require.Error(t, ping(t, anon), "a client without credentials cannot even read metadata")
		wrong := r.users[logadmin.RoleAPI]
		bad := filepath.Join(t.TempDir(), "wrong")
		require.NoError(t, os.WriteFile(bad, []byte("not-the-password"), 0o600))
		wrong.SCRAM = &eventlog.SCRAM{User: wrong.SCRAM.User, PasswordFile: bad}
		err := ping(t, wrong)
		require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
	})

	// Each role's job, with its ACLs only. The decider's transactional
	// id and group start with its prefixes, as the decider's do.
	require.NoError(t, r.produce(logadmin.RoleDecider, evts, logadmin.DeciderTxnPrefix+"test-"+r.tag), "the decider writes events in a transaction")
	require.NoError(t, r.produce(logadmin.RoleDecider, cmds, ""), "the decider sends its timers as commands")
	require.NoError(t, r.consume(logadmin.RoleDecider, cmds, logadmin.DeciderGroupPrefix+"-test-"+r.tag), "the decider reads commands in its group")
	for _, role := range []logadmin.Role{logadmin.RoleAPI, logadmin.RoleConsole, logadmin.RoleSlackGateway, logadmin.RoleNotifier} {
		require.NoError(t, r.produce(role, cmds, ""), "%s writes commands", role)
		require.NoError(t, r.consume(role, evts, ""), "%s reads events", role)
	}
	require.NoError(t, r.consume(logadmin.RoleSlackGateway, evts, logadmin.SlackGatewayGroupPrefix+"-test-"+r.tag), "the gateway reads events in its group")
	require.NoError(t, r.consume(logadmin.RoleNotifier, evts, logadmin.NotifierGroupPrefix+"-test-"+r.tag), "the notifier reads events in its group")
	require.NoError(t, r.consume(logadmin.RoleAuditor, evts, ""), "the auditor reads events")
	for _, role := range logadmin.Roles() {
		if role == logadmin.RoleKafkaHealth {
			continue
		}
		cfg := r.users[role]
		cl, err := logadmin.Connect(t.Context(), cfg, r.spec)
		if role == logadmin.RoleAuditor {
			// The auditor reads only the events topic; the start check
			// describes both, so it sees the commands topic as missing.
			require.Error(t, err)
			continue
		}
		require.NoError(t, err, "%s passes the start check (describe topics and configs)", role)
		cl.Close()
	}
	health, err := eventlog.NewClient(r.users[logadmin.RoleKafkaHealth])
	require.NoError(t, err)
	defer health.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	md, err := kadm.NewClient(health).Metadata(ctx, cmds, evts)
	require.NoError(t, err)
	require.NoError(t, md.Topics[cmds].Err, "the health exporter describes the topics")
	require.NoError(t, md.Topics[evts].Err)

	// What each must not do.
	denied := []struct {
		name string
		err  error
		want error
	}{
		{"the api writes events", r.produce(logadmin.RoleAPI, evts, ""), kerr.TopicAuthorizationFailed},
		{"the console writes events", r.produce(logadmin.RoleConsole, evts, ""), kerr.TopicAuthorizationFailed},
		{"the gateway writes events", r.produce(logadmin.RoleSlackGateway, evts, ""), kerr.TopicAuthorizationFailed},
		{"the notifier writes events", r.produce(logadmin.RoleNotifier, evts, ""), kerr.TopicAuthorizationFailed},
		// A principal that may write no topic at all is also refused an
		// idempotent producer id (InitProducerId needs Write on some
		// topic): whichever refusal comes first is the answer.
		{"the auditor writes commands", r.produce(logadmin.RoleAuditor, cmds, ""), errNoWrite},
		{"the auditor writes events", r.produce(logadmin.RoleAuditor, evts, ""), errNoWrite},
		{"the health exporter writes commands", r.produce(logadmin.RoleKafkaHealth, cmds, ""), errNoWrite},
		{"the health exporter reads events", r.consume(logadmin.RoleKafkaHealth, evts, ""), kerr.TopicAuthorizationFailed},
		{"the auditor reads commands", r.consume(logadmin.RoleAuditor, cmds, ""), kerr.TopicAuthorizationFailed},
		{"the api opens a transaction as a decider", r.produce(logadmin.RoleAPI, cmds, logadmin.DeciderTxnPrefix+"api-"+r.tag), kerr.TransactionalIDAuthorizationFailed},
		{"the decider uses a transactional id outside its prefix", r.produce(logadmin.RoleDecider, evts, "other-"+r.tag), kerr.TransactionalIDAuthorizationFailed},
		{"the api joins the deciders' group", r.consume(logadmin.RoleAPI, evts, logadmin.DeciderGroupPrefix+"-test-"+r.tag), kerr.GroupAuthorizationFailed},
		{"the gateway joins a group outside its prefix", r.consume(logadmin.RoleSlackGateway, evts, "other-"+r.tag), kerr.GroupAuthorizationFailed},
	}
	for _, d := range denied {
		if errors.Is(d.want, errNoWrite) {
			require.True(t, errors.Is(d.err, kerr.TopicAuthorizationFailed) || errors.Is(d.err, kerr.ClusterAuthorizationFailed),
				"%s: got %v", d.name, d.err)
			continue
		}
		require.ErrorIs(t, d.err, d.want, d.name)
	}
}

// errNoWrite stands for TOPIC_ or CLUSTER_AUTHORIZATION_FAILED.
var errNoWrite = errors.New("topic or cluster authorization failed")
