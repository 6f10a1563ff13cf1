// Command slack-gateway lets approvers decide in Slack. See README.md.
package main

func main() {}
