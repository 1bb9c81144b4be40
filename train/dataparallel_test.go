package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"mqa/data"
	"mqa/models"
)

// lmUpdates cuts the test text into steps updates of accum micro-batches of rows windows.
func lmUpdates(t *testing.T, steps, accum, rows int) (vocab int, updates [][]Batch) {
	t.Helper()
	tok, ids := lmText(t)
	stream, err := data.NewLMStream(ids, rows, 16, 5)
	if err != nil {
		t.Fatal(err)
	}
	for range steps {
		var micro []Batch
		for range accum {
			micro = append(micro, FromLM(stream.Next()))
		}
		updates = append(updates, micro)
	}
	return tok.VocabSize(), updates
}

// translationUpdates makes steps updates of one translation batch each whose sources and
// targets have different lengths, so that rows hold different numbers of target tokens.
func translationUpdates(steps int) [][]Batch {
	const vocab, rows, srcLen, tgtLen = 12, 5, 7, 8
	rng := rand.New(rand.NewPCG(3, 4))
	var updates [][]Batch
	for range steps {
		b := Batch{Shape: models.Shape{Batch: rows, SrcLen: srcLen, TgtLen: tgtLen}}
		for range rows {
			n := 1 + rng.IntN(srcLen)
			m := 1 + rng.IntN(tgtLen-1)
			src, in, out := make([]int, srcLen), make([]int, tgtLen), make([]int, tgtLen)
			for j := range n {
				src[j] = 3 + rng.IntN(vocab-3)
			}
			in[0] = data.BOSID
			for j := range m {
				in[j+1] = 3 + rng.IntN(vocab-3)
				out[j] = in[j+1]
			}
			out[m] = data.EOSID
			b.Src, b.SrcLens = append(b.Src, src...), append(b.SrcLens, n)
			b.Tokens, b.Targets = append(b.Tokens, in...), append(b.Targets, out...)
		}
		updates = append(updates, []Batch{b})
	}
	return updates
}

// trainRanks trains on the updates with ranks CPU ranks and returns each step's stats.
func trainRanks(t *testing.T, cfg models.Config, updates [][]Batch, ranks int) ([]StepStats, *Trainer) {
	t.Helper()
	s := DefaultSettings(len(updates))
	s.Accum, s.Seed, s.LabelSmoothing = len(updates[0]), 11, 0.1
	s.Schedule.Warmup = 2
	tr, err := NewTrainerRanks(cfg, nil, s, "cpu", ranks)
	if err != nil {
		t.Fatal(err)
	}
	var stats []StepStats
	for _, micro := range updates {
		st, err := tr.TrainStep(micro)
		if err != nil {
			t.Fatal(err)
		}
		stats = append(stats, st)
	}
	if tr.Ranks() != ranks {
		t.Errorf("trainer has %d ranks, want %d", tr.Ranks(), ranks)
	}
	// Every rank applied the same update from the same summed gradient.
	if ranks > 1 {
		for _, rep := range tr.exec.(*dataParallel).replicas {
			sameParams(t, tr, rep, "on rank 0 and a replica")
		}
	}
	return stats, tr
}

