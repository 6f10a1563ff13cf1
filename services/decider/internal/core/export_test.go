package core

import "github.com/assent-dev/assent/libs/approval"

// Load exposes the transaction's view of a request's state to the tests.
func Load(c *Core, t *Txn, rid string) (approval.State, error) { return c.load(t, rid) }
