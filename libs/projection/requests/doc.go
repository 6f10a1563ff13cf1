// Package requests is the request projection: the state of every request,
// its event history, the list indexes and the expiry timers, folded from
// the events topic into Pebble by a projection.Runner.
//
// # Keys
//
//	r/<request id>                        the request's approval.State: 0x01, the
//	                                      SHA-256 of its policy's approver list,
//	                                      then the state (JSON) without that list
//	                                      and without its refusals
//	a/<SHA-256, 32 bytes>                 an approver list (JSON), once for every
//	                                      request that names it (approvers.go)
//	f/<request id, escaped><n, 8 bytes>   the request's n-th refusal (n from 1):
//	                                      command id, code and detail (JSON)
//	o/<request id, escaped><command id>   n of that command's latest refusal
//	h/<request id, escaped><sequence, 8 bytes><partition, 4 bytes><offset, 8 bytes>
//	                                      one event, no value: the record itself,
//	                                      byte for byte, is the one the runner
//	                                      keeps at its partition and offset
//	                                      (projection.RecordKeeper)
//	t/<partition, 4 bytes>/<expires_at, 8 bytes>/<request id>
//	                                      a pending request's expiry timer
//	i/<index>/<term, escaped><created_at, 8 bytes><request id>
//	                                      list indexes: all, status, requester,
//	                                      and approver (pending requests a
//	                                      principal may still vote on)
//
// An escaped string has each 0x00 written as 0x00 0xff and ends with 0x00
// 0x01, so that no request id or term is a prefix of another: the log
// carries command.rejected events for request ids the decider refused,
// slashes and NULs included. Numbers are big-endian, so keys sort by them.
//
// Refusals are kept apart from the state so that folding one event reads
// and writes the same few keys however many refusals the request had: Get
// reads back the latest approval.MaxRefusedOutcomes of them (what the
// whole state holds), and Refusal finds any of them by command id. The
// layout is "requests/5" (Store.Version); a store written with an earlier
// one is rebuilt from the events topic, which keeps every event forever.
//
// Index keys sort by creation time, so a list walks them newest first.
// Every key a state implies is recomputed from the old and the new state,
// so an index never disagrees with the state it came from.
package requests
