package data

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
)

// StreamState is the position of an LMStream or TranslationBatcher, for
// checkpointing: the next batch is batch Pos (counting from 0) of epoch
// Epoch, in the order given by Seed. It is JSON-serialisable.
type StreamState struct {
	Epoch int    `json:"epoch"`
	Pos   int    `json:"pos"`
	Seed  uint64 `json:"seed"`
}

// permutation returns a random permutation of 0..n-1 that depends only on
// seed and epoch. It uses a PCG source from math/rand/v2 (whose output is
// fixed by its specification) and its own Fisher–Yates shuffle, so the
// order does not change with the Go release.
func permutation(n int, seed, epoch uint64) []int {
	src := rand.NewPCG(seed, epoch)
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(boundedRand(src, uint64(i+1)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// epochOrder is the resumable order that LMStream and TranslationBatcher
// visit their items in: each epoch is permutation(n, seed, epoch), cut into
// batches batches.
type epochOrder struct {
	n, batches int // items permuted, batches per epoch
	seed       uint64
	epoch, pos int // the next batch is batch pos of epoch epoch
	order      []int
}

func newEpochOrder(n, batches int, seed uint64) epochOrder {
	return epochOrder{n: n, batches: batches, seed: seed, order: permutation(n, seed, 0)}
}

// next returns the k items of the next batch, starting a new epoch (with a
// new order) when the current one is used up.
func (o *epochOrder) next(k int) []int {
	if o.pos >= o.batches {
		o.epoch++
		o.pos = 0
		o.order = permutation(o.n, o.seed, uint64(o.epoch))
	}
	o.pos++
	return o.order[(o.pos-1)*k : o.pos*k]
}

func (o *epochOrder) state() StreamState {
	return StreamState{Epoch: o.epoch, Pos: o.pos, Seed: o.seed}
}

// restore moves o to st (taking its Seed); what names the stream in the
// error for a negative Epoch or a Pos outside [0, batches].
func (o *epochOrder) restore(st StreamState, what string) error {
	if st.Epoch < 0 || st.Pos < 0 || st.Pos > o.batches {
		return fmt.Errorf("data: %s: cannot restore epoch %d position %d (an epoch has %d batches)",
			what, st.Epoch, st.Pos, o.batches)
	}
	o.epoch, o.pos, o.seed = st.Epoch, st.Pos, st.Seed
	o.order = permutation(o.n, o.seed, uint64(o.epoch))
	return nil
}

// boundedRand returns a uniform value in [0, n) for n > 0, by rejection.
func boundedRand(src *rand.PCG, n uint64) uint64 {
	threshold := -n % n // 2^64 mod n
	for {
		if v := src.Uint64(); v >= threshold {
			return v % n
		}
	}
}

// JoinDocuments concatenates the token ids of docs into one stream,
// appending EOSID after each document.
func JoinDocuments(docs [][]int) []int {
	n := 0
	for _, d := range docs {
		n += len(d) + 1
	}
	out := make([]int, 0, n)
	for _, d := range docs {
		out = append(out, d...)
		out = append(out, EOSID)
	}
	return out
}

// LMBatch is a batch of language-model training windows. Inputs and Targets
// are row-major Batch×SeqLen; Targets[i] is the token that follows
// Inputs[i] in the stream.
type LMBatch struct {
	Batch, SeqLen   int
	Inputs, Targets []int
}

// LMStream cuts a token stream into windows of SeqLen+1 tokens that start
// every SeqLen tokens (windows 0..W-1 start at 0, SeqLen, 2·SeqLen, ...,
// W = (len(tokens)-1)/SeqLen), so each window's inputs and targets overlap
// its neighbours by exactly one token. Every epoch the windows are visited
// in a new random order that depends only on the seed and the epoch number,
// Batch at a time; the W mod Batch windows left over at the end of an
// epoch's order are skipped in that epoch.
//
// Make one with NewLMStream; the zero LMStream yields only empty batches.
type LMStream struct {
	tokens        []int
	batch, seqLen int
	ord           epochOrder // of the windows
}

// NewLMStream returns a stream of batch×seqLen batches over tokens (usually
// from JoinDocuments), shuffled with seed. It keeps tokens, which must not
// be changed afterwards. At least batch·seqLen+1 tokens are needed.
func NewLMStream(tokens []int, batch, seqLen int, seed uint64) (*LMStream, error) {
	if batch < 1 || seqLen < 1 {
		return nil, fmt.Errorf("data: LM stream: batch %d and sequence length %d must both be at least 1", batch, seqLen)
	}
	if len(tokens) < 2 || (len(tokens)-1)/seqLen < batch {
		return nil, fmt.Errorf("data: LM stream: %d tokens are too few for one batch of %d×%d (need at least %d)",
			len(tokens), batch, seqLen, batch*seqLen+1)
	}
	numWindows := (len(tokens) - 1) / seqLen
	return &LMStream{
		tokens: tokens,
		batch:  batch,
		seqLen: seqLen,
		ord:    newEpochOrder(numWindows, numWindows/batch, seed),
	}, nil
}

// BatchesPerEpoch returns the number of batches in each epoch.
func (s *LMStream) BatchesPerEpoch() int {
	return s.ord.batches
}

// Next returns the next batch, starting a new epoch (with a new order) when
// the current one is used up. The slices are new on each call.
func (s *LMStream) Next() LMBatch {
	if s.ord.batches == 0 {
		return LMBatch{}
	}
	windows := s.ord.next(s.batch)
	b := LMBatch{
		Batch:   s.batch,
		SeqLen:  s.seqLen,
		Inputs:  make([]int, 0, s.batch*s.seqLen),
		Targets: make([]int, 0, s.batch*s.seqLen),
	}
	for _, w := range windows {
		start := w * s.seqLen
		b.Inputs = append(b.Inputs, s.tokens[start:start+s.seqLen]...)
		b.Targets = append(b.Targets, s.tokens[start+1:start+1+s.seqLen]...)
	}
	return b
}

// State returns the stream's position; Restore(State()) on a stream over
// the same tokens with the same batch and sequence length continues exactly
// where this one is.
func (s *LMStream) State() StreamState {
	return s.ord.state()
}

// Restore moves the stream to st (taking its Seed), so that Next returns
// what the stream that produced st would have returned next. Epoch must not
// be negative and Pos must be within [0, BatchesPerEpoch()].
func (s *LMStream) Restore(st StreamState) error {
	return s.ord.restore(st, "LM stream")
}

// EvalWindows cuts tokens into consecutive windows for evaluation, in
// order: inputs[i] = tokens[i·seqLen : i·seqLen+n] and targets[i] the same
// shifted by one, with n = seqLen except in the last window, which may be
// shorter. Every token but the first is a target exactly once. It returns
// nothing when seqLen < 1 or there are fewer than 2 tokens.
func EvalWindows(tokens []int, seqLen int) (inputs, targets [][]int) {
	if seqLen < 1 {
		return nil, nil
	}
	for start := 0; start < len(tokens)-1; {
		end := start + min(seqLen, len(tokens)-1-start)
		inputs = append(inputs, slices.Clone(tokens[start:end]))
		targets = append(targets, slices.Clone(tokens[start+1:end+1]))
		start = end
	}
	return inputs, targets
}

// TokenPair is a tokenised translation pair (without BOS or EOS).
type TokenPair struct {
	Src, Tgt []int
}

// TranslationBatch is a padded batch of translation pairs. All matrices are
// row-major with Batch rows:
//
//   - Src (Batch×SrcLen): the source ids, padded with PadID.
//   - TgtIn (Batch×TgtLen): BOSID followed by the target ids, padded.
//   - TgtOut (Batch×TgtLen): the target ids followed by EOSID, padded.
//   - SrcLens, TgtLens (Batch): the unpadded lengths of each Src row and
//     each TgtOut row (TgtLens counts the EOS; TgtIn has the same length).
//   - Index (Batch): the position of each row's pair in the slice given to
//     NewTranslationBatcher or EvalTranslationBatches.
type TranslationBatch struct {
	Batch, SrcLen, TgtLen int
	Src, TgtIn, TgtOut    []int
	SrcLens, TgtLens      []int
	Index                 []int
}

// LengthStats says how many pairs a batcher kept and dropped. A pair is
// dropped when its source is empty (EmptySrc) or when its source or its
// target plus EOS is longer than maxLen (TooLong); Dropped = EmptySrc +
// TooLong. MaxSrc and MaxTgt are the longest source and target (without
// EOS) among all the pairs given, kept or dropped.
type LengthStats struct {
	Kept, Dropped     int
	TooLong, EmptySrc int
	MaxSrc, MaxTgt    int
}

// batchGroup is one batch's shape and the pairs in it.
type batchGroup struct {
	srcLen, tgtLen int
	idx            []int
}

// bucketLen rounds n up to a multiple of 8, but not above maxLen.
func bucketLen(n, maxLen int) int {
	return min((n+7)/8*8, maxLen)
}

// groupPairs drops unusable pairs and groups the rest into batches.
//
// A kept pair goes to the bucket of length L = max(len(Src), len(Tgt)+1)
// rounded up to a multiple of 8 and capped at maxLen; its batch has
// SrcLen = TgtLen = L. Buckets are visited from short to long. In each,
// the pairs are sorted by L, then source length, then target length, then
// input position, and cut into batches of max(1, maxTokens/L) pairs; the
// pairs left over (fewer than one batch, the longest of the bucket) move
// up into the next longer bucket, so only the longest bucket can end with
// a smaller batch. There is therefore at most one batch shape per bucket,
// plus one.
func groupPairs(pairs []TokenPair, maxTokens, maxLen int) ([]batchGroup, LengthStats) {
	var st LengthStats
	buckets := make(map[int][]int)
	for i, p := range pairs {
		st.MaxSrc = max(st.MaxSrc, len(p.Src))
		st.MaxTgt = max(st.MaxTgt, len(p.Tgt))
		switch {
		case len(p.Src) == 0:
			st.EmptySrc++
		case len(p.Src) > maxLen || len(p.Tgt)+1 > maxLen:
			st.TooLong++
		default:
			st.Kept++
			l := bucketLen(max(len(p.Src), len(p.Tgt)+1), maxLen)
			buckets[l] = append(buckets[l], i)
		}
	}
	st.Dropped = st.EmptySrc + st.TooLong

	lens := make([]int, 0, len(buckets))
	for l := range buckets {
		lens = append(lens, l)
	}
	slices.Sort(lens)
	pairLen := func(i int) int { return max(len(pairs[i].Src), len(pairs[i].Tgt)+1) }
	var groups []batchGroup
	var carry []int
	for k, l := range lens {
		idx := append(carry, buckets[l]...)
		slices.SortStableFunc(idx, func(a, b int) int {
			return cmp.Or(cmp.Compare(pairLen(a), pairLen(b)),
				cmp.Compare(len(pairs[a].Src), len(pairs[b].Src)),
				cmp.Compare(len(pairs[a].Tgt), len(pairs[b].Tgt)),
				cmp.Compare(a, b))
		})
		size := max(1, maxTokens/l)
		full := len(idx) / size * size
		if k == len(lens)-1 {
			full = len(idx) // the longest bucket keeps its partial batch
		}
		for start := 0; start < full; start += size {
			end := min(start+size, full)
			groups = append(groups, batchGroup{srcLen: l, tgtLen: l, idx: idx[start:end]})
		}
		carry = slices.Clone(idx[full:])
	}
	return groups, st
}

// makeBatch builds the padded batch for one group.
func makeBatch(pairs []TokenPair, g batchGroup) TranslationBatch {
	n := len(g.idx)
	b := TranslationBatch{
		Batch:   n,
		SrcLen:  g.srcLen,
		TgtLen:  g.tgtLen,
		Src:     make([]int, n*g.srcLen),
		TgtIn:   make([]int, n*g.tgtLen),
		TgtOut:  make([]int, n*g.tgtLen),
		SrcLens: make([]int, n),
		TgtLens: make([]int, n),
		Index:   slices.Clone(g.idx),
	}
	// make fills with 0 == PadID, so only the real tokens are written.
	for r, i := range g.idx {
		p := pairs[i]
		copy(b.Src[r*g.srcLen:], p.Src)
		in := b.TgtIn[r*g.tgtLen:]
		in[0] = BOSID
		copy(in[1:], p.Tgt)
		out := b.TgtOut[r*g.tgtLen:]
		copy(out, p.Tgt)
		out[len(p.Tgt)] = EOSID
		b.SrcLens[r] = len(p.Src)
		b.TgtLens[r] = len(p.Tgt) + 1
	}
	return b
}

// TranslationBatcher yields length-bucketed, padded translation batches in
// a shuffled order that is new every epoch and depends only on the seed and
// the epoch number. The batches themselves (which pairs go together) are
// fixed; see NewTranslationBatcher. The zero TranslationBatcher yields only
// empty batches.
type TranslationBatcher struct {
	pairs  []TokenPair
	groups []batchGroup
	ord    epochOrder // of the groups
}

// NewTranslationBatcher groups pairs into batches for training.
//
// Pairs with an empty source, or whose source or target+EOS is longer than
// maxLen tokens, are dropped and counted in the returned LengthStats.
//
// To keep the number of distinct padded shapes small (a model may compile
// one graph per shape), each kept pair goes to a bucket of length
// L = max(len(Src), len(Tgt)+1) rounded up to a multiple of 8 (capped at
// maxLen), and both sides of its batch are padded to L: SrcLen = TgtLen =
// L. (Callers should not rely on the two being equal.) Within a bucket the
// pairs are sorted by length and cut into batches of
// Batch = max(1, maxTokens/L) pairs, so a batch has at most maxTokens
// padded positions on each side (source and target). The few pairs left
// over in a bucket move up to the next longer bucket, so every bucket has
// one batch size and only the longest bucket may end with a smaller batch:
// at most maxLen/8+2 shapes in all (see Shapes). Measured on the embedded
// training corpora with an 8k BPE, maxLen 128 and maxTokens 4096: 12
// shapes and 86% of padded positions used (bible.en-es), 17 shapes and 79%
// (lohelp.en-de).
//
// It keeps pairs, which must not be changed afterwards. maxTokens and
// maxLen must be at least 1, and at least one pair must be kept.
func NewTranslationBatcher(pairs []TokenPair, maxTokens, maxLen int, seed uint64) (*TranslationBatcher, LengthStats, error) {
	if maxTokens < 1 || maxLen < 1 {
		return nil, LengthStats{}, fmt.Errorf("data: translation batcher: maxTokens %d and maxLen %d must both be at least 1", maxTokens, maxLen)
	}
	groups, st := groupPairs(pairs, maxTokens, maxLen)
	if st.Kept == 0 {
		return nil, st, fmt.Errorf("data: translation batcher: no usable pairs among %d (%d too long for maxLen %d, %d with empty source)",
			len(pairs), st.TooLong, maxLen, st.EmptySrc)
	}
	return &TranslationBatcher{pairs: pairs, groups: groups, ord: newEpochOrder(len(groups), len(groups), seed)}, st, nil
}

// BatchesPerEpoch returns the number of batches in each epoch.
func (b *TranslationBatcher) BatchesPerEpoch() int {
	return len(b.groups)
}

// Shapes returns the distinct (Batch, SrcLen, TgtLen) shapes of the
// batches, sorted.
func (b *TranslationBatcher) Shapes() [][3]int {
	var shapes [][3]int
	for _, g := range b.groups {
		shapes = append(shapes, [3]int{len(g.idx), g.srcLen, g.tgtLen})
	}
	slices.SortFunc(shapes, func(x, y [3]int) int {
		return cmp.Or(cmp.Compare(x[0], y[0]), cmp.Compare(x[1], y[1]), cmp.Compare(x[2], y[2]))
	})
	return slices.Compact(shapes)
}

// Next returns the next batch, starting a new epoch (with a new order) when
// the current one is used up. The slices are new on each call.
func (b *TranslationBatcher) Next() TranslationBatch {
	if len(b.groups) == 0 {
		return TranslationBatch{}
	}
	return makeBatch(b.pairs, b.groups[b.ord.next(1)[0]])
}

// State returns the batcher's position (see LMStream.State).
func (b *TranslationBatcher) State() StreamState {
	return b.ord.state()
}

// Restore moves the batcher to st (taking its Seed), so that Next returns
// what the batcher that produced st would have returned next, provided it
// was built from the same pairs and settings. Epoch must not be negative
// and Pos must be within [0, BatchesPerEpoch()].
func (b *TranslationBatcher) Restore(st StreamState) error {
	return b.ord.restore(st, "translation batcher")
}

// EvalTranslationBatches returns the batches of pairs for evaluation, built
// exactly as NewTranslationBatcher builds them but in their fixed order
// (buckets in ascending shape order) instead of shuffled. Unusable pairs
// are dropped and counted, as in training, not truncated; use each batch's
// Index to map rows back to pairs (and to see which pairs are missing).
// With maxLen < 1 every pair is dropped; maxTokens < 1 gives batches of 1.
func EvalTranslationBatches(pairs []TokenPair, maxTokens, maxLen int) ([]TranslationBatch, LengthStats) {
	groups, st := groupPairs(pairs, maxTokens, maxLen)
	batches := make([]TranslationBatch, len(groups))
	for i, g := range groups {
		batches[i] = makeBatch(pairs, g)
	}
	return batches, st
}

// Shape returns the stream's batch size and sequence length, which every batch has.
func (s *LMStream) Shape() (batch, seqLen int) {
	return s.batch, s.seqLen
}
