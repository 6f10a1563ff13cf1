// Package command is the client side of a command: it names a command
// (derives its id, so a retry is the same command), checks it with the
// domain's own validation before anything is sent, produces it, and waits
// for its outcome in a projection. The api, the Slack gateway, the SDK's
// Kafka transport and the fault suite's workload all write commands
// through it, so that none of them can drift from the others.
package command
