package rundata

import (
	"math"
	"os"
	"path/filepath"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer"
	"mqa/models"
	"mqa/train"
)

// FromCheckpoint returns the data settings saved with a loaded checkpoint, with its
// tokenizers; without run.json, the "small" preset's defaults for the task's embedded
// corpus, the windows no longer than the model's max_len.
func FromCheckpoint(m *infer.Model) (*Data, error) {
	d := &Data{Tok: m.Tok, SrcTok: m.SrcTok}
	runPath := filepath.Join(m.Dir, checkpoints.RunFile)
	if _, err := os.Stat(runPath); err == nil {
		if err := checkpoints.ReadJSON(runPath, &d.Settings, 1<<20); err != nil {
			return nil, err
		}
	} else {
		def, _ := models.PresetTraining("small")
		d.Settings = Settings{Task: m.Cfg.Task, SeqLen: min(def.SeqLen, m.Cfg.MaxLen), Batch: def.Batch,
			MaxTokens: def.MaxTokens, MaxLen: m.Cfg.MaxLen}
	}
	return d, nil
}

// SameData tells whether two runs read the same batches in the same order: the same
// data files (compared by identity) and the same data settings. Their validation,
// checkpointing and provenance may differ.
func SameData(a, b Settings) bool {
	for _, f := range [][2]*data.FileID{{a.TrainFile, b.TrainFile}, {a.ValidFile, b.ValidFile}, {a.TestFile, b.TestFile}} {
		if (f[0] == nil) != (f[1] == nil) || (f[0] != nil && *f[0] != *f[1]) {
			return false
		}
	}
	for _, d := range []*Settings{&a, &b} {
		d.EvalEvery, d.CkptEvery, d.Keep, d.EvalBatches, d.UptrainedFrom = 0, 0, 0, 0, nil
		d.TrainFile, d.ValidFile, d.TestFile = nil, nil, nil
	}
	return a == b
}

// Score is a checkpoint's score on held-out text (mqa eval).
type Score struct {
	Checkpoint string  `json:"checkpoint"`
	Data       string  `json:"data"`
	Tokens     int     `json:"tokens"`
	NLL        float64 `json:"nll"` // nats per token
	PPL        float64 `json:"ppl"`
	Words      int     `json:"words,omitempty"`    // LM: whitespace-separated words
	WordPPL    float64 `json:"word_ppl,omitempty"` // LM: exp(total NLL / words)
}

// Evaluate scores the loaded checkpoint m on a split ("valid" or "test") of the data it
// was trained with, or on the file path when it is not empty (see LoadSplit).
func Evaluate(m *infer.Model, split, path string) (Score, error) {
	d, err := FromCheckpoint(m)
	if err != nil {
		return Score{}, err
	}
	batches, words, source, err := d.LoadSplit(split, path)
	if err != nil {
		return Score{}, err
	}
	ev, err := train.Evaluate(m.Cfg, m.Params, batches)
	if err != nil {
		return Score{}, err
	}
	s := Score{Checkpoint: m.Dir, Data: source, Tokens: ev.Tokens, NLL: ev.NLL, PPL: ev.PPL}
	if m.Cfg.Task == models.TaskLM && words > 0 {
		s.Words, s.WordPPL = words, math.Exp(ev.NLL*float64(ev.Tokens)/float64(words))
	}
	return s, nil
}
