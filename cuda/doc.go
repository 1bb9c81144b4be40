// Package cuda is the GPU backend of mqa: with the build tag mqacuda it registers the "cuda"
// executor of package train, which runs the same Gorgonia graphs (forward, gorgonia.Grad's
// backward, AdamW) on an NVIDIA GPU. Parameters, gradients and optimizer moments stay on the
// GPU; per step only the token batch goes up and the loss and gradient norm come down.
//
// Layout: plan.go (untagged) turns a graph into an execution plan, kinds.go (untagged) lists
// the kinds of node with their names, op types and scratch, classify.go (untagged) recognises
// each node's kind, and activations.go (untagged) places values in activation memory. lower.go
// turns a plan into launches, each kind's lowering (kernels, launch) kept with its family in
// lower_gemm.go, lower_norm.go, lower_elementwise.go, lower_gather.go, lower_attention.go and
// lower_loss.go; driver.go is a thin cgo layer over the driver API and cuBLAS; kernels/*.cu
// are the CUDA C kernels, compiled at run time with NVRTC. runtime.go is what the training
// executor (exec.go) and the decoder (decode.go) share: the worker thread, the driver and its
// kernels, the parameters on the GPU, and compiling a plan into a program (program.go).
//
// A new op of layers/ops takes a Kind and its kindSpec (kinds.go), its lowering in its family's
// lower_*.go, and its kernel; one of Gorgonia's own ops also takes a case in classifyBuiltin.
//
// Decoding: decode_plan.go (untagged) plans decode-step and encoder graphs and models the
// decode-attention kernel; decode.go is the GPU infer.Backend (K/V cache on the GPU, CUDA-graph
// steps, beam reorder on the GPU); kernels/decode.cu holds its kernels; decode_bench.go is
// `mqa bench decode -device cuda`.
//
// Several GPUs: nccl.go loads NCCL at run time (MQA_NCCL_LIB, else the loader's search and
// PyTorch's pip wheels) and wraps the communicator calls data-parallel training needs;
// nccl_check.go sums and times an all-reduce across the GPUs (TestNCCLAllReduce).
//
// Build (see scripts/gpu.sh): CGO_LDFLAGS=-L/tmp/cuda13-stubs go build -tags mqacuda ./cmd/mqa
package cuda
