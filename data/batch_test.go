package data

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func seqTokens(n int) []int {
	t := make([]int, n)
	for i := range t {
		t[i] = 1000 + i
	}
	return t
}

func TestJoinDocuments(t *testing.T) {
	got := JoinDocuments([][]int{{5, 6}, {}, {7}})
	want := []int{5, 6, EOSID, EOSID, 7, EOSID}
	if !slices.Equal(got, want) {
		t.Fatalf("JoinDocuments = %v, want %v", got, want)
	}
	if got := JoinDocuments(nil); len(got) != 0 {
		t.Fatalf("JoinDocuments(nil) = %v", got)
	}
}

func TestNewLMStreamErrors(t *testing.T) {
	tests := []struct {
		tokens, batch, seqLen int
		wantErr               string
	}{
		{100, 0, 4, "at least 1"},
		{100, 4, 0, "at least 1"},
		{100, 4, -3, "at least 1"},
		{16, 4, 4, "need at least 17"},
		{0, 1, 1, "need at least 2"},
		{1, 1, 1, "need at least 2"},
	}
	for _, tc := range tests {
		_, err := NewLMStream(seqTokens(tc.tokens), tc.batch, tc.seqLen, 1)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("NewLMStream(%d tokens, %d, %d) error %v, want %q", tc.tokens, tc.batch, tc.seqLen, err, tc.wantErr)
		}
	}
	if _, err := NewLMStream(seqTokens(17), 4, 4, 1); err != nil {
		t.Errorf("exactly enough tokens: %v", err)
	}
}

func TestLMStreamWindows(t *testing.T) {
	const n, batch, seqLen = 1003, 3, 10
	tokens := seqTokens(n)
	s, err := NewLMStream(tokens, batch, seqLen, 42)
	if err != nil {
		t.Fatal(err)
	}
	windows := (n - 1) / seqLen // 100
	if got, want := s.BatchesPerEpoch(), windows/batch; got != want {
		t.Fatalf("BatchesPerEpoch = %d, want %d", got, want)
	}
	var firstEpoch, secondEpoch []int
	for e := range 2 {
		seen := map[int]bool{}
		for range s.BatchesPerEpoch() {
			b := s.Next()
			if b.Batch != batch || b.SeqLen != seqLen || len(b.Inputs) != batch*seqLen || len(b.Targets) != batch*seqLen {
				t.Fatalf("bad batch shape %d×%d, %d inputs", b.Batch, b.SeqLen, len(b.Inputs))
			}
			for r := range batch {
				in := b.Inputs[r*seqLen : (r+1)*seqLen]
				tg := b.Targets[r*seqLen : (r+1)*seqLen]
				start := in[0] - 1000
				if start%seqLen != 0 {
					t.Fatalf("window starts at %d, not a multiple of %d", start, seqLen)
				}
				for i := range seqLen {
					if in[i] != tokens[start+i] || tg[i] != tokens[start+i+1] {
						t.Fatalf("window at %d: inputs/targets are not the stream shifted by one", start)
					}
				}
				if seen[start] {
					t.Fatalf("window %d twice in epoch %d", start, e)
				}
				seen[start] = true
				if e == 0 {
					firstEpoch = append(firstEpoch, start)
				} else {
					secondEpoch = append(secondEpoch, start)
				}
			}
		}
		if len(seen) != s.BatchesPerEpoch()*batch {
			t.Fatalf("epoch %d saw %d windows", e, len(seen))
		}
	}
	if slices.Equal(firstEpoch, secondEpoch) {
		t.Fatal("the second epoch has the same order as the first")
	}
}

func TestLMStreamCoversAllWindows(t *testing.T) {
	// With batch 1 every window is used each epoch, so together they cover
	// every target position 1..windows*seqLen.
	tokens := seqTokens(41)
	s, err := NewLMStream(tokens, 1, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	covered := make([]int, len(tokens))
	for range s.BatchesPerEpoch() {
		b := s.Next()
		for _, tg := range b.Targets {
			covered[tg-1000]++
		}
	}
	for i := 1; i < len(tokens); i++ {
		if covered[i] != 1 {
			t.Fatalf("target position %d covered %d times", i, covered[i])
		}
	}
}

func TestLMStreamRestore(t *testing.T) {
	tokens := seqTokens(500)
	for _, stop := range []int{0, 1, 5, 12, 13, 30} {
		ref, _ := NewLMStream(tokens, 4, 9, 77)
		var want []LMBatch
		for range stop + 20 {
			want = append(want, ref.Next())
		}
		a, _ := NewLMStream(tokens, 4, 9, 77)
		for range stop {
			a.Next()
		}
		data, err := json.Marshal(a.State())
		if err != nil {
			t.Fatal(err)
		}
		var st StreamState
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		b, _ := NewLMStream(tokens, 4, 9, 0) // the seed comes from the state
		if err := b.Restore(st); err != nil {
			t.Fatal(err)
		}
		for i := stop; i < len(want); i++ {
			if got := b.Next(); !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("stop %d: batch %d after Restore differs", stop, i)
			}
		}
	}
	s, _ := NewLMStream(tokens, 4, 9, 1)
	for _, bad := range []StreamState{{Epoch: -1}, {Pos: -1}, {Pos: s.BatchesPerEpoch() + 1}} {
		if err := s.Restore(bad); err == nil {
			t.Errorf("Restore(%+v): no error", bad)
		}
	}
}

