// Package study runs the comparison of attention kinds (mqa compare): from a Spec, Run
// trains a model of each task, attention kind and seed, scores it on its best checkpoint
// (perplexity, BLEU and chrF with bootstrap intervals, paired tests against MHA, or for an
// uptrained model against MHA trained on as long), times its training and decoding, and
// writes results.json, report.md and the plots.
package study
