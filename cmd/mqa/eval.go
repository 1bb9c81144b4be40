package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"mqa/infer"
	"mqa/models"
	"mqa/train/rundata"
)

func init() {
	commands["eval"] = command{"perplexity of a checkpoint on held-out text", runEval}
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
	r, err := rundata.Evaluate(m, *split, *path)
	if err != nil {
		return err
	}
	if *asJSON {
		for _, v := range []float64{r.NLL, r.PPL, r.WordPPL} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("eval: %s scores NLL %g on %s, which JSON cannot hold; run without -json to see the numbers", m.Dir, r.NLL, r.Data)
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
