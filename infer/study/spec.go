package study

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"mqa/models"
)

// FillDefaults gives the fields left to the preset (Steps 0, BLEULines and Dropout
// negative, DecodeBatch 0) the values of the preset's training defaults def.
func (r *Spec) FillDefaults(def models.Training) {
	if r.Steps == 0 {
		r.Steps = def.CompareSteps
	}
	if r.BLEULines < 0 {
		r.BLEULines = def.BLEULines
	}
	if r.DecodeBatch == 0 {
		r.DecodeBatch = def.DecodeBatch
	}
	if r.Dropout < 0 {
		r.Dropout = def.CompareDropout
	}
}

// Check checks the spec's data files, translation corpus, attention kinds and uptraining
// (its sizes, tasks and devices are the caller's to check). Its errors name the flags of mqa
// compare.
func (r *Spec) Check() error {
	given := 0
	for _, p := range []string{r.Train, r.Valid, r.Test} {
		if p != "" {
			given++
		}
	}
	switch {
	case given > 0 && given < 3:
		return errors.New("your data needs all of -train, -valid and -test")
	case given == 3 && len(r.Tasks) != 1:
		return fmt.Errorf("with -train/-valid/-test name exactly one task (-tasks lm or -tasks translate), not %q", strings.Join(r.Tasks, ","))
	case r.MTCorpus != "bible.en-es" && r.MTCorpus != "lohelp.en-de":
		return fmt.Errorf("-mt-corpus %q (allowed: bible.en-es, lohelp.en-de)", r.MTCorpus)
	}
	if r.Resume {
		if r.Out == "" {
			return errors.New("-resume needs -out DIR, the directory of the interrupted comparison")
		}
		if _, err := os.Stat(r.Out); err != nil {
			return fmt.Errorf("-resume: %w", err)
		}
	}
	heads, _ := models.Preset(r.Preset, models.TaskLM, 300)
	for _, a := range r.Attns {
		if _, err := models.ParseAttention(a, heads.Heads); err != nil {
			return err
		}
	}
	switch {
	case r.Uptrain == 0:
		return nil
	case !(r.Uptrain > 0 && r.Uptrain <= 1):
		return fmt.Errorf("-uptrain %g must be a fraction of the steps in (0, 1]", r.Uptrain)
	case !slices.Contains(r.Attns, "mha") || !slices.ContainsFunc(r.Attns, func(a string) bool { return a != "mha" }):
		return errors.New("-uptrain pools the mha model into the other kinds, so -attn needs mha and at least one more")
	}
	return nil
}
