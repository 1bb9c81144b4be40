package train

import (
	"fmt"
	"math"

	"mqa/models"
)

// tokenScorer is an Executor that can return the loss of every target, not only the mean.
type tokenScorer interface {
	TokenNLL(b Batch) ([]float64, error)
}

// TokenNLL returns, for every batch, the negative log-likelihood in nats of each target
// (no label smoothing, no dropout), aligned with the batch's Targets, 0 at padding: what a
// bootstrap over sentences or documents needs. An executor that cannot score single tokens
// has the batches scored on the CPU with the trainer's current parameters.
func (t *Trainer) TokenNLL(batches []Batch) ([][]float64, error) {
	s, ok := t.exec.(tokenScorer)
	if !ok {
		if err := t.Sync(); err != nil {
			return nil, err
		}
		cpu := newCPUExecutor(t)
		defer cpu.Close()
		s = cpu
	}
	out := make([][]float64, len(batches))
	for i, b := range batches {
		nll, err := s.TokenNLL(b)
		if err != nil {
			return nil, fmt.Errorf("evaluation batch %d: %w", i, err)
		}
		out[i] = nll
	}
	return out, nil
}

// TokenNLL runs the evaluation graph on b and returns each target's NLL from the logits.
func (e *cpuExecutor) TokenNLL(b Batch) ([]float64, error) {
	c, err := e.compile(b.Shape, false)
	if err != nil {
		return nil, err
	}
	if _, err := c.forward(b); err != nil {
		return nil, err
	}
	vocab := e.t.Cfg.Vocab
	out := make([]float64, len(b.Targets))
	v, err := c.prog.Value(c.g.Logits)
	if err != nil {
		return nil, err
	}
	switch logits := v.Data().(type) {
	case []float32:
		tokenNLL(logits, b.Targets, vocab, out)
	case []float64:
		tokenNLL(logits, b.Targets, vocab, out)
	default:
		return nil, fmt.Errorf("logits have type %T", logits)
	}
	return out, nil
}

// tokenNLL writes −log softmax(row)[target] of each logits row into out (0 for padding).
func tokenNLL[T float32 | float64](logits []T, targets []int, vocab int, out []float64) {
	for r, target := range targets {
		if target == models.PadID {
			continue
		}
		row := logits[r*vocab : (r+1)*vocab]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(v) - m)
		}
		out[r] = m + math.Log(sum) - float64(row[target])
	}
}
