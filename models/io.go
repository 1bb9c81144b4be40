package models

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"gorgonia.org/tensor"

	"mqa/checkpoints"
	"mqa/layers"
)

// maxConfigBytes bounds config.json.
const maxConfigBytes = 1 << 20

// SaveModel writes config.json and model.safetensors (float32, the parameters by name) into
// dir, which is created if needed. (infer.Model.Save also writes the tokenizer.)
func SaveModel(dir string, cfg Config, params *layers.Params) error {
	if params.Dtype() != tensor.Float32 {
		return fmt.Errorf("save %s: parameters are %v, only float32 is saved", dir, params.Dtype())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := checkpoints.WriteJSON(filepath.Join(dir, checkpoints.ConfigFile), cfg); err != nil {
		return err
	}
	return checkpoints.SaveSafetensors(filepath.Join(dir, checkpoints.WeightsFile), Tensors(params, ""), map[string]string{"format": "mqa"})
}

// Tensors lists params as checkpoint tensors whose names carry prefix; the data is shared.
func Tensors(params *layers.Params, prefix string) []checkpoints.Tensor {
	names := params.Names()
	out := make([]checkpoints.Tensor, len(names))
	for i, n := range names {
		t := params.Get(n)
		out[i] = checkpoints.Tensor{Name: prefix + n, Shape: append([]int(nil), t.Shape()...), Data: t.Data().([]float32)}
	}
	return out
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, checkpoints.ConfigFile)
	var c Config
	if err := checkpoints.ReadJSON(path, &c, maxConfigBytes); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ModelDir returns the directory holding a model: path itself when it has a config.json,
// else the newest complete checkpoint under path (see checkpoints.Resolve). A checkpoint
// directory given directly must be complete (see checkpoints.CheckComplete).
func ModelDir(path string) (string, error) {
	if _, err := os.Stat(filepath.Join(path, checkpoints.ConfigFile)); err == nil {
		if err := checkpoints.CheckComplete(path); err != nil {
			return "", err
		}
		return path, nil
	}
	return checkpoints.Resolve(path)
}

// LoadOptions control LoadModelWith.
type LoadOptions struct {
	// AllowNonFinite accepts NaN and infinite weights, which are refused by default.
	AllowNonFinite bool
}

// LoadModel is LoadModelWith with the default options.
func LoadModel(dir string) (Config, *layers.Params, error) {
	return LoadModelWith(dir, LoadOptions{})
}

// LoadModelWith reads a model saved by SaveModel (dir may also be a run directory holding
// step-* checkpoints: the newest complete one is used). Before any tensor data is read or
// any model built, the config is checked against the names and shapes in the weights
// file's header (see CheckSize), so a small file cannot make it allocate a large model.
// Every parameter the configuration needs must be present with its exact shape, and no
// other tensor may be; errors list what is missing, unexpected or mis-shaped. NaN and
// infinite weights are refused unless opt.AllowNonFinite.
func LoadModelWith(dir string, opt LoadOptions) (Config, *layers.Params, error) {
	dir, err := ModelDir(dir)
	if err != nil {
		return Config{}, nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return Config{}, nil, err
	}
	path := filepath.Join(dir, checkpoints.WeightsFile)
	infos, err := checkpoints.ReadSafetensorsHeader(path)
	if err != nil {
		return cfg, nil, err
	}
	if err := CheckSize(cfg, infos, path); err != nil {
		return cfg, nil, err
	}
	ts, _, err := checkpoints.ReadSafetensors(path)
	if err != nil {
		return cfg, nil, err
	}
	if !opt.AllowNonFinite {
		if err := checkFinite(ts, path); err != nil {
			return cfg, nil, err
		}
	}
	params, err := ParamsFromTensors(cfg, ts, path)
	return cfg, params, err
}

// checkFinite refuses tensors holding NaN or infinite values.
func checkFinite(ts []checkpoints.Tensor, source string) error {
	for _, t := range ts {
		bad, first := 0, -1
		for i, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				if bad == 0 {
					first = i
				}
				bad++
			}
		}
		if bad > 0 {
			return fmt.Errorf("%s: tensor %s holds %d NaN or infinite values (the first at index %d, %g); such weights are refused unless allowed (mqa: -allow-nonfinite)",
				source, t.Name, bad, first, t.Data[first])
		}
	}
	return nil
}

// MaxPositionTable bounds max_len × dim of a sinusoidal position table, the one table a
// model builds that its weights file does not hold.
const MaxPositionTable = 1 << 22