func TestLMStreamSeeds(t *testing.T) {
	tokens := seqTokens(2000)
	a, _ := NewLMStream(tokens, 2, 10, 1)
	b, _ := NewLMStream(tokens, 2, 10, 1)
	c, _ := NewLMStream(tokens, 2, 10, 2)
	same, diff := true, false
	for range 20 {
		x, y, z := a.Next(), b.Next(), c.Next()
		same = same && reflect.DeepEqual(x, y)
		diff = diff || !reflect.DeepEqual(x, z)
	}
	if !same || !diff {
		t.Fatalf("same seed equal: %v, other seed different: %v", same, diff)
	}
}

func TestEvalWindows(t *testing.T) {
	tests := []struct {
		n, seqLen int
		wantLens  []int
	}{
		{0, 4, nil},
		{1, 4, nil},
		{2, 4, []int{1}},
		{9, 4, []int{4, 4}},
		{10, 4, []int{4, 4, 1}},
		{12, 4, []int{4, 4, 3}},
		{5, 1, []int{1, 1, 1, 1}},
		{5, 0, nil},
		{5, -1, nil},
		{5, int(^uint(0) >> 1), []int{4}}, // no overflow with a huge seqLen
	}
	for _, tc := range tests {
		tokens := seqTokens(tc.n)
		inputs, targets := EvalWindows(tokens, tc.seqLen)
		var lens []int
		var allTargets []int
		for i := range inputs {
			lens = append(lens, len(inputs[i]))
			if len(targets[i]) != len(inputs[i]) {
				t.Fatalf("n=%d: window %d has %d inputs and %d targets", tc.n, i, len(inputs[i]), len(targets[i]))
			}
			for j := range inputs[i] {
				if targets[i][j] != inputs[i][j]+1 {
					t.Fatalf("n=%d: targets are not inputs shifted by one", tc.n)
				}
			}
			allTargets = append(allTargets, targets[i]...)
		}
		if !slices.Equal(lens, tc.wantLens) {
			t.Errorf("EvalWindows(%d tokens, %d) lengths %v, want %v", tc.n, tc.seqLen, lens, tc.wantLens)
		}
		if tc.n >= 2 && tc.seqLen >= 1 && !slices.Equal(allTargets, tokens[1:]) {
			t.Errorf("EvalWindows(%d tokens, %d): targets do not cover tokens[1:] once", tc.n, tc.seqLen)
		}
	}
}

// makePairs returns pairs with the given source and target lengths; ids
// encode the pair number so rows can be checked.
func makePairs(lens [][2]int) []TokenPair {
	pairs := make([]TokenPair, len(lens))
	for i, l := range lens {
		for j := range l[0] {
			pairs[i].Src = append(pairs[i].Src, 1000*(i+1)+j)
		}
		for j := range l[1] {
			pairs[i].Tgt = append(pairs[i].Tgt, 1000*(i+1)+500+j)
		}
	}
	return pairs
}

