package train

import (
	"fmt"

	"mqa/data"
	"mqa/models"
)

// LMSource adapts a data.LMStream to a Source.
type LMSource struct{ *data.LMStream }

// Next returns the stream's next batch.
func (s LMSource) Next() Batch { return FromLM(s.LMStream.Next()) }

// FromLM converts a language-model batch.
func FromLM(b data.LMBatch) Batch {
	return Batch{Shape: models.Shape{Batch: b.Batch, TgtLen: b.SeqLen}, Tokens: b.Inputs, Targets: b.Targets}
}

// TranslationSource adapts a data.TranslationBatcher to a Source.
type TranslationSource struct{ *data.TranslationBatcher }

// Next returns the batcher's next batch.
func (s TranslationSource) Next() Batch { return FromTranslation(s.TranslationBatcher.Next()) }

// FromTranslation converts a translation batch.
func FromTranslation(b data.TranslationBatch) Batch {
	return Batch{Shape: models.Shape{Batch: b.Batch, SrcLen: b.SrcLen, TgtLen: b.TgtLen},
		Src: b.Src, SrcLens: b.SrcLens, Tokens: b.TgtIn, Targets: b.TgtOut}
}

// NewLMSource encodes documents with tok, joins them with EOS after each, and returns a
// stream of shuffled batch×seqLen windows over them: a language model's training source.
func NewLMSource(tok *data.Tokenizer, docs []string, batch, seqLen int, seed uint64) (LMSource, error) {
	ids := make([][]int, len(docs))
	for i, d := range docs {
		ids[i] = tok.Encode(d)
	}
	stream, err := data.NewLMStream(data.JoinDocuments(ids), batch, seqLen, seed)
	if err != nil {
		return LMSource{}, fmt.Errorf("train: language-model source: %w", err)
	}
	return LMSource{LMStream: stream}, nil
}

// NewTranslationSource encodes sentence pairs (sources with src, targets with tgt) and
// returns shuffled, length-bucketed batches of at most maxTokens padded tokens; pairs with
// a side longer than maxLen tokens are left out (the statistics say how many).
func NewTranslationSource(src, tgt *data.Tokenizer, pairs []data.Pair, maxTokens, maxLen int, seed uint64) (TranslationSource, data.LengthStats, error) {
	tp := make([]data.TokenPair, len(pairs))
	for i, p := range pairs {
		tp[i] = data.TokenPair{Src: src.Encode(p.Src), Tgt: tgt.Encode(p.Tgt)}
	}
	b, stats, err := data.NewTranslationBatcher(tp, maxTokens, maxLen, seed)
	if err != nil {
		return TranslationSource{}, stats, fmt.Errorf("train: translation source: %w", err)
	}
	return TranslationSource{TranslationBatcher: b}, stats, nil
}
