package main

import (
	"encoding/json"
	"fmt"
	"os"

	"mqa/infer/bleu"
)

func init() {
	commands["bleu"] = command{"corpus BLEU and chrF of a hypothesis file (sacreBLEU-compatible)", runBLEU}
}

func runBLEU(args []string) error {
	fs := newFlags("bleu", "-ref REF [-hyp HYP|-] [-json]   (without -hyp, the hypotheses come from standard input)")
	ref := fs.String("ref", "", "reference file, one segment a line")
	hyp := fs.String("hyp", "-", "hypothesis file, one segment a line (-: standard input)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *ref == "" || *hyp == "" {
		return fmt.Errorf("bleu: -ref is required, and -hyp names a file or - (standard input): %w", errUsage)
	}
	refs, err := bleu.ReadLines(*ref)
	if err != nil {
		return err
	}
	hyps, err := readLinesArg(*hyp)
	if err != nil {
		return err
	}
	b, err := bleu.CorpusBLEU(hyps, refs)
	if err != nil {
		return fmt.Errorf("%s vs %s: %w", *hyp, *ref, err)
	}
	c, err := bleu.CorpusChrF(hyps, refs)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"bleu": b.Score, "bleu_signature": b.Signature, "counts": b.Counts, "totals": b.Totals,
			"precisions": b.Precisions, "bp": b.BP, "sys_len": b.SysLen, "ref_len": b.RefLen,
			"chrf": c.Score, "chrf_signature": c.Signature,
		})
	}
	fmt.Printf("BLEU|%s = %s\nchrF2|%s = %.2f\n", b.Signature, b.String()[len("BLEU = "):], c.Signature, c.Score)
	return nil
}
