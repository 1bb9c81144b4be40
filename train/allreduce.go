package train

import (
	"fmt"
	"sync"
)

// AllReducer joins the ranks of data-parallel training, which sum their gradient buffers
// with it. Each device's executor knows the kind it needs: a HostAllReducer for buffers in
// host memory (the CPU), NCCL for buffers on GPUs (package cuda).
type AllReducer interface {
	// Abort makes every waiting and later sum fail with err: a rank that fails calls it so
	// that the others do not wait for it for ever.
	Abort(err error)
}

// HostAllReducer sums float32 buffers in host memory across ranks.
type HostAllReducer interface {
	AllReducer
	// AllReduce replaces buf, on every rank, by the element-wise sum of all ranks' bufs.
	// Every rank calls it, from its own goroutine, with buffers of the same length in the
	// same order; it returns once the sum is in buf.
	AllReduce(rank int, buf []float32) error
}

// LocalAllReducer is a HostAllReducer for ranks that are goroutines of one process (the CPU
// ranks of tests, and of -device cpu -ranks N). It adds the buffers in rank order, so every
// rank gets the same, reproducible sum.
type LocalAllReducer struct {
	mu      sync.Mutex
	cond    *sync.Cond
	bufs    [][]float32 // the buffers of the round in progress, by rank
	arrived int
	round   uint64
	err     error
	sum     []float32
}

// NewLocalAllReducer makes an all-reducer for ranks goroutines.
func NewLocalAllReducer(ranks int) *LocalAllReducer {
	r := &LocalAllReducer{bufs: make([][]float32, ranks)}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// AllReduce implements HostAllReducer.
func (r *LocalAllReducer) AllReduce(rank int, buf []float32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if rank < 0 || rank >= len(r.bufs) || r.bufs[rank] != nil {
		return r.fail(fmt.Errorf("all-reduce: rank %d of %d joined a round twice or does not exist", rank, len(r.bufs)))
	}
	r.bufs[rank] = buf
	r.arrived++
	if r.arrived < len(r.bufs) {
		round := r.round
		for r.round == round && r.err == nil {
			r.cond.Wait()
		}
		if r.round == round {
			return r.err
		}
		return nil
	}
	for i, b := range r.bufs {
		if len(b) != len(buf) {
			return r.fail(fmt.Errorf("all-reduce: rank %d has %d values, rank %d has %d", i, len(b), rank, len(buf)))
		}
	}
	r.sum = append(r.sum[:0], r.bufs[0]...)
	for _, b := range r.bufs[1:] {
		for j, v := range b {
			r.sum[j] += v
		}
	}
	for i, b := range r.bufs {
		copy(b, r.sum)
		r.bufs[i] = nil
	}
	r.arrived = 0
	r.round++
	r.cond.Broadcast()
	return nil
}

// Abort implements AllReducer.
func (r *LocalAllReducer) Abort(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail(err)
}

// fail records err (the first one stays) and wakes the waiting ranks; r.mu is held.
func (r *LocalAllReducer) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	r.cond.Broadcast()
	return r.err
}
