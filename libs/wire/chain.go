package wire

// Chain writes the hash chain of one events partition: every record it
// marshals links to the one before (prevhash), and its head moves on. The
// decider, the log generator and the api's test fake all write chains
// through it, so they cannot disagree on how a link is made.
type Chain struct {
	// Head is the hash of the last record written, GenesisHash before the
	// first.
	Head string
}

// NewChain starts writing after head (GenesisHash if empty).
func NewChain(head string) *Chain {
	if head == "" {
		head = GenesisHash
	}
	return &Chain{Head: head}
}

// Next links env to the head (sets its prevhash), marshals it and moves
// the head to the new record. The head does not move if marshalling fails.
func (c *Chain) Next(env Envelope) ([]byte, error) {
	env.PrevHash = c.Head
	value, err := Marshal(env)
	if err != nil {
		return nil, err
	}
	c.Head = Hash(value)
	return value, nil
}
