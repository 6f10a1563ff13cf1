package projection

import (
	"fmt"

	"github.com/assent-dev/assent/libs/wire"
)

// EnvKeysFile names the published decider public keys every reader
// authenticates the log with.
const EnvKeysFile = "ASSENT_SEAL_KEYS_FILE"

// DefaultKeysFile is where the repository publishes them.
const DefaultKeysFile = "infra/keys/decider-keys.json"

// LoadKeys reads the published decider public keys named by
// ASSENT_SEAL_KEYS_FILE (default infra/keys/decider-keys.json). A reader
// without them could authenticate nothing, so an error says how to fix it.
func LoadKeys(getenv func(string) string) (*wire.KeyRing, error) {
	path := getenv(EnvKeysFile)
	if path == "" {
		path = DefaultKeysFile
	}
	keys, err := wire.LoadKeyRing(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (the published decider public keys: every reader applies only what they sign)", EnvKeysFile, err)
	}
	if keys.Len() == 0 {
		return nil, fmt.Errorf("%s: %s holds no key: nothing could be authenticated", EnvKeysFile, path)
	}
	return keys, nil
}
