package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"mqa/infer"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

func init() {
	commands["translate"] = command{"translate a file line by line with a translation model (beam search, cached K/V)", runTranslate}
}

// maxBeam is the largest beam translate accepts: the K/V cache and the search state grow
// with batch × beam.
const maxBeam = 64

func runTranslate(args []string) error {
	fs := newFlags("translate", "-ckpt DIR [-input FILE|-] [-output FILE] [-beam K -alpha A -batch N -max N -nocache -device cpu|cuda]\n\n"+
		"One source line in, one translation out, in order. An empty input line gives an empty output line.\n"+
		"Without -input (or with -input -) the source lines come from standard input.")
	ckpt := fs.String("ckpt", "", "checkpoint directory (or a run directory: its newest complete checkpoint)")
	input := fs.String("input", "-", "source text, one sentence per line (-: standard input)")
	output := fs.String("output", "", "where to write the translations (default: standard output)")
	beam := fs.Int("beam", 4, fmt.Sprintf("beam size, 1 (greedy search) to %d", maxBeam))
	alpha := fs.Float64("alpha", 0.6, "length penalty exponent α of ((5+len)/6)^α")
	batch := fs.Int("batch", 16, "sentences decoded together")
	maxLen := fs.Int("max", 0, "most output tokens per sentence (0: 2·source tokens + 10, at most the model's max_len)")
	noCache := fs.Bool("nocache", false, "recompute the whole sequence at every step instead of caching keys and values")
	device := fs.String("device", "cpu", "cpu, or cuda (a build with -tags mqacuda: cached decoding on the GPU)")
	cache := fs.String("cache", "fp32", "cuda: K/V cache type, fp32 or bf16")
	allowNonFinite := fs.Bool("allow-nonfinite", false, "load weights that hold NaN or infinite values (refused by default)")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	gpuMemory := gpuMemoryFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := gpuMemory(); err != nil {
		return err
	}
	switch {
	case *ckpt == "":
		return fmt.Errorf("translate: -ckpt is required: %w", errUsage)
	case *beam < 1 || *beam > maxBeam:
		return fmt.Errorf("translate: -beam %d must be between 1 and %d: %w", *beam, maxBeam, errUsage)
	case !(*alpha >= 0) || *alpha > 1e6:
		return fmt.Errorf("translate: -alpha %g must be a number ≥ 0: %w", *alpha, errUsage)
	case *batch < 1:
		return fmt.Errorf("translate: -batch %d must be at least 1: %w", *batch, errUsage)
	case *maxLen < 0:
		return fmt.Errorf("translate: -max %d must not be negative: %w", *maxLen, errUsage)
	}
	if err := checkDevice("translate", *device); err != nil {
		return err
	}
	// Open the output first, so that a path that cannot be written fails before the work.
	var w io.Writer = os.Stdout
	var f *os.File
	if *output != "" {
		var err error
		if f, err = os.Create(*output); err != nil {
			return fmt.Errorf("translate: -output: %w", err)
		}
		defer f.Close()
		w = f
	}
	m, err := infer.LoadWith(*ckpt, models.LoadOptions{AllowNonFinite: *allowNonFinite})
	if err != nil {
		return err
	}
	lines, err := readLinesArg(*input)
	if err != nil {
		return err
	}
	b, err := decodeBackend("translate", m.Cfg, m.Params, *device, *cache, *noCache)
	if err != nil {
		return err
	}
	defer infer.CloseBackend(b)
	bar := train.NewProgress(rundata.Progress(*quiet), len(lines), "translate", "lines")
	start := time.Now()
	out, err := infer.TranslateLines(b, m.SrcTok, m.Tok, lines, infer.TranslateOptions{
		Beam: *beam, Alpha: *alpha, Batch: *batch, MaxLen: *maxLen,
		Progress: bar.Set,
		Warn:     func(s string) { fmt.Fprintln(os.Stderr, "translate:", s) },
	})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("translate: %w", err)
	}
	bw := bufio.NewWriter(w)
	for _, l := range out {
		fmt.Fprintln(bw, l)
	}
	err = bw.Flush()
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("translate: writing the output: %w", err)
	}
	fmt.Fprintf(os.Stderr, "translate: %d lines in %.2fs (%s, beam %d, α %g)\n", len(lines), time.Since(start).Seconds(), m.Cfg.AttentionName(), *beam, *alpha)
	return nil
}
