package train

import (
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
