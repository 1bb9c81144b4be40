package runner

import (
	"fmt"
	"io"
	"math"

	"mqa/checkpoints"
	"mqa/infer"
	"mqa/layers"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// UptrainSpec is an uptraining: a trained model whose groups of key/value heads are
// mean-pooled into fewer (models.PoolKVHeads), then trained further.
type UptrainSpec struct {
	Source     *infer.Model
	Provenance rundata.UptrainSource // the source, as rundata.UptrainProvenance describes it
	State      *train.State          // the source's training state; nil when it has none
	KVHeads    int                   // K/V heads after pooling, dividing the source's (as many: trained on unpooled)
	Out        string                // the run directory
	Device     string
	// Settings of the training; 0 steps writes the converted checkpoint only.
	Settings train.Settings
	// Data holds the data settings of the uptraining, SourceData those of the source's run
	// (rundata.FromCheckpoint). With SourceFiles, Data's corpus and files are replaced by the
	// source's, checked to be unchanged.
	Data, SourceData *rundata.Data
	SourceFiles      bool
	Log              io.Writer
}

// Defaults are the training defaults of an uptraining of steps steps: the batching of
// the source's run (SourceData) and the learning rate of its last step (rundata.LastLR).
func (s UptrainSpec) Defaults(steps int) models.Training {
	src := s.SourceData
	return models.Training{Vocab: src.Vocab, SeqLen: src.SeqLen, Batch: src.Batch, MaxTokens: src.MaxTokens, MaxLen: src.MaxLen,
		Steps: steps, LR: rundata.LastLR(s.State)}
}

// Uptrain pools the source model and prepares its training in s.Out (openFresh, without
// force). The converted model keeps the source's tokenizers, and its checkpoints record the
// provenance. Trained on the source's data in the source's order, it continues from the
// source's data position. With 0 steps Uptrain writes the converted checkpoint and gives a
// nil Job.
func Uptrain(s UptrainSpec) (*Job, error) {
	cfg, params, err := models.PoolKVHeads(s.Source.Cfg, s.Source.Params, s.KVHeads)
	if err != nil {
		return nil, err
	}
	d := s.Data
	if src := s.SourceData; s.SourceFiles {
		d.Corpus, d.Train, d.Valid, d.Test = src.Corpus, src.Train, src.Valid, src.Test
		d.TrainFile, d.ValidFile, d.TestFile = src.TrainFile, src.ValidFile, src.TestFile
		if err := d.CheckFiles(d.Files()...); err != nil {
			return nil, fmt.Errorf("uptrain: %w", err)
		}
	} else if err := d.IdentifyFiles(); err != nil {
		return nil, fmt.Errorf("uptrain: %w", err)
	}
	lock, err := openFresh(s.Out, false, s.Log)
	if err != nil {
		return nil, err
	}
	j := &Job{data: d, out: s.Out, lock: lock, log: s.Log}
	source := s.Provenance
	d.Tok, d.SrcTok, d.UptrainedFrom = s.Source.Tok, s.Source.SrcTok, &source
	if cfg.KVHeads == s.Source.Cfg.KVHeads {
		fmt.Fprintf(s.Log, "mqa uptrain: %s (%s, step %d) trained on without pooling, as an uptraining would be (its baseline) → %s\n",
			source.Checkpoint, source.Attention, source.Step, s.Out)
	} else {
		fmt.Fprintf(s.Log, "mqa uptrain: %s (%s, step %d) → %s by mean-pooling K/V heads, d_ff %d kept: %d parameters, %d fewer than the source's %d → %s\n",
			source.Checkpoint, source.Attention, source.Step, cfg.AttentionName(), cfg.FFDim, cfg.ParamCount(),
			source.Params-cfg.ParamCount(), source.Params, s.Out)
	}
	if s.Settings.Steps == 0 {
		err := j.saveConverted(cfg, params)
		j.Close()
		return nil, err
	}
	if err := j.continueSource(s, cfg, params); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// saveConverted writes the converted model, untrained, as the run's step-0 checkpoint.
func (j *Job) saveConverted(cfg models.Config, params *layers.Params) error {
	dir, err := checkpoints.Manager{Root: j.out}.Save(0, math.NaN(), func(dir string) error {
		if err := models.SaveModel(dir, cfg, params); err != nil {
			return err
		}
		return j.data.SaveFiles(dir)
	})
	if err != nil {
		return fmt.Errorf("uptrain: writing the converted checkpoint: %w", err)
	}
	fmt.Fprintf(j.log, "mqa uptrain: converted checkpoint %s (not trained); evaluate with: mqa eval -ckpt %s\n", dir, j.out)
	return nil
}

// continueSource loads the data, restores the source's data position when the data are
// the source's, and makes the trainer of the converted model.
func (j *Job) continueSource(s UptrainSpec, cfg models.Config, params *layers.Params) error {
	d := j.data
	if err := d.Load(); err != nil {
		return err
	}
	if s.State != nil && rundata.SameData(d.Settings, s.SourceData.Settings) {
		// The source's data in the source's order: continue where its training stopped.
		if err := d.TrainSource.Restore(s.State.Data); err != nil {
			return fmt.Errorf("uptrain: restoring the data position of %s: %w", s.Source.Dir, err)
		}
	}
	var err error
	j.tr, err = train.NewTrainer(cfg, params, s.Settings, s.Device)
	return err
}
