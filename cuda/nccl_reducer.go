//go:build mqacuda

package cuda

import (
	"errors"
	"fmt"
	"sync"

	"mqa/train"
)

// Data-parallel training on several GPUs of one process: rank r's executor runs on GPU r
// (train.Trainer.Rank), and the ranks sum their gradients with one NCCL communicator.

func init() {
	train.RegisterAllReducer("cuda", func(ranks int) (train.AllReducer, error) { return newNCCLReducer(ranks) })
}

// ncclReducer is the train.AllReducer of GPU ranks: an NCCL communicator whose members are
// made each on its rank's executor thread (its GPU's context) when the ranks join.
type ncclReducer struct {
	nccl  *NCCL
	id    NCCLUniqueID
	mu    sync.Mutex
	comms []*NCCLComm
	err   error // set by Abort
}

func newNCCLReducer(ranks int) (*ncclReducer, error) {
	n, err := LoadNCCL()
	if err != nil {
		return nil, err
	}
	if visible := deviceCount(); visible < ranks {
		return nil, fmt.Errorf("cuda: %d GPUs asked for, %d visible", ranks, visible)
	}
	id, err := n.UniqueID()
	if err != nil {
		return nil, err
	}
	return &ncclReducer{nccl: n, id: id, comms: make([]*NCCLComm, ranks)}, nil
}

// comm returns rank's communicator, joining it on first use (Executor.Join); call it on
// the rank's executor thread.
func (r *ncclReducer) comm(rank int) (*NCCLComm, error) {
	r.mu.Lock()
	c, err := r.comms[rank], r.err
	r.mu.Unlock()
	if err != nil || c != nil {
		return c, err
	}
	if c, err = r.nccl.InitRank(r.id, len(r.comms), rank); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.comms[rank] = c
	return c, r.err
}

// Abort tears every communicator down (a rank failed) and makes later sums fail with err.
func (r *ncclReducer) Abort(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	for _, c := range r.comms {
		if c != nil {
			_ = c.Abort() // the error that matters is err
		}
	}
}

// Close frees the communicators.
func (r *ncclReducer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, c := range r.comms {
		if c != nil {
			errs = append(errs, c.Destroy())
		}
	}
	return errors.Join(errs...)
}
