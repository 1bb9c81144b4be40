package rundata

import (
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
