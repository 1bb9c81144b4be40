// Package infer decodes with a trained model: greedy search, sampling (temperature, top-k,
// top-p, seeded) and beam search with the GNMT length penalty, batched over sequences of
// different lengths, for language models (prompt → continuation) and translation models
// (source → target).
//
// Decoding is incremental: a Stepper takes one token per sequence and returns the logits of
// the next one. The CPU backend's cached Stepper runs the decode-step graph of
// models.BuildDecodeStep over a K/V Cache ([batch, KVHeads, maxLen, d_k] per layer for keys
// and values), whose attention (ops.DecodeAttention) reads each cached row once for all the
// query heads that share it, so multi-query attention reads Heads/KVHeads times fewer
// bytes than multi-head attention. Translation models encode each source batch once and
// keep the cross-attention keys and values for all steps. The uncached Stepper recomputes
// the full sequence with the training graph at every step; it is the reference the cached
// path is tested against and the CLI's -nocache mode. A Stepper that is also a Ranker ranks
// each row's tokens where its logits live and returns only the best few (StepTopK); greedy
// search, top-k sampling with k ≤ MaxTopK and beam search with 2·Size ≤ MaxTopK use it and
// choose as they would from the whole row (TopK is the host reference of that ranking). A
// Stepper that is also a Sampler draws each row's token itself (StepSample), which Generate
// uses when neither top-k nor top-p restricts a sampled choice (SampleRow is the host
// reference of that draw).
//
// The decode benchmark (Bench) times both paths for MHA, GQA and MQA models of equal
// parameter count and reports the cache size and the bytes a step must read.
package infer