// checkBatch verifies padding, BOS/EOS, lengths and Index of one batch.
func checkBatch(t *testing.T, pairs []TokenPair, b TranslationBatch) {
	t.Helper()
	if len(b.Src) != b.Batch*b.SrcLen || len(b.TgtIn) != b.Batch*b.TgtLen || len(b.TgtOut) != b.Batch*b.TgtLen ||
		len(b.SrcLens) != b.Batch || len(b.TgtLens) != b.Batch || len(b.Index) != b.Batch {
		t.Fatalf("batch slices do not match shape %d×%d/%d", b.Batch, b.SrcLen, b.TgtLen)
	}
	if b.SrcLen%8 != 0 && b.SrcLen != 24 || b.TgtLen%8 != 0 && b.TgtLen != 24 {
		t.Fatalf("lengths %d/%d are not bucket lengths", b.SrcLen, b.TgtLen)
	}
	for r, i := range b.Index {
		p := pairs[i]
		src := b.Src[r*b.SrcLen : (r+1)*b.SrcLen]
		in := b.TgtIn[r*b.TgtLen : (r+1)*b.TgtLen]
		out := b.TgtOut[r*b.TgtLen : (r+1)*b.TgtLen]
		wantSrc := append(slices.Clone(p.Src), make([]int, b.SrcLen-len(p.Src))...)
		wantIn := append(append([]int{BOSID}, p.Tgt...), make([]int, b.TgtLen-len(p.Tgt)-1)...)
		wantOut := append(append(slices.Clone(p.Tgt), EOSID), make([]int, b.TgtLen-len(p.Tgt)-1)...)
		if !slices.Equal(src, wantSrc) || !slices.Equal(in, wantIn) || !slices.Equal(out, wantOut) {
			t.Fatalf("row %d (pair %d) is not padded correctly:\nsrc %v\nin  %v\nout %v", r, i, src, in, out)
		}
		if b.SrcLens[r] != len(p.Src) || b.TgtLens[r] != len(p.Tgt)+1 {
			t.Fatalf("row %d lengths %d/%d, want %d/%d", r, b.SrcLens[r], b.TgtLens[r], len(p.Src), len(p.Tgt)+1)
		}
	}
}

func TestTranslationBatcher(t *testing.T) {
	var lens [][2]int
	for i := range 300 {
		lens = append(lens, [2]int{1 + i*7%23, i * 5 % 22})
	}
	lens = append(lens, [2]int{25, 3}, [2]int{3, 24}, [2]int{0, 3}, [2]int{24, 23}) // too long, too long, empty, kept
	pairs := makePairs(lens)
	const maxTokens, maxLen = 64, 24
	b, st, err := NewTranslationBatcher(pairs, maxTokens, maxLen, 9)
	if err != nil {
		t.Fatal(err)
	}
	want := LengthStats{Kept: 301, Dropped: 3, TooLong: 2, EmptySrc: 1, MaxSrc: 25, MaxTgt: 24}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	seen := map[int]int{}
	shapes := map[[3]int]bool{}
	for range b.BatchesPerEpoch() {
		batch := b.Next()
		checkBatch(t, pairs, batch)
		if batch.Batch > max(1, maxTokens/max(batch.SrcLen, batch.TgtLen)) {
			t.Fatalf("batch of %d rows × %d/%d exceeds maxTokens", batch.Batch, batch.SrcLen, batch.TgtLen)
		}
		shapes[[3]int{batch.Batch, batch.SrcLen, batch.TgtLen}] = true
		for _, i := range batch.Index {
			seen[i]++
		}
	}
	if len(seen) != st.Kept {
		t.Fatalf("epoch covered %d pairs, want %d", len(seen), st.Kept)
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("pair %d used %d times in an epoch", i, n)
		}
	}
	for _, i := range []int{300, 301, 302} {
		if seen[i] != 0 {
			t.Fatalf("dropped pair %d was used", i)
		}
	}
	got := b.Shapes()
	sizes := map[int]int{} // padded length -> number of batch sizes
	longest := 0
	for _, s := range got {
		if s[1] != s[2] {
			t.Fatalf("shape %v: source and target lengths differ", s)
		}
		sizes[s[1]]++
		longest = max(longest, s[1])
	}
	for l, n := range sizes {
		if n > 1 && !(l == longest && n == 2) {
			t.Fatalf("length %d has %d batch sizes: %v", l, n, got)
		}
	}
	if len(got) != len(shapes) {
		t.Fatalf("Shapes() has %d shapes, batches had %d", len(got), len(shapes))
	}
	for _, s := range got {
		if !shapes[s] {
			t.Fatalf("Shapes() lists %v, never seen", s)
		}
	}
}

func TestTranslationBatcherRestore(t *testing.T) {
	var lens [][2]int
	for i := range 200 {
		lens = append(lens, [2]int{1 + i%30, 1 + i*3%30})
	}
	pairs := makePairs(lens)
	ref, _, err := NewTranslationBatcher(pairs, 100, 32, 5)
	if err != nil {
		t.Fatal(err)
	}
	per := ref.BatchesPerEpoch()
	var want []TranslationBatch
	for range 3 * per {
		want = append(want, ref.Next())
	}
	for _, stop := range []int{0, 1, per - 1, per, per + 3, 2 * per} {
		a, _, _ := NewTranslationBatcher(pairs, 100, 32, 5)
		for range stop {
			a.Next()
		}
		b, _, _ := NewTranslationBatcher(pairs, 100, 32, 999)
		if err := b.Restore(a.State()); err != nil {
			t.Fatal(err)
		}
		for i := stop; i < len(want); i++ {
			if got := b.Next(); !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("stop %d: batch %d after Restore differs", stop, i)
			}
		}
	}
	if err := ref.Restore(StreamState{Pos: per + 1}); err == nil {
		t.Fatal("Restore past the end of an epoch: no error")
	}
}

