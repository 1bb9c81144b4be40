package train

import (
	"math"
	"testing"

	"mqa/data"
	"mqa/models"
)

// TestTokenNLLMatchesEvaluate: the per-token NLLs of a padded translation batch add up to
// the graph's mean loss (Evaluate), row by row and over the batch, and are 0 at padding.
func TestTokenNLLMatchesEvaluate(t *testing.T) {
	const vocab = 20
	var pairs []data.TokenPair
	for i := range 5 {
		src, tgt := make([]int, 3+i), make([]int, 2+(i*3)%5)
		for j := range src {
			src[j] = 4 + (i+j)%(vocab-4)
		}
		for j := range tgt {
			tgt[j] = 4 + (2*i+3*j)%(vocab-4)
		}
		pairs = append(pairs, data.TokenPair{Src: src, Tgt: tgt})
	}
	batches, _ := data.EvalTranslationBatches(pairs, 1000, 32)
	if len(batches) != 1 || batches[0].Batch != 5 {
		t.Fatalf("want one batch of 5 rows, got %d batches", len(batches))
	}
	b := FromTranslation(batches[0])
	tr, err := NewTrainer(tinyCfg(models.TaskTranslate, vocab, 2), nil, DefaultSettings(1), "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	nll, err := tr.TokenNLL([]Batch{b})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := tr.Evaluate([]Batch{b})
	if err != nil {
		t.Fatal(err)
	}
	total, n := 0.0, 0
	for i, v := range nll[0] {
		switch {
		case b.Targets[i] == models.PadID && v != 0:
			t.Errorf("target %d is padding but has NLL %v", i, v)
		case b.Targets[i] != models.PadID:
			if !(v > 0) {
				t.Errorf("target %d: NLL %v", i, v)
			}
			total += v
			n++
		}
	}
	if n != ev.Tokens || math.Abs(total/float64(n)-ev.NLL) > 1e-5*ev.NLL {
		t.Errorf("per-token mean %v over %d tokens, Evaluate %v over %d", total/float64(n), n, ev.NLL, ev.Tokens)
	}
	// Row 2 alone, as a batch of one: its graph loss is the mean of its tokens' NLLs.
	L, S := b.Shape.TgtLen, b.Shape.SrcLen
	one := Batch{Shape: models.Shape{Batch: 1, SrcLen: S, TgtLen: L}, Src: b.Src[2*S : 3*S], SrcLens: b.SrcLens[2:3],
		Tokens: b.Tokens[2*L : 3*L], Targets: b.Targets[2*L : 3*L]}
	ev1, err := tr.Evaluate([]Batch{one})
	if err != nil {
		t.Fatal(err)
	}
	row := 0.0
	for _, v := range nll[0][2*L : 3*L] {
		row += v
	}
	if math.Abs(row/float64(ev1.Tokens)-ev1.NLL) > 1e-5*ev1.NLL {
		t.Errorf("row 2: %v per token, Evaluate of the row alone %v", row/float64(ev1.Tokens), ev1.NLL)
	}
}
