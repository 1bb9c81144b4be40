// Package data provides the corpora, tokenizer and batching used to train
// and evaluate the multi-query-attention models.
//
// It has three parts:
//
//   - Corpora: gzip copies of the shared corpora are embedded in the
//     binary (see corpora/NOTE.md); OpenEmbedded, ReadTextLines, ReadTSV,
//     LoadText and LoadTSV read them or a user-supplied file.
//   - Tokenizer: a deterministic byte-level BPE tokenizer (TrainBPE,
//     Tokenizer.Encode/Decode, JSON save/load) with no unknown token.
//   - Batching: resumable, seeded streams of language-model windows
//     (LMStream) and length-bucketed translation batches
//     (TranslationBatcher), plus in-order helpers for evaluation.
//
// Nothing in this package panics on user input; malformed input is
// reported as an error naming the source and, where it applies, the line.
package data
