// Package blas chooses the BLAS library that Gorgonia's matrix products run on, once, when
// the program starts: OpenBLAS, opened at run time when the machine has it (no cgo and no C
// headers are needed to build), or gonum's pure-Go BLAS otherwise. Both compute the same
// products; OpenBLAS is about ten times faster on an AVX2 CPU.
//
// The environment variable MQA_BLAS overrides the choice: "gonum" forces the pure-Go BLAS,
// "openblas" requires OpenBLAS (Err reports why it could not be loaded), "auto" or unset
// takes OpenBLAS when it loads. The layers package imports this one, so every program and
// test that builds a model graph gets the choice.
package blas

import (
	"fmt"
	"os"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// EnvVar names the environment variable that overrides the choice of BLAS.
const EnvVar = "MQA_BLAS"

// InstallHint is the command that installs OpenBLAS on Debian and Ubuntu.
const InstallHint = "apt-get install libopenblas0-pthread"

var (
	chosen  = "gonum (pure Go)"
	loadErr error
	lib     *openBLAS
)

func init() {
	mode := os.Getenv(EnvVar)
	switch mode {
	case "gonum":
		return
	case "", "auto", "openblas":
	default:
		loadErr = fmt.Errorf("blas: %s=%q: allowed values are auto, openblas and gonum", EnvVar, mode)
		return
	}
	l, err := loadOpenBLAS()
	if err != nil {
		if mode == "openblas" {
			loadErr = fmt.Errorf("blas: %s=openblas: %w (install it with %q)", EnvVar, err, InstallHint)
		}
		return
	}
	lib = l
	chosen = l.name
	impl := implementation{lib: l}
	G.Use(impl)
	tensor.Use(impl)
}

// Name describes the BLAS that matrix products use, e.g. "OpenBLAS 0.3.21 ... (2 threads)"
// or "gonum (pure Go)".
func Name() string { return chosen }

// OpenBLAS reports whether matrix products run on OpenBLAS.
func OpenBLAS() bool { return lib != nil }

// Err reports a value of MQA_BLAS that could not be honoured: an unknown value, or
// "openblas" on a machine where OpenBLAS did not load. Programs should stop on it.
func Err() error { return loadErr }
