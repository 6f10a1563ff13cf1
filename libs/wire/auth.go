package wire

import (
	"fmt"
	"time"
)

// Why a record was not authenticated.
const (
	// KindUnauthenticated: no valid seal covers the record (a forgery, a
	// copy, a replay, or a seal that is not a decider's).
	KindUnauthenticated = "unauthenticated"
	// KindInvalid: the record is not an Assent CloudEvent at all.
	KindInvalid = "invalid"
	// KindGap: a valid, newer seal does not extend the reader's head:
	// records the deciders wrote are missing from what was read (data
	// loss). The reader must stop on this partition and raise an alert.
	KindGap = "gap"
)

// MaxPending bounds the records held while waiting for their seal. A
// decider transaction writes far fewer (it polls at most a few thousand
// commands); beyond it the oldest are refused.
const MaxPending = 100_000

// Item is one record of an events partition, as read.
type Item struct {
	Record Record
	Env    Envelope // zero when the record did not decode
	Hash   string   // Hash(Record.Value)
}

// Rejection is a record the authenticator will never apply.
type Rejection struct {
	Item
	Kind   string
	Reason string
}

// Result is what one record added made known.
type Result struct {
	// Apply lists the records now authenticated, in log order: the run a
	// seal covers, then the seal itself. Its array is the
	// Authenticator's, reused by the next Add or Flush: apply (or copy)
	// the items before (every seal would allocate a run's worth of Items
	// otherwise).
	Apply []Item
	// Rejected lists the records now known never to be authenticated.
	Rejected []Rejection
	// Gap is set when a newer valid seal does not extend the head: stop
	// reading this partition (see KindGap).
	Gap *Rejection
}

// Authenticator decides, for one events partition, which records a reader
// may apply: only those that a valid seal covers (see Seal). It holds the
// records of a transaction until the seal that ends it arrives, walks back
// from the seal's head by hash to the head it already trusts, and applies
// exactly that run; any other record is rejected, at once when it cannot
// be covered any more: a record written outside a transaction (the
// deciders write only in transactions), a transaction that committed
// without a seal covering it, or a run a seal passes over.
//
// A reader that starts at the beginning of a partition starts from
// GenesisHash. One that starts in the middle and does not know the head
// there (the SDK's Kafka transport) starts in bootstrap mode (an empty
// head): it trusts the From of the first seal whose signed run it can walk
// completely, and everything after that as usual.
type Authenticator struct {
	keys      *KeyRing
	topic     string
	partition int32
	head      string
	lastSeal  time.Time
	pending   []Item
	applied   []Item // the array of the last Result.Apply
}

// NewAuthenticator starts authenticating partition of topic after head:
// GenesisHash at the start of the partition, the last authenticated hash
// when resuming, or "" to bootstrap from the first complete seal.
func NewAuthenticator(keys *KeyRing, topic string, partition int32, head string) *Authenticator {
	return &Authenticator{keys: keys, topic: topic, partition: partition, head: head}
}

// Head is the hash of the last authenticated record (a seal), "" while
// bootstrapping.
func (a *Authenticator) Head() string { return a.head }

// FirstPending is the offset of the oldest record held for its seal, or -1.
// A reader that restarts must read again from there.
func (a *Authenticator) FirstPending() int64 {
	if len(a.pending) == 0 {
		return -1
	}
	return a.pending[0].Record.Offset
}

// Add takes the next record of the partition, in offset order. decodeErr
// is the error of decoding it (DecodeRecord), if any.
func (a *Authenticator) Add(it Item, decodeErr error) Result {
	var res Result
	switch {
	case it.Record.Control:
		// A transaction ended: whatever it wrote that no seal covered
		// never will be.
		kept := a.pending[:0]
		for _, p := range a.pending {
			if p.Record.ProducerID == it.Record.ProducerID {
				res.Rejected = append(res.Rejected, Rejection{Item: p, Kind: KindUnauthenticated,
					Reason: fmt.Sprintf("its transaction ended at offset %d without a seal covering it", it.Record.Offset)})
				continue
			}
			kept = append(kept, p)
		}
		a.pending = kept
		return res
	case decodeErr != nil:
		res.Rejected = append(res.Rejected, Rejection{Item: it, Kind: KindInvalid, Reason: decodeErr.Error()})
		return res
	case !it.Record.Transactional:
		res.Rejected = append(res.Rejected, Rejection{Item: it, Kind: KindUnauthenticated,
			Reason: "written outside a Kafka transaction: only the deciders write events, and only in transactions"})
		return res
	case it.Env.Type == TypeSeal:
		return a.seal(it)
	}
	a.pending = append(a.pending, it)
	if len(a.pending) > MaxPending {
		old := a.pending[0]
		a.pending = a.pending[1:]
		res.Rejected = append(res.Rejected, Rejection{Item: old, Kind: KindUnauthenticated,
			Reason: fmt.Sprintf("more than %d records without a seal", MaxPending)})
	}
	return res
}

