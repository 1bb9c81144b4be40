// Package train trains models: AdamW with decoupled weight decay and bias correction,
// learning-rate schedules, global gradient-norm clipping, gradient accumulation,
// periodic validation, a JSON-lines log, a progress bar, and checkpoints to resume from.
package train

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter) and bias correction.
// Its moments are kept in float32 beside the parameters, in the same order.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// Decay says, per parameter, whether weight decay applies (matrices: yes; biases,
	// norm gains: no).
	Decay []bool
	M, V  [][]float32
	Steps int // updates applied so far (the bias-correction exponent)
}

// NewAdamW allocates zero moments for parameters of the given sizes.
func NewAdamW(sizes []int, decay []bool, beta1, beta2, eps, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay, Decay: decay}
	for _, n := range sizes {
		o.M = append(o.M, make([]float32, n))
		o.V = append(o.V, make([]float32, n))
	}
	return o
}

// Update applies one step with learning rate lr to params from grads, each gradient first
// multiplied by gradScale (1/accumulation steps, times the clipping factor).
func (o *AdamW) Update(params, grads [][]float32, lr, gradScale float64) error {
	if len(params) != len(o.M) || len(grads) != len(o.M) {
		return fmt.Errorf("adamw: %d parameters and %d gradients for %d moments", len(params), len(grads), len(o.M))
	}
	o.Steps++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.Steps))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.Steps))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	step := float32(lr / bc1)
	rbc2 := float32(1 / math.Sqrt(bc2))
	eps := float32(o.Eps)
	scale := float32(gradScale)
	total := 0
	for i, p := range params {
		if len(p) != len(grads[i]) || len(p) != len(o.M[i]) || len(p) != len(o.V[i]) {
			return fmt.Errorf("adamw: parameter %d has %d values, gradient %d, moments %d and %d", i, len(p), len(grads[i]), len(o.M[i]), len(o.V[i]))
		}
		total += len(p)
	}
	// update changes the values [lo, hi) of the parameters laid end to end.
	update := func(lo, hi int) {
		start := 0
		for i, p := range params {
			from, to := max(lo-start, 0), min(hi-start, len(p))
			start += len(p)
			if from >= to {
				continue
			}
			g, m, v := grads[i], o.M[i], o.V[i]
			decay := float32(1)
			if o.Decay[i] {
				decay = float32(1 - lr*o.WeightDecay)
			}
			for j := from; j < to; j++ {
				gj := g[j] * scale
				m[j] = b1*m[j] + (1-b1)*gj
				v[j] = b2*v[j] + (1-b2)*gj*gj
				p[j] = p[j]*decay - step*m[j]/(float32(math.Sqrt(float64(v[j])))*rbc2+eps)
			}
		}
	}
	// Each value's update stands alone, so shares of them go to the cores.
	parts := min(runtime.GOMAXPROCS(0), total/minUpdateShare)
	if parts <= 1 {
		update(0, total)
		return nil
	}
	var wg sync.WaitGroup
	for w := range parts {
		wg.Go(func() { update(total*w/parts, total*(w+1)/parts) })
	}
	wg.Wait()
	return nil
}

// minUpdateShare is the least number of values Update gives one goroutine.
const minUpdateShare = 1 << 15

// GlobalNorm is the L2 norm of all gradients together.
func GlobalNorm(grads [][]float32) float64 {
	var ss float64
	for _, g := range grads {
		for _, v := range g {
			ss += float64(v) * float64(v)
		}
	}
	return math.Sqrt(ss)
}

// Schedules.
const (
	ScheduleInvSqrt  = "invsqrt"
	ScheduleCosine   = "cosine"
	ScheduleConstant = "constant"
)

// Schedule gives the learning rate of each step: a linear warmup from 0 to Peak over
// Warmup steps, then inverse square root decay (Peak·sqrt(Warmup/step)), cosine decay to
// Min at Total, or a constant.
type Schedule struct {
	Kind          string
	Peak, Min     float64
	Warmup, Total int
}

// Validate checks the schedule's settings.
func (s Schedule) Validate() error {
	switch s.Kind {
	case ScheduleInvSqrt, ScheduleCosine, ScheduleConstant:
	default:
		return fmt.Errorf("unknown schedule %q (allowed: invsqrt, cosine, constant)", s.Kind)
	}
	if !(s.Peak > 0) || s.Min < 0 || s.Min > s.Peak || s.Warmup < 0 || s.Total < 0 || math.IsInf(s.Peak, 0) {
		return fmt.Errorf("schedule: need 0 ≤ min ≤ peak, a finite peak > 0, warmup ≥ 0 and total ≥ 0 (got peak %g, min %g, warmup %d, total %d)", s.Peak, s.Min, s.Warmup, s.Total)
	}
	return nil
}

// LR is the learning rate of step (counted from 1).
func (s Schedule) LR(step int) float64 {
	if step <= s.Warmup {
		return s.Peak * float64(step) / float64(s.Warmup)
	}
	switch s.Kind {
	case ScheduleInvSqrt:
		return math.Max(s.Min, s.Peak*math.Sqrt(float64(max(s.Warmup, 1))/float64(step)))
	case ScheduleCosine:
		span := max(s.Total-s.Warmup, 1)
		done := math.Min(float64(step-s.Warmup)/float64(span), 1)
		return s.Min + (s.Peak-s.Min)*0.5*(1+math.Cos(math.Pi*done))
	}
	return s.Peak
}
