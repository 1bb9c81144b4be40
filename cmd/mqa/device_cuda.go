//go:build mqacuda

package main

// A build with -tags mqacuda registers the GPU executor ("-device cuda"). The tag is not
// "cuda" because Gorgonia uses that one to switch itself to its own CUDA path.
import _ "mqa/cuda"
