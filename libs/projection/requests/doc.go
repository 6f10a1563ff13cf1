// Package requests is the request projection: the state of every request,
// its event history, the list indexes and the expiry timers, folded from
// the events topic into Pebble by a projection.Runner.
//
// # Keys
//
//	r/<request id>                        the request's approval.State (JSON)
//	h/<request id, escaped><sequence, 8 bytes><partition, 4 bytes><offset, 8 bytes>
//	                                      one event: the record value, byte for byte
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
// Index keys sort by creation time, so a list walks them newest first.
// Every key a state implies is recomputed from the old and the new state,
// so an index never disagrees with the state it came from.
package requests
