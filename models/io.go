package models

import (
	"fmt"
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
// else the newest complete checkpoint under path (see checkpoints.Resolve).
func ModelDir(path string) (string, error) {
	if _, err := os.Stat(filepath.Join(path, checkpoints.ConfigFile)); err == nil {
		return path, nil
	}
	return checkpoints.Resolve(path)
}

// LoadModel reads a model saved by SaveModel (dir may also be a run directory holding
// step-* checkpoints: the newest complete one is used). Every parameter the configuration
// needs must be present with its exact shape, and no other tensor may be; errors list what
// is missing, unexpected or mis-shaped.
func LoadModel(dir string) (Config, *layers.Params, error) {
	dir, err := ModelDir(dir)
	if err != nil {
		return Config{}, nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return Config{}, nil, err
	}
	path := filepath.Join(dir, checkpoints.WeightsFile)
	ts, _, err := checkpoints.ReadSafetensors(path)
	if err != nil {
		return cfg, nil, err
	}
	params, err := ParamsFromTensors(cfg, ts, path)
	return cfg, params, err
}

// ParamsFromTensors builds the parameter set of cfg from loaded tensors, checking names and shapes.
func ParamsFromTensors(cfg Config, ts []checkpoints.Tensor, source string) (*layers.Params, error) {
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
