// Package requests is the request projection: the state of every request,
// its event history, the list indexes and the expiry timers, folded from
// the events topic into Pebble by a projection.Runner.
//
// # Keys
//
//	r/<request id>                        the request's approval.State (JSON)
//	h/<request id>/<sequence, 10 digits>  one event as stored: partition, offset, value
//	t/<partition, 4 bytes>/<expires_at, 8 bytes>/<request id>
//	                                      a pending request's expiry timer
//	i/<index>/<term>\x00<created_at, 8 bytes><request id>
//	                                      list indexes: all, status, requester,
//	                                      and approver (pending requests a
//	                                      principal may still vote on)
//
// Index keys sort by creation time, so a list walks them newest first.
// Every key a state implies is recomputed from the old and the new state,
// so an index never disagrees with the state it came from.
package requests
