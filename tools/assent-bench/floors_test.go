package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTxnPoolLastInFirstOut: floor (b) takes the producer freed last, so
// the fewest stay busy; a taker at the maximum waits for a put, or for its
// context.
func TestTxnPoolLastInFirstOut(t *testing.T) {
	t.Parallel()
	a, b := new(kgo.Client), new(kgo.Client)
	p := newTxnPool(2)
	require.Nil(t, p.take(), "an empty pool has no producer")
	p.put(a)
	p.put(b)
	require.Same(t, b, p.take(), "the producer freed last comes first")
	require.Same(t, a, p.take())
	require.Nil(t, p.take())

	got := make(chan *kgo.Client)
	go func() {
		cl, err := p.wait(context.Background())
		if err != nil {
			cl = nil
		}
		got <- cl
	}()
	time.Sleep(20 * time.Millisecond)
	p.put(a)
	select {
	case cl := <-got:
		require.Same(t, a, cl, "a waiter gets the producer put back")
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter was not woken by a put")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.wait(ctx)
	require.ErrorIs(t, err, context.Canceled, "nothing free and the context ended")
}
