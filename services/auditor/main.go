// Command auditor replays, verifies, exports and queries the Assent event
// log. See README.md.
package main

func main() {}
