package command

import (
	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
)

// The CloudEvents sources of the clients that write commands.
const (
	SourceAPI          = "assent/api"
	SourceSlackGateway = "assent/slack-gateway"
	SourceKafkaSDK     = "assent/sdk-kafka"
)

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
