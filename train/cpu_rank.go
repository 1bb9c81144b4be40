package train

// The CPU executor's part in data-parallel training (RankExecutor).

import "fmt"

// Join implements RankExecutor: CPU ranks need a HostAllReducer, and nothing else.
func (e *cpuExecutor) Join(r AllReducer, rank int) error {
	if _, ok := r.(HostAllReducer); !ok {
		return fmt.Errorf("cpu: rank %d: gradients in host memory cannot be summed with %T", rank, r)
	}
	return nil
}

// WeightedTrainStep implements RankExecutor.
func (e *cpuExecutor) WeightedTrainStep(micro []Batch, weights []float64) (float64, error) {
	if e.acc == nil {
		e.acc = make([][]float32, len(e.params))
		for i, p := range e.params {
			e.acc[i] = make([]float32, len(p))
		}
	}
	for _, a := range e.acc {
		clear(a)
	}
	e.grads = e.acc
	var loss float64
	for k, b := range micro {
		c, err := e.compile(b.Shape, true)
		if err != nil {
			return 0, err
		}
		l, err := c.forward(b)
		if err != nil {
			return 0, err
		}
		w := weights[k]
		loss += w * l
		for i, g := range c.grads {
			grad, err := c.floats32(g)
			if err != nil {
				return 0, err
			}
			acc, w32 := e.acc[i], float32(w)
			for j, v := range grad {
				acc[j] += w32 * v
			}
		}
	}
	return loss, nil
}

// ReduceGradients implements RankExecutor: each bucket is copied into one buffer, summed
// across ranks, and copied back.
func (e *cpuExecutor) ReduceGradients(plan []Bucket, r AllReducer, rank int) error {
	h, ok := r.(HostAllReducer)
	if !ok {
		return fmt.Errorf("cpu: gradients in host memory cannot be summed with %T", r)
	}
	for _, b := range plan {
		buf := e.flat[:0]
		for _, p := range b.Params {
			buf = append(buf, e.grads[p]...)
		}
		e.flat = buf
		if err := h.AllReduce(rank, buf); err != nil {
			return err
		}
		for _, p := range b.Params {
			buf = buf[copy(e.grads[p], buf):]
		}
	}
	return nil
}

// GradNorm implements RankExecutor.
func (e *cpuExecutor) GradNorm() (float64, error) { return GlobalNorm(e.grads), nil }
