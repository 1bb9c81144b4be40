package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mqa/checkpoints"
	"mqa/infer"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
	"mqa/train/runner"
)

func init() {
	commands["uptrain"] = command{"pool a trained model's key/value heads (MHA → GQA/MQA) and continue training it", runUptrain}
}

func runUptrain(args []string) error {
	ctx, stop := runner.SignalContext()
	defer stop()
	return uptrain(ctx, args)
}

// uptrain converts a checkpoint and trains the converted model; a cancelled ctx stops the
// training after a checkpoint, as for mqa train.
func uptrain(ctx context.Context, args []string) error {
	fs := newFlags("uptrain", "-from CKPT -attn mqa|gqa:G -steps N [-out DIR] [training and data flags]")
	from := fs.String("from", "", "the checkpoint to convert (or a run directory: its newest complete checkpoint)")
	attn := fs.String("attn", "", "attention after pooling: mqa or gqa:G (G must divide the source's K/V heads); the source's own attention continues it unpooled, an uptraining's fair baseline")
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
	set := setFlags(fs)
	if err := checkUptrainFlags(set, *from, *attn, of.Steps); err != nil {
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
	if kv > m.Cfg.KVHeads || m.Cfg.KVHeads%kv != 0 {
		return fmt.Errorf("uptrain: -attn %s: the source has %s attention (%d K/V heads); pooling needs as many or fewer K/V heads, dividing %d: %w",
			*attn, m.Cfg.AttentionName(), m.Cfg.KVHeads, m.Cfg.KVHeads, errUsage)
	}
	if err := df.validate(m.Cfg.MaxLen); err != nil {
		return err
	}
	u := runner.UptrainSpec{Source: m, KVHeads: kv, Out: *out, Device: *device, Log: os.Stderr,
		SourceFiles: !set["corpus"] && !set["train"] && !set["valid"] && !set["test"]}
	if u.Provenance, u.State, err = rundata.UptrainProvenance(m); err != nil {
		return err
	}
	if u.Out == "" {
		u.Out = filepath.Join("runs", "uptrain-"+time.Now().Format("20060102-150405"))
	}
	if last, err := (checkpoints.Manager{Root: u.Out}).Latest(); err == nil {
		return fmt.Errorf("uptrain: %s already holds checkpoint %s; choose another -out (an interrupted uptraining continues with: mqa train -resume %s)", u.Out, last, u.Out)
	}
	if of.Warmup < 0 {
		of.Warmup = rundata.UptrainWarmup(of.Steps)
	}
	if u.SourceData, err = rundata.FromCheckpoint(m); err != nil {
		return err
	}
	defaults := u.Defaults(of.Steps)
	if of.Steps > 0 {
		if u.State == nil && of.LR == 0 {
			return fmt.Errorf("uptrain: %s has no training state (%s), so its learning rate is unknown: give -lr: %w", m.Dir, checkpoints.StateFile, errUsage)
		}
		if u.Settings, err = of.settings(defaults); err != nil {
			return err
		}
	}
	u.Data = df.spec(m.Cfg.Task, defaults, of)
	j, err := runner.Uptrain(u)
	if err != nil || j == nil {
		return err
	}
	defer j.Close()
	return j.Train(ctx)
}

// redescribe replaces the help line of a registered flag.
func redescribe(fs *flag.FlagSet, name, usage string) { fs.Lookup(name).Usage = usage }

// describeUptrainFlags adapts train's flags to uptraining: a constant schedule after warmup
// by default, and help texts that say what uptraining takes from the source run.
func describeUptrainFlags(fs *flag.FlagSet, of *optFlags) {
	of.Schedule = train.ScheduleConstant
	fs.Lookup("schedule").DefValue = of.Schedule
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
