package study

import (
	"testing"

	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// TestDocumentUnits: per-document NLL sums follow the document boundaries of the joined
// stream (the first token is never a target), whatever the windows and batches.
func TestDocumentUnits(t *testing.T) {
	// Documents of 3, 2 and 4 tokens with EOS: stream positions 0-2, 3-4, 5-8; targets 1..8.
	docs := []rundata.DocSize{{Tokens: 3, Words: 2}, {Tokens: 2, Words: 1}, {Tokens: 4, Words: 3}}
	nll := [][]float64{{1, 2, 3, 4}, {5, 6, 7, 8}} // target k+1 has NLL k+1
	batch := trainBatch(4)
	u := documentUnits(batchList(batch, batch), nll, docs)
	wantNLL, wantTok := []float64{1 + 2, 3 + 4, 5 + 6 + 7 + 8}, []float64{2, 2, 4}
	for i := range wantNLL {
		if u.NLL[i] != wantNLL[i] || u.Tokens[i] != wantTok[i] || !u.Complete[i] {
			t.Errorf("document %d: NLL %v over %v tokens (complete %v), want %v over %v", i, u.NLL[i], u.Tokens[i], u.Complete[i], wantNLL[i], wantTok[i])
		}
	}
	// Only the first batch (-eval-batches 1): the last document is cut, so it is not complete.
	cut := documentUnits(batchList(batch), nll[:1], docs)
	if len(cut.NLL) != 2 || cut.NLL[1] != 3+4 || !cut.Complete[1] {
		t.Errorf("cut: %+v", cut)
	}
	if ppl, ok := cut.wordPPL(); !ok || ppl <= 1 {
		t.Errorf("word perplexity of the complete documents: %v, %v", ppl, ok)
	}
}

// trainBatch is an LM batch of one window of n targets (ids 5, 6, …).
func trainBatch(n int) train.Batch {
	b := train.Batch{Shape: models.Shape{Batch: 1, TgtLen: n}}
	for i := range n {
		b.Tokens, b.Targets = append(b.Tokens, 4+i), append(b.Targets, 5+i)
	}
	return b
}

func batchList(bs ...train.Batch) []train.Batch { return bs }
