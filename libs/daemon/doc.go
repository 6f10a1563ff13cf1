// Package daemon is the plumbing every Assent binary shares: reading
// ASSENT_* settings with clear errors, JSON logs, the /healthz, /readyz and
// /metrics endpoints, and serving HTTP until the context ends.
//
// # Why a package
//
// Each service's main.go only wires things together (see docs/package-layout.md). The
// parts that would otherwise be copied into every run function live here,
// so that all services answer probes, log and shut down the same way.
package daemon
