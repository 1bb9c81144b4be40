// Package bleu computes corpus-level BLEU and chrF scores that agree with
// sacreBLEU 2.x run with its default settings.
//
// BLEU uses the mteval-v13a tokenisation ([Tokenize13a]), is case-sensitive,
// counts n-grams up to order 4 against a single reference, applies the
// brevity penalty and "exp" smoothing, and does not use effective order.
// chrF uses character n-grams up to order 6, no word n-grams, beta 2,
// whitespace removed before extraction, and sacreBLEU's default
// effective-order averaging (not the chrF++.py epsilon variant).
//
// The arithmetic follows sacreBLEU's Python code step by step (including
// Python 3.12's compensated float sum() when averaging log precisions), so
// scores match it to within a few units in the last place; the remaining
// differences come from Go's and the C library's log and exp.
//
// Unlike sacreBLEU, an empty corpus scores 0 instead of raising, and
// hypothesis and reference lists of different lengths are an error instead
// of being silently truncated.
package bleu
