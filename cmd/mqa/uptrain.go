package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"mqa/data"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mqa/checkpoints"
	"mqa/infer"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

func init() {
	commands["uptrain"] = command{"pool a trained model's key/value heads (MHA → GQA/MQA) and continue training it", runUptrain}
}

func runUptrain(args []string) error {
	ctx, stop := signalContext()
	defer stop()
	return uptrain(ctx, args)
}

// uptrain converts a checkpoint and trains the converted model; a cancelled ctx stops the
// training after a checkpoint, as for mqa train.
func uptrain(ctx context.Context, args []string) error {
	fs := newFlags("uptrain", "-from CKPT -attn mqa|gqa:G -steps N [-out DIR] [training and data flags]")
	from := fs.String("from", "", "the checkpoint to convert (or a run directory: its newest complete checkpoint)")
	attn := fs.String("attn", "", "attention after pooling: mqa or gqa:G (G must divide the source's K/V heads)")
	out := fs.String("out", "", "run directory for checkpoints and the log (default: runs/uptrain-<time>)")
	device := fs.String("device", "cpu", "cpu or cuda")
	var of optFlags
	var df dataFlags
	of.register(fs)
	df.register(fs)
	describeUptrainFlags(fs, &of)
	if err := parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := checkUptrainFlags(set, *from, *attn, of.steps); err != nil {
		return err
	}
	if err := train.CheckDevice(*device); err != nil {
		return err
	}
	m, err := infer.Load(*from)
	if err != nil {
		return err
	}
	kv, err := models.ParseAttention(*attn, m.Cfg.Heads)
	if err != nil {
		return fmt.Errorf("uptrain: %v: %w", err, errUsage)
	}
	if kv >= m.Cfg.KVHeads || m.Cfg.KVHeads%kv != 0 {
		return fmt.Errorf("uptrain: -attn %s: the source has %s attention (%d K/V heads); pooling needs fewer K/V heads, dividing %d: %w",
			*attn, m.Cfg.AttentionName(), m.Cfg.KVHeads, m.Cfg.KVHeads, errUsage)
	}
	if err := df.validate(m.Cfg.MaxLen); err != nil {
		return err
	}
	source, state, err := rundata.UptrainProvenance(m)
	if err != nil {
		return err
	}
	cfg, params, err := models.PoolKVHeads(m.Cfg, m.Params, kv)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("runs", "uptrain-"+time.Now().Format("20060102-150405"))
	}
	if last, err := (checkpoints.Manager{Root: *out}).Latest(); err == nil {
		return fmt.Errorf("uptrain: %s already holds checkpoint %s; choose another -out (an interrupted uptraining continues with: mqa train -resume %s)", *out, last, *out)
	}
	if of.warmup < 0 {
		of.warmup = rundata.UptrainWarmup(of.steps)
	}
	src, err := checkpointData(m)
	if err != nil {
		return err
	}
	defaults := models.Training{Vocab: src.Vocab, SeqLen: src.SeqLen, Batch: src.Batch, MaxTokens: src.MaxTokens, MaxLen: src.MaxLen,
		Steps: of.steps, LR: rundata.LastLR(state)}
	var s train.Settings
	if of.steps > 0 {
		if state == nil && of.lr == 0 {
			return fmt.Errorf("uptrain: %s has no training state (%s), so its learning rate is unknown: give -lr: %w", m.Dir, checkpoints.StateFile, errUsage)
		}
		if s, err = of.settings(defaults); err != nil {
			return err
		}
	}
	d := df.spec(cfg.Task, defaults, of)
	if !set["corpus"] && !set["train"] && !set["valid"] && !set["test"] {
		d.Corpus, d.Train, d.Valid, d.Test = src.Corpus, src.Train, src.Valid, src.Test
		d.TrainFile, d.ValidFile, d.TestFile = src.TrainFile, src.ValidFile, src.TestFile
		if err := d.CheckFiles(d.Files()...); err != nil {
			return fmt.Errorf("uptrain: %w", err)
		}
	} else if err := d.IdentifyFiles(); err != nil {
		return fmt.Errorf("uptrain: %w", err)
	}
	lock, err := openFreshRunDir(*out, false)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	d.Tok, d.SrcTok, d.UptrainedFrom = m.Tok, m.SrcTok, &source
	fmt.Fprintf(os.Stderr, "mqa uptrain: %s (%s, step %d) → %s by mean-pooling K/V heads, d_ff %d kept: %d parameters, %d fewer than the source's %d → %s\n",
		source.Checkpoint, source.Attention, source.Step, cfg.AttentionName(), cfg.FFDim, cfg.ParamCount(),
		source.Params-cfg.ParamCount(), source.Params, *out)
	if of.steps == 0 {
		dir, err := checkpoints.Manager{Root: *out}.Save(0, math.NaN(), func(dir string) error {
			if err := models.SaveModel(dir, cfg, params); err != nil {
				return err
			}
			return d.SaveFiles(dir)
		})
		if err != nil {
			return fmt.Errorf("uptrain: writing the converted checkpoint: %w", err)
		}
		fmt.Fprintf(os.Stderr, "mqa uptrain: converted checkpoint %s (not trained); evaluate with: mqa eval -ckpt %s\n", dir, *out)
		return nil
	}
	if err := d.Load(); err != nil {
		return err
	}
	if state != nil && sameData(d.Settings, src.Settings) {
		// The source's data in the source's order: continue where its training stopped.
		if err := d.TrainSource.Restore(state.Data); err != nil {
			return fmt.Errorf("uptrain: restoring the data position of %s: %w", m.Dir, err)
		}
	}
	tr, err := train.NewTrainer(cfg, params, s, *device)
	if err != nil {
		return err
	}
	defer tr.Close()
	return runLoop(ctx, tr, d, *out, 0)
}

