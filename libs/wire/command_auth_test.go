package wire_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/wire"
)

func seededSigner(t *testing.T, id string, seed byte) *wire.Signer {
	t.Helper()
	s, err := wire.NewSigner(id, ed25519.NewKeyFromSeed(bytes32(seed)))
	require.NoError(t, err)
	return s
}

func bytes32(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// serviceKeys publishes the api (on_behalf) and billing (no role) keys,
// billing's retired at the end of 2026-06.
func serviceKeys(t *testing.T, api, billing *wire.Signer) *wire.ServiceKeyRing {
	t.Helper()
	raw := fmt.Sprintf(`{"format": "assent-service-keys-v1", "keys": [
	  {"key_id": %q, "algorithm": "ed25519", "public_key": %q, "principal": "service:api", "roles": ["on_behalf"]},
	  {"key_id": %q, "algorithm": "ed25519", "public_key": %q, "principal": "service:billing",
	   "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-07-01T00:00:00Z"}
	]}`, api.KeyID(), base64.StdEncoding.EncodeToString(api.Public()),
		billing.KeyID(), base64.StdEncoding.EncodeToString(billing.Public()))
	ring, err := wire.ParseServiceKeyRing([]byte(raw))
	require.NoError(t, err)
	return ring
}

func voteEnvelope(actor string, at time.Time) wire.Envelope {
	return wire.Envelope{
		ID: "0190a0b0-0000-7000-8000-000000000001", Source: "assent/test", Type: "dev.assent.command.vote",
		Subject: "r1", Time: at, Actor: actor, CommandID: "c1",
		Data: []byte(`{ "decision" : "approve" }`),
	}
}

// roundTrip is what the decider reads: the record as written.
func roundTrip(t *testing.T, env wire.Envelope) wire.Envelope {
	t.Helper()
	b, err := wire.Marshal(env)
	require.NoError(t, err)
	out, err := wire.Unmarshal(b)
	require.NoError(t, err)
	return out
}

func TestCommandSignatures(t *testing.T) {
	api, billing := seededSigner(t, "api-1", 1), seededSigner(t, "billing-1", 2)
	decider, stranger := seededSigner(t, "decider-1", 3), seededSigner(t, "stranger-1", 4)
	keys := wire.CommandKeys{
		Services: serviceKeys(t, api, billing),
		Deciders: wire.NewKeyRing(map[string]ed25519.PublicKey{decider.KeyID(): decider.Public()}),
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	sign := func(s *wire.Signer, env wire.Envelope) wire.Envelope {
		signed, err := wire.SignCommand(s, env)
		require.NoError(t, err)
		return roundTrip(t, signed)
	}

	t.Run("a service signs as itself", func(t *testing.T) {
		got, err := keys.Verify(sign(billing, voteEnvelope("service:billing", at)))
		require.NoError(t, err)
		require.Equal(t, wire.CommandSigner{KeyID: "billing-1", Principal: "service:billing"}, got)
	})
	t.Run("on_behalf names a user", func(t *testing.T) {
		got, err := keys.Verify(sign(api, voteEnvelope("user:alice@example.com", at)))
		require.NoError(t, err)
		require.True(t, got.OnBehalf)
		require.Equal(t, "service:api", got.Principal)
	})
	t.Run("the decider's seal key signs as system:decider", func(t *testing.T) {
		got, err := keys.Verify(sign(decider, voteEnvelope("system:decider", at)))
		require.NoError(t, err)
		require.Equal(t, "system:decider", got.Principal)
	})

	refused := []struct {
		name, want string
		env        func() wire.Envelope
	}{
		{"unsigned", "not signed", func() wire.Envelope { return roundTrip(t, voteEnvelope("user:alice@example.com", at)) }},
		{"unknown key", `key id "stranger-1" is not a published`, func() wire.Envelope {
			return sign(stranger, voteEnvelope("service:billing", at))
		}},
		{"tampered data", "does not verify", func() wire.Envelope {
			env := sign(billing, voteEnvelope("service:billing", at))
			env.Data = []byte(`{"decision":"reject"}`)
			return env
		}},
		{"tampered actor", "does not verify", func() wire.Envelope {
			env := sign(api, voteEnvelope("user:bob@example.com", at))
			env.Actor = "user:alice@example.com"
			return env
		}},
		{"tampered command id", "does not verify", func() wire.Envelope {
			env := sign(billing, voteEnvelope("service:billing", at))
			env.CommandID = "c2"
			return env
		}},
		{"tampered time", "does not verify", func() wire.Envelope {
			env := sign(billing, voteEnvelope("service:billing", at))
			env.Time = env.Time.Add(time.Nanosecond)
			return env
		}},
		{"signature of another key under this key's id", "does not verify", func() wire.Envelope {
			env := sign(stranger, voteEnvelope("service:billing", at))
			env.AuthKeyID = "billing-1"
			return env
		}},
		{"signature not base64", "not 64 bytes", func() wire.Envelope {
			env := sign(billing, voteEnvelope("service:billing", at))
			env.AuthSig = "!!"
			return env
		}},
		{"key expired at the command's time", "retired", func() wire.Envelope {
			return sign(billing, voteEnvelope("service:billing", time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC)))
		}},
		{"key not yet valid at the command's time", "valid from", func() wire.Envelope {
			return sign(billing, voteEnvelope("service:billing", time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)))
		}},
		{"a key without on_behalf names another actor", "may not act as \"user:alice@example.com\": it has no on_behalf role", func() wire.Envelope {
			return sign(billing, voteEnvelope("user:alice@example.com", at))
		}},
		{"on_behalf names a system principal", "no service key may speak as a system principal", func() wire.Envelope {
			return sign(api, voteEnvelope("system:decider", at))
		}},
		{"the decider's key names a user", "speaks as system:decider", func() wire.Envelope {
			return sign(decider, voteEnvelope("user:alice@example.com", at))
		}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keys.Verify(tc.env())
			require.ErrorIs(t, err, wire.ErrCommandAuth)
			require.ErrorContains(t, err, tc.want)
		})
	}

	t.Run("a key id in both rings is ambiguous", func(t *testing.T) {
		both := wire.CommandKeys{Services: keys.Services, Deciders: wire.NewKeyRing(map[string]ed25519.PublicKey{"billing-1": decider.Public()})}
		_, err := both.Verify(sign(billing, voteEnvelope("service:billing", at)))
		require.ErrorContains(t, err, "both a service key and a decider key")
	})
	t.Run("no keys at all", func(t *testing.T) {
		_, err := wire.CommandKeys{}.Verify(sign(billing, voteEnvelope("service:billing", at)))
		require.ErrorIs(t, err, wire.ErrCommandAuth)
	})
	t.Run("no signer", func(t *testing.T) {
		_, err := wire.SignCommand(nil, voteEnvelope("service:billing", at))
		require.ErrorContains(t, err, "ASSENT_COMMAND_KEY_FILE")
	})
}