func TestTranslationBatcherErrors(t *testing.T) {
	pairs := makePairs([][2]int{{40, 2}, {0, 1}})
	tests := []struct {
		maxTokens, maxLen int
		wantErr           string
	}{
		{0, 10, "at least 1"},
		{10, 0, "at least 1"},
		{100, 32, "no usable pairs among 2 (1 too long for maxLen 32, 1 with empty source)"},
	}
	for _, tc := range tests {
		_, _, err := NewTranslationBatcher(pairs, tc.maxTokens, tc.maxLen, 1)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("NewTranslationBatcher(%d, %d) error %v, want %q", tc.maxTokens, tc.maxLen, err, tc.wantErr)
		}
	}
}

func TestEvalTranslationBatches(t *testing.T) {
	lens := [][2]int{{3, 3}, {20, 2}, {2, 20}, {9, 9}, {4, 2}, {40, 1}, {0, 0}, {5, 6}}
	pairs := makePairs(lens)
	batches, st := EvalTranslationBatches(pairs, 32, 24)
	if want := (LengthStats{Kept: 6, Dropped: 2, TooLong: 1, EmptySrc: 1, MaxSrc: 40, MaxTgt: 20}); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	var order []int
	for _, b := range batches {
		checkBatch(t, pairs, b)
		order = append(order, b.Index...)
	}
	// Buckets ascend by length. Bucket 8 (pairs 0, 4, 7) has fewer pairs
	// than one batch of 32/8 = 4, so they move up to bucket 16 with pair 3
	// and make two batches of 2; bucket 24 has batches of 1.
	if want := []int{0, 4, 7, 3, 1, 2}; !slices.Equal(order, want) {
		t.Fatalf("pair order %v, want %v", order, want)
	}
	again, _ := EvalTranslationBatches(pairs, 32, 24)
	if !reflect.DeepEqual(batches, again) {
		t.Fatal("EvalTranslationBatches is not deterministic")
	}
	// Odd arguments do not panic.
	if b, st := EvalTranslationBatches(pairs, 0, 0); len(b) != 0 || st.Dropped != len(pairs) {
		t.Fatalf("maxLen 0: %d batches, stats %+v", len(b), st)
	}
	if b, _ := EvalTranslationBatches(pairs, -5, 24); len(b) != 6 {
		t.Fatalf("maxTokens -5: %d batches, want one per pair", len(b))
	}
}

func TestZeroValues(t *testing.T) {
	var s LMStream
	if b := s.Next(); b.Batch != 0 || len(b.Inputs) != 0 {
		t.Fatalf("zero LMStream gave %+v", b)
	}
	var tb TranslationBatcher
	if b := tb.Next(); b.Batch != 0 || len(tb.Shapes()) != 0 {
		t.Fatalf("zero TranslationBatcher gave %+v", b)
	}
}

func TestBucketLen(t *testing.T) {
	tests := []struct{ n, maxLen, want int }{
		{1, 64, 8}, {8, 64, 8}, {9, 64, 16}, {63, 64, 64}, {64, 64, 64}, {61, 62, 62}, {3, 5, 5},
	}
	for _, tc := range tests {
		if got := bucketLen(tc.n, tc.maxLen); got != tc.want {
			t.Errorf("bucketLen(%d, %d) = %d, want %d", tc.n, tc.maxLen, got, tc.want)
		}
	}
}

func TestPermutation(t *testing.T) {
	for _, n := range []int{0, 1, 2, 10, 1000} {
		p := permutation(n, 3, 4)
		s := slices.Sorted(slices.Values(p))
		for i := range n {
			if s[i] != i {
				t.Fatalf("permutation(%d) is not a permutation", n)
			}
		}
		if !slices.Equal(p, permutation(n, 3, 4)) {
			t.Fatal("permutation is not deterministic")
		}
	}
	// Pin the order so a change in the shuffle (which would change every
	// training run) is noticed.
	if got, want := permutation(8, 1, 0), []int{1, 5, 4, 6, 7, 2, 0, 3}; !slices.Equal(got, want) {
		t.Fatalf("permutation(8, 1, 0) = %v, want %v", got, want)
	}
	if got, want := permutation(8, 1, 1), []int{3, 7, 2, 5, 1, 4, 6, 0}; !slices.Equal(got, want) {
		t.Fatalf("permutation(8, 1, 1) = %v, want %v", got, want)
	}
}
