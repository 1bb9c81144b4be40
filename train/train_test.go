package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"mqa/data"
	"mqa/models"
)

// tinyCfg is a model small enough to train in seconds.
func tinyCfg(task string, vocab, kv int) models.Config {
	return models.Config{Task: task, Vocab: vocab, Dim: 32, Layers: 2, EncoderLayers: map[bool]int{true: 1}[task == models.TaskTranslate],
		Heads: 4, KVHeads: kv, HeadDim: 8, FFDim: 64, Activation: "relu", Norm: "layer", Positions: "sinusoidal",
		MaxLen: 32, TieEmbeddings: true}
}

// lmBatches cuts a text into LM batches with a byte-level tokenizer.
func lmText(t *testing.T) (*data.Tokenizer, []int) {
	t.Helper()
	lines, err := data.LoadText("", "lm-en", "train")
	if err != nil {
		t.Fatal(err)
	}
	text := lines[3] + " " + lines[4]
	tok, err := data.TrainBPE([]string{text}, 300)
	if err != nil {
		t.Fatal(err)
	}
	return tok, tok.Encode(text)
}

// TestTinyLMOverfits trains MHA and MQA LMs on two paragraphs of real text.
func TestTinyLMOverfits(t *testing.T) {
	tok, ids := lmText(t)
	for _, kv := range []int{4, 1} {
		s := DefaultSettings(150)
		s.Schedule = Schedule{Kind: ScheduleConstant, Peak: 3e-3, Warmup: 10}
		tr, err := NewTrainer(tinyCfg(models.TaskLM, tok.VocabSize(), kv), nil, s, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		stream, err := data.NewLMStream(ids, 4, 16, 1)
		if err != nil {
			t.Fatal(err)
		}
		var first, last float64
		for i := 0; i < s.Steps; i++ {
			st, err := tr.TrainStep([]Batch{FromLM(stream.Next())})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = st.Loss
			}
			last = st.Loss
		}
		// Uniform guessing costs ln(V) ≈ 5.7 nats; memorising two paragraphs must go far below.
		if !(last < 1.5) || !(first > 4) {
			t.Errorf("kv=%d: loss went from %.3f to %.3f, want from > 4 to < 1.5", kv, first, last)
		}
		t.Logf("kv=%d: loss %.3f → %.3f", kv, first, last)
	}
}

// TestTinySeq2SeqReverses trains translation models to reverse random sequences.
func TestTinySeq2SeqReverses(t *testing.T) {
	const vocab, n, length = 12, 8, 6
	rng := rand.New(rand.NewPCG(1, 2))
	batch := func() Batch {
		b := Batch{Shape: models.Shape{Batch: n, SrcLen: length, TgtLen: length + 1}}
		for i := 0; i < n; i++ {
			seq := make([]int, length)
			for j := range seq {
				seq[j] = 3 + rng.IntN(vocab-3)
			}
			b.Src = append(b.Src, seq...)
			b.SrcLens = append(b.SrcLens, length)
			rev := make([]int, length)
			for j, v := range seq {
				rev[length-1-j] = v
			}
			b.Tokens = append(append(b.Tokens, data.BOSID), rev...)
			b.Targets = append(append(b.Targets, rev...), data.EOSID)
		}
		return b
	}
	for _, kv := range []int{4, 1} {
		s := DefaultSettings(300)
		s.Schedule = Schedule{Kind: ScheduleConstant, Peak: 3e-3, Warmup: 20}
		tr, err := NewTrainer(tinyCfg(models.TaskTranslate, vocab, kv), nil, s, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < s.Steps; i++ {
			if _, err := tr.TrainStep([]Batch{batch()}); err != nil {
				t.Fatal(err)
			}
		}
		ev, err := tr.Evaluate([]Batch{batch(), batch()})
		if err != nil {
			t.Fatal(err)
		}
		// ln(9) ≈ 2.2 nats for a guess; reversing fresh sequences must be learnt.
		if ev.NLL > 0.3 {
			t.Errorf("kv=%d: held-out NLL %.3f after %d steps, want < 0.3", kv, ev.NLL, s.Steps)
		}
		t.Logf("kv=%d: held-out NLL %.4f", kv, ev.NLL)
	}
}

func TestSchedule(t *testing.T) {
	s := Schedule{Kind: ScheduleInvSqrt, Peak: 1, Warmup: 4}
	for step, want := range map[int]float64{1: 0.25, 4: 1, 16: 0.5} {
		if got := s.LR(step); math.Abs(got-want) > 1e-12 {
			t.Errorf("invsqrt step %d: %g want %g", step, got, want)
		}
	}
	c := Schedule{Kind: ScheduleCosine, Peak: 1, Min: 0.1, Warmup: 0, Total: 10}
	if got := c.LR(10); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("cosine end: %g", got)
	}
	if got := c.LR(5); math.Abs(got-0.55) > 1e-12 {
		t.Errorf("cosine middle: %g", got)
	}
}

// TestAccumulationAveragesGradients: accumulating two identical micro-batches must give
// exactly the update of one of them alone (the average of two equal gradients).
func TestAccumulationAveragesGradients(t *testing.T) {
	tok, ids := lmText(t)
	stream, err := data.NewLMStream(ids, 4, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := FromLM(stream.Next())
	run := func(micro []Batch) *Trainer {
		s := DefaultSettings(3)
		s.Accum = len(micro)
		tr, err := NewTrainer(tinyCfg(models.TaskLM, tok.VocabSize(), 2), nil, s, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := tr.TrainStep(micro); err != nil {
				t.Fatal(err)
			}
		}
		return tr
	}
	sameParams(t, run([]Batch{b}), run([]Batch{b, b}), "with one micro-batch and with two equal ones")
}

// sameParams fails unless a and b hold bit-identical parameters; what names the two runs.
func sameParams(t *testing.T, a, b *Trainer, what string) {
	t.Helper()
	for _, name := range a.ParamNames() {
		x, y := a.Params.Get(name).Data().([]float32), b.Params.Get(name).Data().([]float32)
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s[%d]: %g and %g %s", name, i, x[i], y[i], what)
			}
		}
	}
}
