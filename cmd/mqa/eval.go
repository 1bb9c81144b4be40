package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer"
	"mqa/models"
	"mqa/train"
)

func init() {
	commands["eval"] = command{"perplexity of a checkpoint on held-out text", runEval}
}

// evalResult is what mqa eval prints.
type evalResult struct {
	Checkpoint string  `json:"checkpoint"`
	Data       string  `json:"data"`
	Tokens     int     `json:"tokens"`
	NLL        float64 `json:"nll"` // nats per token
	PPL        float64 `json:"ppl"`
	Words      int     `json:"words,omitempty"`    // LM: whitespace-separated words
	WordPPL    float64 `json:"word_ppl,omitempty"` // LM: exp(total NLL / words)
}

func runEval(args []string) error {
	fs := newFlags("eval", "-ckpt DIR [-split valid|test | -data FILE] [-json]")
	ckpt := fs.String("ckpt", "", "checkpoint directory (or a run directory: its newest complete checkpoint)")
	split := fs.String("split", "valid", "split of the checkpoint's data: valid or test")
	path := fs.String("data", "", "a file to score instead (text for an LM, TSV for translation)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	allowNonFinite := fs.Bool("allow-nonfinite", false, "load weights that hold NaN or infinite values (refused by default)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *ckpt == "" {
		return fmt.Errorf("eval: -ckpt is required: %w", errUsage)
	}
	if *split != "valid" && *split != "test" {
		return fmt.Errorf("eval: -split %q (allowed: valid, test): %w", *split, errUsage)
	}
	m, err := infer.LoadWith(*ckpt, models.LoadOptions{AllowNonFinite: *allowNonFinite})
	if err != nil {
		return err
	}
	d, err := checkpointData(m)
	if err != nil {
		return err
	}
	batches, words, source, err := d.loadSplit(*split, *path)
	if err != nil {
		return err
	}
	ev, err := train.Evaluate(m.Cfg, m.Params, batches)
	if err != nil {
		return err
	}
	r := evalResult{Checkpoint: m.Dir, Data: source, Tokens: ev.Tokens, NLL: ev.NLL, PPL: ev.PPL}
	if m.Cfg.Task == models.TaskLM && words > 0 {
		r.Words, r.WordPPL = words, math.Exp(ev.NLL*float64(ev.Tokens)/float64(words))
	}
	if *asJSON {
		for _, v := range []float64{r.NLL, r.PPL, r.WordPPL} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("eval: %s scores NLL %g on %s, which JSON cannot hold; run without -json to see the numbers", m.Dir, r.NLL, source)
			}
		}
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("checkpoint  %s\ndata        %s\ntokens      %d\nnll         %.4f nats/token\nperplexity  %.3f\n", r.Checkpoint, r.Data, r.Tokens, r.NLL, r.PPL)
	if r.Words > 0 {
		fmt.Printf("words       %d\nword ppl    %.3f\n", r.Words, r.WordPPL)
	}
	return nil
}

// loadSplit reads and batches only what eval scores: the file at path when given, else
// split of the run's data (after checking that a data file is still the one the run
// recorded). It returns the batches, the words of an LM text and the data's name.
func (d *dataSpec) loadSplit(split, path string) ([]train.Batch, int, string, error) {
	if d.Corpus == "" {
		d.Corpus = defaultCorpus(d.Task)
	}
	source := d.Corpus + "/" + split
	if path == "" {
		f := dataFile{"valid", &d.Valid, &d.ValidFile}
		if split == "test" {
			f = dataFile{"test", &d.Test, &d.TestFile}
		}
		if err := d.checkFiles(f); err != nil {
			return nil, 0, "", fmt.Errorf("eval: %w", err)
		}
		if path = *f.path; path != "" {
			source = path
		}
	} else {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, 0, "", err
		}
		path, source = abs, abs
	}
	if d.Task == models.TaskTranslate {
		pairs, err := data.LoadTSV(path, d.Corpus, split)
		if err != nil {
			return nil, 0, "", err
		}
		batches, _, _ := d.evalTranslation(split, pairs)
		return batches, 0, source, nil
	}
	docs, err := data.LoadText(path, d.Corpus, split)
	if err != nil {
		return nil, 0, "", err
	}
	return lmEvalBatches(d.tok, docs, d.SeqLen, d.Batch), countWords(docs), source, nil
}

// checkpointData returns the data settings saved with a loaded checkpoint, with its
// tokenizers; without run.json, the preset defaults of the task's embedded corpus.
func checkpointData(m *infer.Model) (*dataSpec, error) {
	d := &dataSpec{tok: m.Tok, srcTok: m.SrcTok}
	runPath := filepath.Join(m.Dir, checkpoints.RunFile)
	if _, err := os.Stat(runPath); err == nil {
		if err := checkpoints.ReadJSON(runPath, &d.dataSettings, 1<<20); err != nil {
			return nil, err
		}
	} else {
		def := presetDefaults["small"]
		d.dataSettings = dataSettings{Task: m.Cfg.Task, SeqLen: min(def.seqLen, m.Cfg.MaxLen), Batch: def.batch,
			MaxTokens: def.maxTokens, MaxLen: m.Cfg.MaxLen}
	}
	return d, nil
}
