package study

import (
	"context"
	"fmt"
	"math"
	"strings"

	"mqa/checkpoints"
	"mqa/infer"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// uptrainPrefix marks an uptrained kind in compare's list of kinds: "uptrain:mqa" is MQA
// pooled from the MHA model and trained further (compare -uptrain); "uptrain:mha" is the MHA
// model trained further the same way without pooling, the uptrained models' baseline.
const uptrainPrefix = "uptrain:"

// uptrainKinds lists the uptrained kinds (none without -uptrain): the continued MHA model
// first, then one for each kind of -attn but mha.
func (r *Spec) uptrainKinds() []string {
	if r.Uptrain <= 0 {
		return nil
	}
	out := []string{uptrainPrefix + "mha"}
	for _, a := range r.Attns {
		if a != "mha" {
			out = append(out, uptrainPrefix+a)
		}
	}
	return out
}

// uptrainedLabel names an uptrained model in the results; continuedLabel names the MHA model
// trained on as long without pooling, which the uptrained models are compared against.
func uptrainedLabel(target string, steps int) string {
	return fmt.Sprintf("%s (uptrained from mha, %d steps)", target, steps)
}

func continuedLabel(steps int) string { return fmt.Sprintf("mha (continued, %d steps)", steps) }

// uptrainTarget returns the attention an uptrained kind pools into.
func uptrainTarget(kind string) (string, bool) { return strings.CutPrefix(kind, uptrainPrefix) }

// uptrainSteps is the length of each uptraining: the fraction -uptrain of -steps, at least one.
func (r *Spec) uptrainSteps() int { return max(1, int(math.Round(r.Uptrain*float64(r.Steps)))) }

// runUptrained pools the task's MHA model (its scored checkpoint: the best validation loss)
// into the target attention, trains it uptrainSteps more from where the MHA run left the
// data, at the MHA run's learning rate of that step held constant after a short warmup, and
// scores it as the other kinds. Its loss curves continue the MHA model's steps. The target
// mha pools nothing: the MHA model trained on the same way, so that the uptrained models can
// be compared with a model that had as many training steps.
func (r *Spec) runUptrained(ctx context.Context, d *rundata.Data, target string, seed uint64) (KindResult, scoredSets, error) {
	var sets scoredSets
	src, err := checkpoints.Manager{Root: r.runDir(d.Task, "mha", seed)}.Best()
	if err != nil {
		return KindResult{}, sets, err
	}
	m, err := infer.Load(src)
	if err != nil {
		return KindResult{}, sets, err
	}
	kv, err := models.ParseAttention(target, m.Cfg.Heads)
	if err != nil {
		return KindResult{}, sets, err
	}
	source, state, err := rundata.UptrainProvenance(m)
	if err != nil {
		return KindResult{}, sets, err
	}
	if state == nil {
		return KindResult{}, sets, fmt.Errorf("%s has no %s", src, checkpoints.StateFile)
	}
	cfg := m.Cfg // pooled into kv K/V heads when the run is new (PoolKVHeads)
	cfg.KVHeads = kv
	steps := r.uptrainSteps()
	s := train.DefaultSettings(steps)
	s.Schedule = train.Schedule{Kind: train.ScheduleConstant, Peak: rundata.LastLR(state), Warmup: rundata.UptrainWarmup(steps), Total: steps}
	s.Seed, s.LabelSmoothing = seed, 0.1
	ud := *d // the same data; its checkpoints record the provenance
	ud.UptrainedFrom = &source
	out, label, what := r.runDir(d.Task, target, seed)+"-uptrained", uptrainedLabel(target, steps), "uptrain "+target
	if target == "mha" {
		out, label, what = r.runDir(d.Task, target, seed)+"-continued", continuedLabel(steps), "continue mha"
	}
	tr, sum, err := r.trainRun(ctx, &ud, out, what, cfg, steps, func() (*train.Trainer, error) {
		pooled, params, err := models.PoolKVHeads(m.Cfg, m.Params, kv)
		if err != nil {
			return nil, err
		}
		if err := ud.TrainSource.Restore(state.Data); err != nil {
			return nil, fmt.Errorf("restoring the MHA run's data position: %w", err)
		}
		return train.NewTrainerRanks(pooled, params, s, r.Device, r.Ranks)
	})
	if err != nil {
		return KindResult{}, sets, err
	}
	defer tr.Close()
	kr, sets, err := r.scoreKind(ctx, &ud, label, seed, cfg, tr, out, sum)
	kr.UptrainedFrom = &source
	for _, curve := range [][]CurvePoint{kr.TrainCurve, kr.ValidCurve} {
		for i := range curve {
			curve[i].Step += source.Step
		}
	}
	return kr, sets, err
}