// sameData tells whether two runs read the same batches in the same order (their
// validation, checkpointing and provenance may differ).
func sameData(a, b rundata.Settings) bool {
	for _, f := range [][2]*data.FileID{{a.TrainFile, b.TrainFile}, {a.ValidFile, b.ValidFile}, {a.TestFile, b.TestFile}} {
		if (f[0] == nil) != (f[1] == nil) || (f[0] != nil && *f[0] != *f[1]) {
			return false
		}
	}
	for _, d := range []*rundata.Settings{&a, &b} {
		d.EvalEvery, d.CkptEvery, d.Keep, d.EvalBatches, d.UptrainedFrom = 0, 0, 0, 0, nil
		d.TrainFile, d.ValidFile, d.TestFile = nil, nil, nil
	}
	return a == b
}

// redescribe replaces the help line of a registered flag.
func redescribe(fs *flag.FlagSet, name, usage string) { fs.Lookup(name).Usage = usage }

// describeUptrainFlags adapts train's flags to uptraining: a constant schedule after warmup
// by default, and help texts that say what uptraining takes from the source run.
func describeUptrainFlags(fs *flag.FlagSet, of *optFlags) {
	of.schedule = train.ScheduleConstant
	fs.Lookup("schedule").DefValue = of.schedule
	redescribe(fs, "schedule", "after warmup: constant, invsqrt or cosine")
	redescribe(fs, "steps", "training steps after the conversion (required; 0 writes the converted checkpoint only)")
	redescribe(fs, "warmup", "warmup steps (default: a twentieth of the steps, at most 100)")
	redescribe(fs, "lr", "peak learning rate (default: the source's learning rate at its last step)")
	for _, name := range []string{"vocab", "tokenizer", "separate-vocab"} {
		redescribe(fs, name, "not for uptrain: the source's tokenizer is kept")
	}
	redescribe(fs, "corpus", "embedded corpus: lm-en, bible.en-es or lohelp.en-de (default: with no -corpus, -train, -valid or -test, the source run's data)")
	fs.VisitAll(func(f *flag.Flag) { f.Usage = strings.ReplaceAll(f.Usage, "the preset's", "the source run's") })
}

// checkUptrainFlags checks uptrain's required flags and refuses the tokenizer flags.
func checkUptrainFlags(set map[string]bool, from, attn string, steps int) error {
	switch {
	case from == "":
		return fmt.Errorf("uptrain: -from is required: %w", errUsage)
	case attn == "":
		return fmt.Errorf("uptrain: -attn is required (mqa or gqa:G): %w", errUsage)
	case !set["steps"] || steps < 0:
		return fmt.Errorf("uptrain: -steps N is required, N ≥ 0 (0 writes the converted checkpoint only): %w", errUsage)
	case set["vocab"] || set["tokenizer"] || set["separate-vocab"]:
		return fmt.Errorf("uptrain: -vocab, -tokenizer and -separate-vocab do not apply: the source's tokenizer is kept: %w", errUsage)
	}
	return nil
}