// TestCommandMessage pins the canonical string of schemas/README.md, so
// that a signer in another language can check itself against it.
func TestCommandMessage(t *testing.T) {
	env := voteEnvelope("user:alice@example.com", time.Date(2026, 3, 1, 12, 0, 0, 500000000, time.UTC))
	env.Data = []byte(`{"decision":"approve"}`)
	want := strings.Join([]string{
		"assent-command-v1",
		"0190a0b0-0000-7000-8000-000000000001",
		"dev.assent.command.vote",
		"assent/test",
		"r1",
		"user:alice@example.com",
		"c1",
		"2026-03-01T12:00:00.5Z",
		"2ddd116c830744f5435c7391895c584921c7e83c19313ba43a30582a5e94e4ea",
	}, "\n")
	require.Equal(t, want, string(wire.CommandMessage(env)))
}

func TestParseServiceKeyRing(t *testing.T) {
	pub := base64.StdEncoding.EncodeToString(seededSigner(t, "k", 9).Public())
	entry := func(extra string) string {
		return `{"format": "assent-service-keys-v1", "keys": [{"key_id": "k1", "algorithm": "ed25519", "public_key": "` + pub + `"` + extra + `}]}`
	}
	for name, tc := range map[string]struct{ raw, want string }{
		"no principal":      {entry(``), "is not a user: or service: principal"},
		"system principal":  {entry(`, "principal": "system:decider"`), "is not a user: or service: principal"},
		"unknown role":      {entry(`, "principal": "service:x", "roles": ["admin"]`), `unknown role "admin"`},
		"unknown field":     {entry(`, "principal": "service:x", "role": "on_behalf"`), "unknown field"},
		"seal keys format":  {`{"format": "assent-checkpoint-keys-v1", "keys": []}`, "want \"assent-service-keys-v1\""},
		"short public key":  {strings.Replace(entry(`, "principal": "service:x"`), pub, "AAAA", 1), "not 32 bytes"},
		"duplicate key ids": {strings.Replace(entry(`, "principal": "service:x"`), "}]}", `}, {"key_id": "k1", "algorithm": "ed25519", "public_key": "`+pub+`", "principal": "service:y"}]}`, 1), "appears twice"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := wire.ParseServiceKeyRing([]byte(tc.raw))
			require.ErrorContains(t, err, tc.want)
		})
	}
	ring, err := wire.ParseServiceKeyRing([]byte(entry(`, "principal": "service:x", "roles": ["on_behalf"]`)))
	require.NoError(t, err)
	require.Equal(t, 1, ring.Len())
}

// BenchmarkCommandSignatures measures what a signature costs the sender
// (SignCommand) and the decider (Verify), per command.
func BenchmarkCommandSignatures(b *testing.B) {
	key, err := wire.NewSigner("api-1", ed25519.NewKeyFromSeed(bytes32(1)))
	if err != nil {
		b.Fatal(err)
	}
	raw := fmt.Sprintf(`{"format": "assent-service-keys-v1", "keys": [{"key_id": "api-1", "algorithm": "ed25519", "public_key": %q, "principal": "service:api", "roles": ["on_behalf"]}]}`,
		base64.StdEncoding.EncodeToString(key.Public()))
	ring, err := wire.ParseServiceKeyRing([]byte(raw))
	if err != nil {
		b.Fatal(err)
	}
	keys := wire.CommandKeys{Services: ring}
	env := voteEnvelope("user:alice@example.com", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	signed, err := wire.SignCommand(key, env)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := wire.SignCommand(key, env); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := keys.Verify(signed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