// close reports whether a and b agree to a relative tolerance.
func closeTo(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// TestDataParallelMatchesOneRank: the same global batch on 2 and 3 ranks gives the losses
// and gradient norms of one rank, whether the ranks take whole micro-batches or slices of
// rows with different numbers of target tokens.
func TestDataParallelMatchesOneRank(t *testing.T) {
	const steps = 4
	vocab, lm := lmUpdates(t, steps, 2, 6)
	lmCfg := tinyCfg(models.TaskLM, vocab, 2)
	dropCfg := lmCfg
	dropCfg.Dropout = 0.1 // whole micro-batches keep the dropout masks of one rank
	cases := []struct {
		name    string
		cfg     models.Config
		updates [][]Batch
		ranks   []int
	}{
		{"lm, 2 micro-batches", lmCfg, lm, []int{2, 3}},
		{"lm with dropout, micro-batches dealt", dropCfg, lm, []int{2}},
		{"translation, padded rows split", tinyCfg(models.TaskTranslate, 12, 1), translationUpdates(steps), []int{2, 3}},
	}
	for _, c := range cases {
		want, one := trainRanks(t, c.cfg, c.updates, 1)
		for _, n := range c.ranks {
			got, tr := trainRanks(t, c.cfg, c.updates, n)
			for i := range want {
				if !closeTo(got[i].Loss, want[i].Loss, 1e-5) || !closeTo(got[i].GradNorm, want[i].GradNorm, 1e-4) || got[i].Tokens != want[i].Tokens {
					t.Errorf("%s, %d ranks, step %d: loss %.7f, grad norm %.6f, %d tokens; one rank: %.7f, %.6f, %d",
						c.name, n, i+1, got[i].Loss, got[i].GradNorm, got[i].Tokens, want[i].Loss, want[i].GradNorm, want[i].Tokens)
				}
			}
			if d := maxParamDiff(one, tr); d > 1e-4 {
				t.Errorf("%s, %d ranks: parameters differ from one rank's by up to %g", c.name, n, d)
			}
			tr.Close()
		}
		one.Close()
	}
}

// maxParamDiff is the largest absolute difference between two trainers' parameters.
func maxParamDiff(a, b *Trainer) float64 {
	var d float64
	for _, name := range a.ParamNames() {
		x, y := a.Params.Get(name).Data().([]float32), b.Params.Get(name).Data().([]float32)
		for i := range x {
			d = max(d, math.Abs(float64(x[i]-y[i])))
		}
	}
	return d
}

// TestResumeOnOtherRanks: a run on 2 ranks, interrupted and resumed on 3 ranks from rank
// 0's checkpoint, follows the loss curve of an uninterrupted run on one rank.
func TestResumeOnOtherRanks(t *testing.T) {
	const steps = 8
	tok, ids := lmText(t)
	cfg := tinyCfg(models.TaskLM, tok.VocabSize(), 2)
	s := DefaultSettings(steps)
	s.Seed = 7
	source := func() LMSource {
		stream, err := data.NewLMStream(ids, 6, 16, 3)
		if err != nil {
			t.Fatal(err)
		}
		return LMSource{stream}
	}
	opts := func(dir string) RunOptions { return RunOptions{Out: dir, CheckpointEvery: 4} }

	full := t.TempDir()
	one, err := NewTrainerRanks(cfg, nil, s, "cpu", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if _, err := one.Run(context.Background(), source(), opts(full)); err != nil {
		t.Fatal(err)
	}

	part := t.TempDir()
	two, err := NewTrainerRanks(cfg, nil, s, "cpu", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer two.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := two.Run(ctx, &stopSource{Source: source(), n: 5, cancel: cancel}, opts(part)); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run returned %v", err)
	}
	three, st, _, err := ResumeRanks(part, "cpu", 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer three.Close()
	if st.Step != 5 || three.Ranks() != 3 {
		t.Fatalf("resumed at step %d on %d ranks, want step 5 on 3", st.Step, three.Ranks())
	}
	src := source()
	if err := src.Restore(st.Data); err != nil {
		t.Fatal(err)
	}
	if _, err := three.Run(context.Background(), src, opts(part)); err != nil {
		t.Fatal(err)
	}
	a, b := lossCurve(t, full), lossCurve(t, part)
	if len(a) != steps || len(b) != steps {
		t.Fatalf("logged %d and %d steps, want %d", len(a), len(b), steps)
	}
	for step, la := range a {
		if !closeTo(b[step], la, 1e-5) {
			t.Errorf("step %d: loss %.7f on one rank, %.7f on 2 then 3 ranks", step, la, b[step])
		}
	}
	if d := maxParamDiff(one, three); d > 1e-4 {
		t.Errorf("final parameters differ by up to %g", d)
	}
}

func TestCheckRanks(t *testing.T) {
	for _, c := range []struct {
		device string
		ranks  int
		ok     bool
	}{{"cpu", 1, true}, {"cpu", 4, true}, {"cpu", 0, false}, {"tpu", 2, false}} {
		if err := CheckRanks(c.device, c.ranks); (err == nil) != c.ok {
			t.Errorf("%s × %d: %v", c.device, c.ranks, err)
		}
	}
}
