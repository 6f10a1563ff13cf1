package systest

import (
	"path/filepath"

	"github.com/assent-dev/assent/test/tb"

	"github.com/assent-dev/assent/libs/wire"
)

// DemoKeyID names the demo decider key (infra/keys): for tests and the
// local demo only.
const DemoKeyID = "demo-2026-01"

// DemoKeyFile and DemoKeysFile are the demo decider private key and the
// published public keys file that holds its public half.
func DemoKeyFile() string  { return filepath.Join(RepoRoot(), "infra", "keys", "demo-decider.key.pem") }
func DemoKeysFile() string { return filepath.Join(RepoRoot(), "infra", "keys", "decider-keys.json") }

// DemoSigner is the demo decider key, which tests seal with as a decider.
func DemoSigner(t tb.TB) *wire.Signer {
	t.Helper()
	s, err := wire.LoadSigner(DemoKeyID, DemoKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// DemoKeys are the published keys with the demo key in them.
func DemoKeys(t tb.TB) *wire.KeyRing {
	t.Helper()
	k, err := wire.LoadKeyRing(DemoKeysFile())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// DeciderKeyEnv is the environment a decider process needs to seal with
// the demo key (which also signs its timers' commands), to verify
// commands with the demo service keys, and every reader to authenticate
// with it.
func DeciderKeyEnv() []string {
	return []string{"ASSENT_SIGNING_KEY_FILE=" + DemoKeyFile(), "ASSENT_SIGNING_KEY_ID=" + DemoKeyID, "ASSENT_SEAL_KEYS_FILE=" + DemoKeysFile(),
		"ASSENT_SERVICE_KEYS_FILE=" + DemoServiceKeysFile()}
}

// The demo service keys (infra/keys/service-keys.json) that sign
// commands: one per service principal that produces commands. The api,
// the Slack gateway and the console have the on_behalf role; the
// notifier and billing (a backend using the SDK's Kafka transport) speak
// only as themselves.
const (
	ServiceAPI          = "api"
	ServiceSlackGateway = "slack-gateway"
	ServiceConsole      = "console"
	ServiceNotifier     = "notifier"
	ServiceBilling      = "billing"
)

// DemoServiceKeysFile is the published service keys file.
func DemoServiceKeysFile() string {
	return filepath.Join(RepoRoot(), "infra", "keys", "service-keys.json")
}

// DemoCommandKeyID and DemoCommandKeyFile name the demo command key of a
// service (ServiceAPI, ...).
func DemoCommandKeyID(service string) string { return "demo-" + service + "-2026-01" }
func DemoCommandKeyFile(service string) string {
	return filepath.Join(RepoRoot(), "infra", "keys", "demo-"+service+".key.pem")
}

// DemoCommandSigner is the demo command key of a service: what a test
// that produces commands straight to Kafka signs them with.
func DemoCommandSigner(t tb.TB, service string) *wire.Signer {
	t.Helper()
	s, err := wire.LoadSigner(DemoCommandKeyID(service), DemoCommandKeyFile(service))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SignCommand signs a command envelope with a service's demo key, as that
// service's command.Kafka sender does.
func SignCommand(t tb.TB, service string, env wire.Envelope) wire.Envelope {
	t.Helper()
	signed, err := wire.SignCommand(DemoCommandSigner(t, service), env)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// DemoCommandKeys are what the decider verifies commands with: the
// published service keys and the demo decider keys.
func DemoCommandKeys(t tb.TB) wire.CommandKeys {
	t.Helper()
	s, err := wire.LoadServiceKeyRing(DemoServiceKeysFile())
	if err != nil {
		t.Fatal(err)
	}
	return wire.CommandKeys{Services: s, Deciders: DemoKeys(t)}
}

// CommandKeyEnv is the environment a service process needs to sign its
// commands with its demo key (ServiceAPI, ...).
func CommandKeyEnv(service string) []string {
	return []string{"ASSENT_COMMAND_KEY_FILE=" + DemoCommandKeyFile(service), "ASSENT_COMMAND_KEY_ID=" + DemoCommandKeyID(service)}
}

// CommandKeyEnvFor is CommandKeyEnv for the service a binary (or its path)
// runs: the api, the Slack gateway, the console and the notifier produce
// commands; any other binary needs no command key.
func CommandKeyEnvFor(bin string) []string {
	switch s := filepath.Base(bin); s {
	case ServiceAPI, ServiceSlackGateway, ServiceConsole, ServiceNotifier:
		return CommandKeyEnv(s)
	}
	return nil
}