func (a *Authenticator) seal(it Item) Result {
	var res Result
	reject := func(kind, format string, args ...any) Result {
		res.Rejected = append(res.Rejected, Rejection{Item: it, Kind: kind, Reason: fmt.Sprintf(format, args...)})
		return res
	}
	s, err := VerifySeal(a.keys, a.topic, a.partition, it.Env)
	if err != nil {
		return reject(KindUnauthenticated, "%v", err)
	}
	if a.head != "" && s.From != a.head {
		if it.Env.Time.After(a.lastSeal) && !a.lastSeal.IsZero() {
			g := Rejection{Item: it, Kind: KindGap, Reason: fmt.Sprintf(
				"a valid seal extends %s, but the last authenticated record here is %s: records are missing (data loss)", s.From, a.head)}
			res.Gap = &g
			return res
		}
		return reject(KindUnauthenticated, "the seal extends %s, not the authenticated head %s (an old seal replayed, or a copy)", s.From, a.head)
	}
	// Walk back from the seal's head to where it says the run starts.
	run, why := a.walk(s)
	if why != "" {
		return reject(KindUnauthenticated, "%s", why)
	}
	clear(a.applied) // the last run's records
	res.Apply = a.applied[:0]
	if len(run) == len(a.pending) {
		// The run is every record held, in order (walk checked it): the
		// usual case, a transaction that wrote only what its seal signs.
		res.Apply = append(res.Apply, a.pending...)
	} else {
		covered := make(map[int]bool, len(run))
		for j := len(run) - 1; j >= 0; j-- {
			covered[run[j]] = true
			res.Apply = append(res.Apply, a.pending[run[j]])
		}
		for i, p := range a.pending {
			if !covered[i] {
				res.Rejected = append(res.Rejected, Rejection{Item: p, Kind: KindUnauthenticated,
					Reason: fmt.Sprintf("the seal at offset %d passes over it", it.Record.Offset)})
			}
		}
	}
	res.Apply = append(res.Apply, it)
	a.applied = res.Apply
	a.pending = a.pending[:0]
	a.head = it.Hash
	a.lastSeal = it.Env.Time
	return res
}

// walk returns the indexes in a.pending of the run the seal signs, from
// its head back to its first record, or why the log does not hold it.
// Each step goes to the first record held with the hash looked for.
func (a *Authenticator) walk(s Seal) (run []int, why string) {
	// The usual case first: the run is every record held, each linking
	// to the one before. Then no record before it can have a hash the walk
	// looks for (two records with the same hash have the same bytes, so
	// the same prevhash: the walk would have stopped at the later one), and
	// the walk below would take the same steps.
	if n := len(a.pending); n > 0 && n == s.Count {
		cur := s.Head
		i := n - 1
		for ; i >= 0 && a.pending[i].Hash == cur && cur != s.From; i-- {
			cur = a.pending[i].Env.PrevHash
		}
		if i < 0 && cur == s.From {
			run = make([]int, n)
			for j := range run {
				run[j] = n - 1 - j
			}
			return run, ""
		}
	}
	byHash := make(map[string]int, len(a.pending))
	for i, p := range a.pending {
		if _, dup := byHash[p.Hash]; !dup {
			byHash[p.Hash] = i
		}
	}
	for cur := s.Head; cur != s.From; {
		i, ok := byHash[cur]
		if !ok || len(run) > s.Count {
			return nil, fmt.Sprintf("the seal signs a run of %d records from %s to %s that is not in the log before it", s.Count, s.From, s.Head)
		}
		run = append(run, i)
		cur = a.pending[i].Env.PrevHash
	}
	if len(run) != s.Count {
		return nil, fmt.Sprintf("the seal signs %d records, %d link from %s to %s", s.Count, len(run), s.From, s.Head)
	}
	for j := 1; j < len(run); j++ {
		if run[j] > run[j-1] {
			return nil, "the records the seal signs are not in the order it signed them (reordered)"
		}
	}
	return run, ""
}

// Flush rejects every record still held for its seal: a reader that has
// read up to a stable offset (the end of the log as it stands, where every
// transaction has ended) knows none of them will be covered. A reader that
// follows the log live never flushes.
func (a *Authenticator) Flush() Result {
	var res Result
	for _, p := range a.pending {
		res.Rejected = append(res.Rejected, Rejection{Item: p, Kind: KindUnauthenticated,
			Reason: "no seal covers it by the end of the log"})
	}
	a.pending = a.pending[:0]
	return res
}
