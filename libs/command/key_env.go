package command

import (
	"fmt"

	"github.com/assent-dev/assent/libs/wire"
)

// The environment every service that produces commands reads its command
// key from (docs/architecture.md, "Authenticated commands").
const (
	EnvKeyFile = "ASSENT_COMMAND_KEY_FILE"
	EnvKeyID   = "ASSENT_COMMAND_KEY_ID"
)

// LoadSigner reads the service's command key from EnvKeyFile and
// EnvKeyID. Without them it says how to make one.
func LoadSigner(getenv func(string) string) (*wire.Signer, error) {
	file, id := getenv(EnvKeyFile), getenv(EnvKeyID)
	if file == "" || id == "" {
		return nil, fmt.Errorf("%s and %s are required: the decider refuses every command that is not signed by a published service key "+
			"(make one with `auditor keygen --key-id ID --out FILE --principal service:NAME [--on-behalf]` and publish the entry it prints "+
			"in infra/keys/service-keys.json: infra/keys/README.md; the demo keys there are for scripts/up and tests only)", EnvKeyFile, EnvKeyID)
	}
	s, err := wire.LoadSigner(id, file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvKeyFile, err)
	}
	return s, nil
}
