package rundata

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer"
	"mqa/models"
)

func TestSameData(t *testing.T) {
	file := func(sha string) *data.FileID {
		return &data.FileID{Path: "/d/train.txt", Lines: 10, Bytes: 100, SHA256: sha}
	}
	base := Settings{Task: models.TaskLM, Train: "train.txt", Vocab: 300, SeqLen: 8, Batch: 2, Seed: 1, EvalEvery: 5, TrainFile: file("aa")}
	for _, c := range []struct {
		name   string
		change func(*Settings)
		want   bool
	}{
		{"identical", func(*Settings) {}, true},
		{"the same file, another pointer", func(s *Settings) { s.TrainFile = file("aa") }, true},
		{"validation, checkpointing and provenance differ", func(s *Settings) {
			s.EvalEvery, s.CkptEvery, s.Keep, s.EvalBatches, s.UptrainedFrom = 7, 3, 1, 4, &UptrainSource{Step: 2}
		}, true},
		{"the file changed", func(s *Settings) { s.TrainFile = file("bb") }, false},
		{"no file identity", func(s *Settings) { s.TrainFile = nil }, false},
		{"another seed", func(s *Settings) { s.Seed = 2 }, false},
		{"another batch", func(s *Settings) { s.Batch = 4 }, false},
	} {
		b := base
		c.change(&b)
		if got := SameData(base, b); got != c.want {
			t.Errorf("%s: SameData = %v, want %v", c.name, got, c.want)
		}
		if base.EvalEvery != 5 || base.TrainFile == nil {
			t.Fatalf("%s: SameData changed its argument's caller copy", c.name)
		}
	}
}

func TestFromCheckpoint(t *testing.T) {
	cfg, err := models.Preset("tiny", models.TaskLM, 40)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxLen = 16
	dir := t.TempDir()
	m := &infer.Model{Dir: dir, Cfg: cfg}
	d, err := FromCheckpoint(m)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := models.PresetTraining("small")
	if d.Task != models.TaskLM || d.SeqLen != min(def.SeqLen, 16) || d.Batch != def.Batch || d.MaxLen != 16 {
		t.Errorf("without run.json: %+v, want the small preset's batching within max_len 16", d.Settings)
	}
	saved := Settings{Task: models.TaskLM, Corpus: "lm-en", Vocab: 40, SeqLen: 12, Batch: 3, Seed: 9}
	if err := checkpoints.WriteJSON(filepath.Join(dir, checkpoints.RunFile), saved); err != nil {
		t.Fatal(err)
	}
	if d, err = FromCheckpoint(m); err != nil || d.Settings != saved {
		t.Errorf("with run.json: %+v, %v; want %+v", d.Settings, err, saved)
	}
}

// TestEvaluate scores an untrained tiny LM on a file: the perplexity is exp(NLL), and the
// word perplexity spreads the same total NLL over the file's words.
func TestEvaluate(t *testing.T) {
	tok, err := data.TrainBPE([]string{"the cat sat on the mat", "a dog sat on a log"}, 270)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := models.Preset("tiny", models.TaskLM, tok.VocabSize())
	if err != nil {
		t.Fatal(err)
	}
	params, err := models.InitParams(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(text, []byte("the cat sat on the log\na dog sat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Evaluate(&infer.Model{Dir: dir, Cfg: cfg, Params: params, Tok: tok, SrcTok: tok}, "valid", text)
	if err != nil {
		t.Fatal(err)
	}
	if s.Checkpoint != dir || s.Words != 9 || s.Tokens == 0 || !(s.NLL > 0) || math.Abs(s.PPL-math.Exp(s.NLL)) > 1e-9*s.PPL {
		t.Fatalf("score %+v: want 9 words, tokens, and ppl = exp(nll)", s)
	}
	if want := math.Exp(s.NLL * float64(s.Tokens) / 9); math.Abs(s.WordPPL-want) > 1e-9*want {
		t.Errorf("word ppl %g, want %g", s.WordPPL, want)
	}
}