// paramSlack is how many parameters a config may describe beyond twice a weights file's.
const paramSlack = 1 << 20

// CheckSize checks that a config can describe the tensors of a weights file (names and
// shapes as in its header; source names the file) before a model of the config's size is
// built: its layers, embeddings, attention and feed-forward widths and learned positions
// must fit in the file's element count, its sinusoidal position table in
// MaxPositionTable, and its parameter count must be at most twice the file's plus
// paramSlack (so that a tensor missing from the file still gets a message listing names
// and shapes). Products are compared in floating point, so no field can overflow them.
func CheckSize(c Config, infos []checkpoints.TensorInfo, source string) error {
	var total int64
	for _, t := range infos {
		total += t.Numel()
	}
	f := func(xs ...int) float64 {
		p := 1.0
		for _, x := range xs {
			p *= float64(x)
		}
		return p
	}
	n, layers := float64(total), c.Layers+c.EncoderLayers
	needs := []struct {
		fits bool
		what string
	}{
		{f(c.Vocab+c.SrcVocab, c.Dim) <= n, fmt.Sprintf("embeddings of (vocab %d + src_vocab %d) × dim %d", c.Vocab, c.SrcVocab, c.Dim)},
		{f(layers, c.Dim, c.Heads, c.HeadDim) <= n, fmt.Sprintf("attention weights of %d layers × dim %d × heads %d × head_dim %d", layers, c.Dim, c.Heads, c.HeadDim)},
		{f(layers, c.Dim, c.FFDim) <= n, fmt.Sprintf("feed-forward weights of %d layers × dim %d × ff_dim %d", layers, c.Dim, c.FFDim)},
		{c.Positions != "learned" || f(c.MaxLen, c.Dim) <= n, fmt.Sprintf("learned positions of max_len %d × dim %d", c.MaxLen, c.Dim)},
	}
	if layers > len(infos) {
		return fmt.Errorf("%s does not match its config: the config has %d layers, more than the file's %d tensors", source, layers, len(infos))
	}
	for _, need := range needs {
		if !need.fits {
			return fmt.Errorf("%s does not match its config: the config needs %s, more than the file's %d weights", source, need.what, total)
		}
	}
	if c.Positions == "sinusoidal" && f(c.MaxLen, c.Dim) > MaxPositionTable {
		return fmt.Errorf("%s: its config needs a sinusoidal position table of max_len %d × dim %d, over the limit of %d entries", source, c.MaxLen, c.Dim, MaxPositionTable)
	}
	if want := c.ParamCount(); int64(want) > 2*total+paramSlack {
		return fmt.Errorf("%s does not match its config: the config describes %d parameters, the file holds %d in %d tensors", source, want, total, len(infos))
	}
	return nil
}

// ParamsFromTensors builds the parameter set of cfg from loaded tensors, checking names and shapes.
// The sizes are checked first (see CheckSize).
func ParamsFromTensors(cfg Config, ts []checkpoints.Tensor, source string) (*layers.Params, error) {
	infos := make([]checkpoints.TensorInfo, len(ts))
	for i, t := range ts {
		infos[i] = checkpoints.TensorInfo{Name: t.Name, Shape: t.Shape}
	}
	if err := CheckSize(cfg, infos, source); err != nil {
		return nil, err
	}
	want, err := InitParams(cfg, 0)
	if err != nil {
		return nil, err
	}
	got := map[string]checkpoints.Tensor{}
	for _, t := range ts {
		got[t.Name] = t
	}
	params := layers.NewParams(tensor.Float32, 0)
	var problems []string
	for _, name := range want.Names() {
		t, ok := got[name]
		w := want.Get(name).Shape()
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing %s %v", name, []int(w)))
		case !tensor.Shape(t.Shape).Eq(w) && !(len(t.Shape) == 0 && w.IsScalar()):
			problems = append(problems, fmt.Sprintf("%s has shape %v, the config needs %v", name, t.Shape, []int(w)))
		default:
			if err := params.Set(name, tensor.New(tensor.WithShape(w...), tensor.WithBacking(t.Data))); err != nil {
				problems = append(problems, err.Error())
			}
		}
		delete(got, name)
	}
	for name := range got {
		problems = append(problems, "unexpected tensor "+name)
	}
	if len(problems) > 0 {
		if len(problems) > 8 {
			problems = append(problems[:8], fmt.Sprintf("and %d more", len(problems)-8))
		}
		return nil, fmt.Errorf("%s does not match its config: %v", source, problems)
	}
	return params, nil
}
