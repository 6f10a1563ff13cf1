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
// the demo key, and every reader to authenticate with it.
func DeciderKeyEnv() []string {
	return []string{"ASSENT_SIGNING_KEY_FILE=" + DemoKeyFile(), "ASSENT_SIGNING_KEY_ID=" + DemoKeyID, "ASSENT_SEAL_KEYS_FILE=" + DemoKeysFile()}
}
