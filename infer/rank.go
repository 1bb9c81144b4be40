package infer

import (
	"fmt"
	"math"
)

// MaxTopK is the most candidates per row a Ranker is asked for.
const MaxTopK = 64

// Ranker is a Stepper that ranks each row's next tokens itself (on the device that holds the
// logits), so that only k candidates per row come back instead of the whole vocabulary.
type Ranker interface {
	Stepper
	// StepTopK feeds one token per row as Step does and returns, for each row b, its k most
	// likely next tokens ids[b·k:(b+1)·k] with their log-probabilities logp[b·k:(b+1)·k] (the
	// log-softmax of the row's logits), most likely first, ties to the lower id. Rows fed a
	// negative token (finished) get unspecified values. 1 ≤ k ≤ min(MaxTopK, vocab).
	StepTopK(tokens []int, k int) (ids []int, logp []float32, err error)
}

// Sampler is a Stepper that draws each row's next token itself (on the device that holds the
// logits), so that only one token per row comes back. Generate uses it when neither top-k nor
// top-p restricts the draw.
type Sampler interface {
	Stepper
	// StepSample feeds one token per row as Step does and returns, for each row b, the token
	// SampleRow draws from that row's logits with temperature and u[b]. Rows fed a negative
	// token (finished) get unspecified values. temperature > 0, 0 ≤ u[b] < 1.
	StepSample(tokens []int, temperature float64, u []float64) ([]int, error)
}

// SampleRow draws a token from softmax(logits / temperature) with the uniform number u ∈
// [0, 1): the first id, in id order, at which the running sum of exp((logit − max) /
// temperature) exceeds u times the total (the last id if rounding leaves none). Sums are in
// float64. It is Generate's draw when neither top-k nor top-p restricts the choice and the
// host reference of StepSample.
func SampleRow(logits []float32, temperature, u float64) int {
	return sampleRow(logits, temperature, u, make([]float64, len(logits)))
}

// sampleRow is SampleRow with scratch for the weights (at least len(logits)).
func sampleRow(logits []float32, temperature, u float64, work []float64) int {
	m := float32(math.Inf(-1))
	for _, x := range logits {
		m = max(m, x)
	}
	w := work[:len(logits)]
	var total float64
	for j, x := range logits {
		w[j] = math.Exp((float64(x) - float64(m)) / temperature)
		total += w[j]
	}
	target, cum := u*total, 0.0
	for j, e := range w {
		cum += e
		if cum > target {
			return j
		}
	}
	return len(logits) - 1
}

// TopK is StepTopK's ranking on the host, from a [rows·vocab] slice of logits (the reference
// the device implementations are tested against). Each row's tokens are ranked by logit,
// higher first, equal logits by lower id, and the k first are returned with their
// log-probabilities, computed in float64 (logit − log Σ exp logits) and rounded to float32,
// so they do not increase along a row. The selection keeps a sorted buffer of k tokens
// instead of sorting the row. It panics unless 1 ≤ k ≤ vocab and len(logits) is a multiple
// of vocab.
func TopK(logits []float32, vocab, k int) (ids []int, logp []float32) {
	if k < 1 || k > vocab || len(logits)%vocab != 0 {
		panic(fmt.Sprintf("infer.TopK: k = %d of vocab %d over %d logits", k, vocab, len(logits)))
	}
	rows := len(logits) / vocab
	ids = make([]int, rows*k)
	logp = make([]float32, rows*k)
	for r := range rows {
		row := logits[r*vocab : (r+1)*vocab]
		top := ids[r*k : (r+1)*k]
		topIDs(row, top)
		lse := logSumExp(row, float64(row[top[0]]))
		for j, id := range top {
			logp[r*k+j] = float32(float64(row[id]) - lse)
		}
	}
	return ids, logp
}

// topIDs fills top with the ids of the len(top) largest logits of row, larger first, equal
// logits by lower id, keeping a sorted buffer instead of sorting the row (1 ≤ len(top) ≤
// len(row)).
func topIDs(row []float32, top []int) {
	k, n := len(top), 0 // n: tokens in top so far
	for i, v := range row {
		if n == k && !(v > row[top[k-1]]) {
			continue // no better than the k-th; an equal logit has a higher id
		}
		j := n // the slot to fill, moved up past every lower logit
		if n == k {
			j = k - 1 // the k-th drops out
		} else {
			n++
		}
		for ; j > 0 && row[top[j-1]] < v; j-- {
			top[j] = top[j-1]
		}
		top[j] = i
	}
}

// logSumExp is log Σ exp(v) over a row of logits whose largest value is m.
func logSumExp(row []float32, m float64) float64 {
	var sum float64
	for _, v := range row {
		sum += math.Exp(float64(v) - m)
	}
	return m + math.Log(sum)
}

// stepSample calls s.StepSample and checks what comes back.
func stepSample(s Sampler, tokens []int, temperature float64, u []float64) ([]int, error) {
	ids, err := s.StepSample(tokens, temperature, u)
	if err != nil {
		return nil, err
	}
	if len(ids) != len(tokens) {
		return nil, fmt.Errorf("step sample: %d tokens for %d rows", len(ids), len(tokens))
	}
	for b, id := range ids {
		if tokens[b] >= 0 && (id < 0 || id >= s.Vocab()) {
			return nil, fmt.Errorf("step sample: row %d drew token %d of a vocabulary of %d", b, id, s.Vocab())
		}
	}
	return ids, nil
}

// stepTopK calls r.StepTopK and checks the lengths of what comes back.
func stepTopK(r Ranker, tokens []int, k int) ([]int, []float32, error) {
	ids, logp, err := r.StepTopK(tokens, k)
	if err != nil {
		return nil, nil, err
	}
	if len(ids) != len(tokens)*k || len(logp) != len(tokens)*k {
		return nil, nil, fmt.Errorf("top-%d step over %d rows returned %d ids and %d log-probabilities", k, len(tokens), len(ids), len(logp))
	}
	return ids, logp, nil
}
