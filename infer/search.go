package infer

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampling chooses each next token. Temperature 0 is greedy search (the most likely token;
// ties go to the lowest id). Otherwise the logits are divided by Temperature, restricted
// to the TopK most likely tokens (0: no limit) and then to the smallest set of most likely
// tokens whose probability reaches TopP (0 or 1: no limit), and a token is drawn from what
// is left with a generator seeded by Seed: the same seed gives the same tokens.
type Sampling struct {
	Temperature float64
	TopK        int
	TopP        float64
	Seed        uint64
}

// Validate reports settings that make no sense.
func (s Sampling) Validate() error {
	switch {
	case s.Temperature < 0 || math.IsNaN(s.Temperature) || math.IsInf(s.Temperature, 0):
		return fmt.Errorf("temperature %g must be a finite number ≥ 0", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("top-k %d must be ≥ 0", s.TopK)
	case !(s.TopP >= 0 && s.TopP <= 1):
		return fmt.Errorf("top-p %g must be in [0, 1]", s.TopP)
	}
	return nil
}

// Generate decodes a continuation of each prompt: row r of the stepper first takes in
// prompts[r] (at least one token each; rows may have different lengths) and then its own
// choices, until it chooses eos (which is not returned), has chosen maxNew tokens or has
// filled the stepper's capacity. It returns the chosen tokens of each row. Rows that are
// done take in nothing more (the cached stepper skips their attention). A Ranker is stepped
// with StepTopK at every step, prompt tokens included, when the choice needs only its best
// few tokens: StepTopK(tokens, 1) for greedy search and StepTopK(tokens, TopK) when TopK is
// at most MaxTopK and smaller than the vocabulary; the choice among them is the one made from
// the whole row. When neither top-k nor top-p restricts a sampled choice (TopK 0 or at least the
// vocabulary, TopP 0 or 1), the token is SampleRow's draw, made by a Sampler itself
// (StepSample) where the stepper is one.
func Generate(s Stepper, prompts [][]int, maxNew, eos int, opt Sampling) ([][]int, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if len(prompts) != s.Batch() {
		return nil, fmt.Errorf("generate: %d prompts for a batch of %d", len(prompts), s.Batch())
	}
	if maxNew < 0 {
		return nil, fmt.Errorf("generate: max new tokens %d must be ≥ 0", maxNew)
	}
	for r, p := range prompts {
		if len(p) == 0 || len(p) > s.Capacity() {
			return nil, fmt.Errorf("generate: prompt %d has %d tokens; 1..%d fit", r, len(p), s.Capacity())
		}
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x676e))
	vocab := s.Vocab()
	unrestricted := opt.Temperature > 0 && (opt.TopK == 0 || opt.TopK >= vocab) && (opt.TopP == 0 || opt.TopP == 1)
	ranker, ranked := s.(Ranker)
	k := samplingK(opt, vocab)
	ranked = ranked && k > 0
	sampler, sampled := s.(Sampler)
	sampled = sampled && unrestricted
	u := make([]float64, len(prompts)) // the uniform numbers of the rows that choose at this step
	out := make([][]int, len(prompts))
	fed := make([]int, len(prompts)) // tokens taken in per row
	done := make([]bool, len(prompts))
	tokens := make([]int, len(prompts))
	for r, p := range prompts {
		tokens[r] = p[0]
		done[r] = maxNew == 0
		if done[r] {
			tokens[r] = -1
		}
	}
	order, work := make([]int, vocab), make([]float64, vocab)
	for !allTrue(done) {
		if unrestricted { // drawn before the step, in row order, for the rows that choose at it
			for r := range u {
				u[r] = 0
				if !done[r] && fed[r]+1 >= len(prompts[r]) {
					u[r] = rng.Float64()
				}
			}
		}
		var (
			logits []float32
			ids    []int
			logp   []float32
			drawn  []int
			err    error
		)
		switch {
		case ranked:
			ids, logp, err = stepTopK(ranker, tokens, k)
		case sampled:
			drawn, err = stepSample(sampler, tokens, opt.Temperature, u)
		default:
			logits, err = s.Step(tokens)
		}
		if err != nil {
			return nil, err
		}
		for r := range tokens {
			if done[r] {
				tokens[r] = -1
				continue
			}
			fed[r]++
			if fed[r] < len(prompts[r]) {
				tokens[r] = prompts[r][fed[r]]
				continue
			}
			var tok int
			switch {
			case ranked:
				tok = chooseRanked(ids[r*k:(r+1)*k], logp[r*k:(r+1)*k], opt, rng, work)
			case sampled:
				tok = drawn[r]
			case unrestricted:
				tok = sampleRow(logits[r*vocab:(r+1)*vocab], opt.Temperature, u[r], work)
			default:
				tok = choose(logits[r*vocab:(r+1)*vocab], opt, rng, order, work)
			}
			if tok == eos {
				done[r], tokens[r] = true, -1
				continue
			}
			out[r] = append(out[r], tok)
			if len(out[r]) >= maxNew || fed[r] >= s.Capacity() {
				done[r], tokens[r] = true, -1
				continue
			}
			tokens[r] = tok
		}
	}
	return out, nil
}

// samplingK is how many candidates per row Generate asks a Ranker for under opt: 1 for
// greedy search, TopK when it is at most MaxTopK and restricts the vocabulary, and otherwise
// 0 (the choice needs the whole row, or is SampleRow's).
func samplingK(opt Sampling, vocab int) int {
	switch {
	case opt.Temperature == 0:
		return 1
	case opt.TopK > 0 && opt.TopK <= MaxTopK && opt.TopK < vocab:
		return opt.TopK
	}
	return 0
}

func allTrue(xs []bool) bool {
	for _, x := range xs {
		if !x {
			return false
		}
	}
	return true
}

// choose picks a token from one row of logits; order and work are scratch of the
// vocabulary's size.
func choose(logits []float32, opt Sampling, rng *rand.Rand, order []int, work []float64) int {
	if opt.Temperature == 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	// Most likely first, as TopK ranks them; ties by id, so the order (and the draw) is
	// deterministic. A top-k restriction selects its k without sorting the row.
	var ids []int
	if opt.TopK > 0 && opt.TopK < len(logits) {
		ids = order[:opt.TopK]
		topIDs(logits, ids)
	} else {
		ids = order[:len(logits)]
		for i := range ids {
			ids[i] = i
		}
		slices.SortFunc(ids, func(a, b int) int {
			if c := cmp.Compare(logits[b], logits[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
	}
	// Unnormalised probabilities at the temperature, in the candidates' order.
	m := float64(logits[ids[0]])
	weights := work[:len(ids)]
	for j, id := range ids {
		weights[j] = math.Exp((float64(logits[id]) - m) / opt.Temperature)
	}
	return draw(ids, weights, opt.TopP, rng)
}

// chooseRanked picks a token from one row's ranked candidates, as StepTopK returns them;
// work is scratch of at least len(ids). Given the same candidates it chooses as choose does.
func chooseRanked(ids []int, logp []float32, opt Sampling, rng *rand.Rand, work []float64) int {
	if opt.Temperature == 0 {
		return ids[0]
	}
	weights := work[:len(ids)]
	for j, lp := range logp {
		weights[j] = math.Exp((float64(lp) - float64(logp[0])) / opt.Temperature)
	}
	return draw(ids, weights, opt.TopP, rng)
}

// draw picks one of the candidates ids, most likely first (ties by id), whose unnormalised
// probabilities are weights: it keeps the fewest first candidates whose weight reaches
// topP of the total (0 or 1: all of them) and draws among them with one rng.Float64.
func draw(ids []int, weights []float64, topP float64, rng *rand.Rand) int {
	var total float64
	for _, w := range weights {
		total += w
	}
	if topP > 0 && topP < 1 {
		var cum float64
		for n, w := range weights {
			cum += w
			if cum >= topP*total {
				ids, weights, total = ids[:n+1], weights[:n+1], cum
				break
			}
		}
	}
	u := rng.Float64() * total
	for j, w := range weights {
		u -= w
		if u < 0 {
			return ids[j]
		}
	}
	return ids[len(ids)-1]
}

// LengthPenalty is GNMT's ((5 + n) / 6)^α for a hypothesis of n tokens (counting its EOS).
func LengthPenalty(n int, alpha float64) float64 { return math.Pow((5+float64(n))/6, alpha) }

// Beam configures beam search.
type Beam struct {
	Size  int     // beams per source, k ≥ 1
	Alpha float64 // length penalty exponent α ≥ 0 (Shazeer 2019 and GNMT use 0.6)
	// MaxLen is the most tokens a hypothesis may have, its EOS included; a hypothesis that
	// reaches it without EOS ends there. At most the stepper's capacity.
	MaxLen   int
	BOS, EOS int
}

// Hypothesis is a finished beam: its tokens (without the EOS), the sum of their
// log-probabilities (with the EOS) and that sum divided by the length penalty.
type Hypothesis struct {
	Tokens     []int
	Score      float64
	Normalized float64
}

type beamState struct {
	tokens []int
	score  float64
	row    int
}

// candidate is an extension of a live beam by one token.
type candidate struct {
	score     float64
	beam, tok int
}

// compareCandidates orders candidates best first: by score descending, then by beam, then
// by token (the order in which the extensions of the beams are listed).
func compareCandidates(a, b candidate) int {
	if c := cmp.Compare(b.score, a.score); c != 0 {
		return c
	}
	if c := cmp.Compare(a.beam, b.beam); c != 0 {
		return c
	}
	return cmp.Compare(a.tok, b.tok)
}

// keepBest adds c to best, the n best extensions seen so far in compareCandidates order,
// and keeps the n best: the n first of all the extensions sorted, as they are seen.
func keepBest(best []candidate, c candidate, n int) []candidate {
	if len(best) == n {
		if compareCandidates(c, best[n-1]) >= 0 {
			return best
		}
		best = best[:n-1]
	}
	i, _ := slices.BinarySearchFunc(best, c, compareCandidates)
	return slices.Insert(best, i, c)
}

// BeamSearch decodes n sources with beam search on a stepper of n·Size rows, where rows
// s·Size … s·Size+Size−1 belong to source s (as CPU.Translation makes them). Every
// hypothesis starts after BOS. At each step the 2·Size best extensions of a source's live
// beams are ranked by total log-probability; an EOS among the best Size ends a
// hypothesis, the best Size others stay live and the stepper's rows (its cache) are
// reordered to them. A source is done when it has Size finished hypotheses, has no live
// beam, or no live beam can beat its best finished one even at the longest length; the
// result is the finished hypothesis with the best Score / LengthPenalty(len, Alpha), len
// counting the EOS. With Size 1 this is greedy search. Candidates of equal score rank by
// beam, then by token. A Ranker with 2·Size ≤ MaxTopK and 2·Size ≤ Vocab is stepped with
// StepTopK(tokens, 2·Size), since a source's 2·Size best extensions are among its beams'
// 2·Size best tokens each.
func BeamSearch(s Stepper, n int, opt Beam) ([]Hypothesis, error) {
	if err := checkBeam(s, n, opt); err != nil {
		return nil, err
	}
	b := newBeamSearch(s, n, opt)
	for !allTrue(b.done) {
		var (
			logits []float32
			ids    []int
			top    []float32
			err    error
		)
		if b.ranked {
			ids, top, err = stepTopK(b.ranker, b.tokens, b.width)
		} else {
			logits, err = s.Step(b.tokens)
		}
		if err != nil {
			return nil, err
		}
		for i := range b.parents {
			b.parents[i], b.tokens[i] = i, -1
		}
		for src := range b.live {
			if !b.done[src] {
				b.advance(src, b.rank(src, logits, ids, top))
			}
		}
		if allTrue(b.done) {
			break
		}
		if err := s.Reorder(b.parents); err != nil {
			return nil, err
		}
	}
	return b.results(), nil
}

// checkBeam checks BeamSearch's arguments against the stepper.
func checkBeam(s Stepper, n int, opt Beam) error {
	k := opt.Size
	switch {
	case k < 1:
		return fmt.Errorf("beam search: beam size %d must be at least 1", k)
	case opt.Alpha < 0 || math.IsNaN(opt.Alpha) || math.IsInf(opt.Alpha, 0):
		return fmt.Errorf("beam search: length penalty α = %g must be a finite number ≥ 0", opt.Alpha)
	case n < 1 || s.Batch() != n*k:
		return fmt.Errorf("beam search: %d sources × beam %d for a stepper of %d rows", n, k, s.Batch())
	case opt.MaxLen < 1 || opt.MaxLen > s.Capacity():
		return fmt.Errorf("beam search: max length %d must be in 1..%d", opt.MaxLen, s.Capacity())
	}
	return nil
}

// beamSearch is the state of one BeamSearch: each source's live beams, finished
// hypotheses and whether it is done, and for each stepper row the token it is fed next
// (−1: none) and the row whose cache it continues.
type beamSearch struct {
	opt             Beam
	k, width, vocab int // beam size; extensions ranked per source (2k); vocabulary size
	ranker          Ranker
	ranked          bool // step the Ranker for its width best tokens per row
	live            [][]beamState
	finished        [][]Hypothesis
	done            []bool
	tokens, parents []int
	maxLP           float64     // the length penalty at MaxLen
	cands           []candidate // a source's best extensions, reused
}

func newBeamSearch(s Stepper, n int, opt Beam) *beamSearch {
	k := opt.Size
	b := &beamSearch{opt: opt, k: k, width: 2 * k, vocab: s.Vocab(), live: make([][]beamState, n), finished: make([][]Hypothesis, n),
		done: make([]bool, n), tokens: make([]int, n*k), parents: make([]int, n*k), maxLP: LengthPenalty(opt.MaxLen, opt.Alpha)}
	b.ranker, b.ranked = s.(Ranker)
	b.ranked = b.ranked && b.width <= min(MaxTopK, b.vocab)
	b.cands = make([]candidate, 0, b.width)
	for i := range b.tokens {
		b.tokens[i] = -1
	}
	for src := range b.live {
		b.live[src] = []beamState{{row: src * k}}
		b.tokens[src*k] = opt.BOS
	}
	return b
}

// rank returns the width best extensions of the live beams of source src, from the step's
// logits or, for a Ranker, its best tokens ids and their log-probabilities top.
func (b *beamSearch) rank(src int, logits []float32, ids []int, top []float32) []candidate {
	cands := b.cands[:0]
	for beam, st := range b.live[src] {
		if b.ranked {
			row := st.row * b.width
			for j, tok := range ids[row : row+b.width] {
				cands = keepBest(cands, candidate{score: st.score + float64(top[row+j]), beam: beam, tok: tok}, b.width)
			}
			continue
		}
		row := logits[st.row*b.vocab : (st.row+1)*b.vocab]
		lse := logNormalizer(row)
		for tok, v := range row {
			score := st.score + (float64(v) - lse) // the beam's score plus the token's log-probability
			if len(cands) == b.width && score < cands[b.width-1].score {
				continue // ranks below every kept candidate
			}
			cands = keepBest(cands, candidate{score: score, beam: beam, tok: tok}, b.width)
		}
	}
	b.cands = cands
	return cands
}

// advance takes source src's ranked extensions: it finishes hypotheses, keeps the best k
// others live in the source's rows (their next tokens and parent rows set), and decides
// whether the source is done.
func (b *beamSearch) advance(src int, cands []candidate) {
	next := b.extend(src, cands)
	for j := range next {
		row := src*b.k + j
		b.parents[row], b.tokens[row] = next[j].row, next[j].tokens[len(next[j].tokens)-1]
		next[j].row = row
	}
	b.live[src] = next
	b.done[src] = b.isDone(src)
	if b.done[src] {
		for j := range next {
			b.tokens[src*b.k+j] = -1
		}
	}
}

// extend goes down the ranked extensions: an EOS among the best k ends a hypothesis, an
// extension that reaches MaxLen ends one too, the others become the next live beams, until
// k non-EOS extensions are taken.
func (b *beamSearch) extend(src int, cands []candidate) []beamState {
	var next []beamState
	slots := 0 // non-EOS extensions taken: live beams and those ended by the length limit
	for rank, c := range cands {
		if slots == b.k {
			break
		}
		parent := b.live[src][c.beam]
		length := len(parent.tokens) + 1
		switch {
		case c.tok == b.opt.EOS:
			if rank < b.k { // only an EOS among the best k ends a hypothesis
				b.finished[src] = append(b.finished[src], Hypothesis{Tokens: slices.Clone(parent.tokens),
					Score: c.score, Normalized: c.score / LengthPenalty(length, b.opt.Alpha)})
			}
		case length >= b.opt.MaxLen:
			slots++
			b.finished[src] = append(b.finished[src], Hypothesis{Tokens: append(slices.Clone(parent.tokens), c.tok),
				Score: c.score, Normalized: c.score / LengthPenalty(length, b.opt.Alpha)})
		default:
			slots++
			next = append(next, beamState{tokens: append(slices.Clone(parent.tokens), c.tok), score: c.score, row: parent.row})
		}
	}
	return next
}

// isDone reports whether source src is done: it has k finished hypotheses, no live beam,
// or no live beam that could beat its best finished one even at the longest length.
func (b *beamSearch) isDone(src int) bool {
	fin, next := b.finished[src], b.live[src]
	if len(fin) >= b.k || len(next) == 0 {
		return true
	}
	if len(fin) == 0 {
		return false
	}
	best := math.Inf(-1)
	for _, h := range fin {
		best = math.Max(best, h.Normalized)
	}
	bound := math.Inf(-1)
	for _, st := range next {
		bound = math.Max(bound, st.score/b.maxLP)
	}
	return best >= bound
}

// results are each source's finished hypothesis with the best normalised score.
func (b *beamSearch) results() []Hypothesis {
	out := make([]Hypothesis, len(b.finished))
	for src, fs := range b.finished {
		best := 0
		for i, h := range fs {
			if h.Normalized > fs[best].Normalized {
				best = i
			}
		}
		out[src] = fs[best]
	}
	return out
}

// logNormalizer is log Σ exp(logits): a logit minus it is the token's log-probability.
func logNormalizer(logits []float32) float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		if f := float64(v); f > m || f != f { // NaN wins, as in math.Max
			m = f
		}
	}
	return logSumExp(logits, m)
}
