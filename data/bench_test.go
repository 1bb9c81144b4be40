package data

import "testing"

// loadTrainText returns the lm-en training documents.
func loadTrainText(tb testing.TB) []string {
	tb.Helper()
	docs, err := LoadText("", "lm-en", "train")
	if err != nil {
		tb.Fatal(err)
	}
	return docs
}

// BenchmarkTrainBPE8k trains the tokenizer on the lm-en training split to
// a vocabulary of 8192.
func BenchmarkTrainBPE8k(b *testing.B) {
	docs := loadTrainText(b)
	b.ResetTimer()
	for b.Loop() {
		tok, err := TrainBPE(docs, 8192)
		if err != nil {
			b.Fatal(err)
		}
		if tok.VocabSize() != 8192 {
			b.Fatalf("vocab size %d", tok.VocabSize())
		}
	}
}
