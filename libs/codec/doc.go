// Package codec maps the domain's commands and events (package approval)
// to wire envelopes and back: the one place that knows both what a command
// means and how it is written down. The domain stays free of the wire
// format, and the wire format free of the domain.
package codec
