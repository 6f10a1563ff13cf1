package command

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
)

// The CloudEvents sources of the clients that write commands.
const (
	SourceAPI          = "assent/api"
	SourceSlackGateway = "assent/slack-gateway"
	SourceKafkaSDK     = "assent/sdk"
	SourceDecider      = "assent/decider"
)

// A command id derived from what identifies an intention makes a retry the
// same command, so the decider decides it once (I2, see
// docs/architecture.md#i2-exactly-once-decisions). Each client names its
// intentions differently; every derivation lives here.

// APIRequestID names the request of an api submit that carries an
// Idempotency-Key but no request_id, so a retry names the same request.
func APIRequestID(caller, key string) string {
	return wire.DerivedID("assent/api request v1", caller, key)
}

// APICommandID names an api write that carries an Idempotency-Key: the
// same caller, actor, command type, request and key are the same command.
func APICommandID(caller, actor, commandType, rid, key string) string {
	return wire.DerivedID("assent/api command v1", caller, actor, commandType, rid, key)
}

// SlackVoteID names the vote of one Slack user on one request, so a double
// click, on any gateway replica, is one command.
func SlackVoteID(rid, team, user string, d approval.VoteDecision) string {
	return wire.DerivedID(SourceSlackGateway, "vote", rid, team, user, string(d))
}

// NotificationID names the record of one posted message: the same message
// recorded twice (by two replicas) is one command.
func NotificationID(source, rid, channel, ts string) string {
	return wire.DerivedID(source, "record-notification", rid, channel, ts)
}

// SDKCommandID names a command of the SDK's Kafka transport after
// everything that identifies the intention (kind is submit, vote or
// cancel). It is not a UUID, so the envelope gets its own UUIDv7 id and the
// command id travels in the commandid extension.
func SDKCommandID(kind string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte("assent/sdk " + kind + " v1"))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return "sdk-" + kind + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// ExpireID names the decider's expiry of a request: one per request.
func ExpireID(rid string) string { return "expire:" + rid }
