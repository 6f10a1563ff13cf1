// Package chaos is Assent's fault-injection suite: a workload generator, a
// nemesis and a checker, in the spirit of Jepsen.
package chaos
